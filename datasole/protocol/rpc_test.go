package protocol

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestParseRPCRequest(t *testing.T) {
	cases := []struct {
		body          string
		method        string
		params, corr  string
		wantErr       bool
		wantCorrOnErr bool
	}{
		{body: `{"method":"echo","params":{"a":[1,2]},"correlationId":7}`, method: "echo", params: `{"a":[1,2]}`, corr: `7`},
		{body: ` { "params" : [ 1 , "x" ] , "method" : "m" } `, method: "m", params: `[ 1 , "x" ]`},
		{body: `{"method":"a","method":"b"}`, method: "b"},                  // last wins, as JSON.parse
		{body: `{"meth\u006fd":"\u00e9t\u00e9"}`, method: "été"},            // escaped names and values
		{body: "{\"method\":\"\xff\\u0041\xc3\"}", method: "\ufffdA\ufffd"}, // invalid UTF-8 as encoding/json
		{body: `{"method":"m","params":null}`, method: "m", params: `null`}, // explicit null is kept
		{body: `{"Method":"m"}`}, // names match exactly
		{body: `null`},
		{body: `{}`},
		{body: `{"method":null}`},
		{body: `{"method":3,"correlationId":"c"}`, corr: `"c"`, wantErr: true, wantCorrOnErr: true},
		{body: `[1]`, wantErr: true},
		{body: `"echo"`, wantErr: true},
		{body: `{"method":"m"`, wantErr: true},
		{body: `{"method":"m"} x`, wantErr: true},
		{body: ``, wantErr: true},
		{body: strings.Repeat("[", 20000) + strings.Repeat("]", 20000), wantErr: true}, // nesting bound
	}
	for _, tc := range cases {
		req, err := ParseRPCRequest([]byte(tc.body))
		if (err != nil) != tc.wantErr {
			t.Errorf("%.40q: err %v, want error %v", tc.body, err, tc.wantErr)
			continue
		}
		if err != nil && !tc.wantCorrOnErr {
			continue
		}
		if req.Method != tc.method || string(req.Params) != tc.params || string(req.CorrelationID) != tc.corr {
			t.Errorf("%.40q: got method %q params %q corr %q; want %q %q %q", tc.body,
				req.Method, req.Params, req.CorrelationID, tc.method, tc.params, tc.corr)
		}
	}
}

func TestParseRPCRequestCopies(t *testing.T) {
	body := []byte(`{"method":"m","params":{"k":"v"},"correlationId":"id"}`)
	req, err := ParseRPCRequest(body)
	if err != nil {
		t.Fatal(err)
	}
	for i := range body {
		body[i] = ' '
	}
	if string(req.Params) != `{"k":"v"}` || string(req.CorrelationID) != `"id"` || req.Method != "m" {
		t.Fatalf("request changed with its buffer: %+v", req)
	}
}

func TestRPCResponseAppendJSON(t *testing.T) {
	for _, r := range []RPCResponse{
		{},
		{CorrelationID: json.RawMessage(`1`)},
		{CorrelationID: json.RawMessage(`"a"`), Result: json.RawMessage(`{"x":[1,2,"<&>"]}`)},
		{Result: json.RawMessage(`null`)},
		{CorrelationID: json.RawMessage(`2`), Error: &RPCError{Code: CodeInternal, Message: "bad \"thing\"", Data: json.RawMessage(`{"retryAfter":5}`)}},
		{Error: &RPCError{Code: CodeTimeout, Message: "t"}},
	} {
		got, err := r.AppendJSON([]byte("prefix"))
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(got, []byte("prefix")) {
			t.Fatalf("dst not appended to: %q", got)
		}
		got = got[len("prefix"):]
		// json.Marshal escapes <, > and & in raw members; AppendJSON does
		// not need to. Compare the decoded values.
		if !sameJSON(t, got, want) {
			t.Errorf("AppendJSON = %s, json.Marshal = %s", got, want)
		}
	}
}

func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	ja, _ := json.Marshal(va)
	jb, _ := json.Marshal(vb)
	return bytes.Equal(ja, jb)
}

// FuzzParseRPCRequest checks ParseRPCRequest against json.Unmarshal on any
// body whose member names are exact (json.Unmarshal also takes "METHOD"):
// both fail, or both give the same method, params and correlation id.
func FuzzParseRPCRequest(f *testing.F) {
	for _, s := range []string{
		`{"method":"echo","params":{"a":[1,2]},"correlationId":7}`,
		`{"method":"a","method":"b","params":"\ud83d\ude00"}`,
		`{"meth\u006fd":"x","params":[{"":{}}]}`,
		`{"method":3}`, "{\"method\":\"\xff\xe2\x82\"}", `null`, `[]`, `{"method":"m","params":1e400}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := ParseRPCRequest(body)
		var want RPCRequest
		werr := json.Unmarshal(body, &want)
		if (err != nil) != (werr != nil) {
			if werr != nil && foldedNames(body) {
				return
			}
			t.Fatalf("%q: ParseRPCRequest error %v, json.Unmarshal error %v", body, err, werr)
		}
		if err != nil || foldedNames(body) {
			return
		}
		if got.Method != want.Method || !bytes.Equal(got.Params, want.Params) || !bytes.Equal(got.CorrelationID, want.CorrelationID) {
			t.Fatalf("%q: got %+v, json.Unmarshal %+v", body, got, want)
		}
	})
}

// foldedNames reports whether a top-level member name matches one of the
// request's names only case-insensitively (or the body is not an object).
func foldedNames(body []byte) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return true
	}
	for k := range m {
		switch k {
		case "method", "params", "correlationId":
			continue
		}
		for _, n := range []string{"method", "params", "correlationId"} {
			if strings.EqualFold(k, n) {
				return true
			}
		}
	}
	return false
}
