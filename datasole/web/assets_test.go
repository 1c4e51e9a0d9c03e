package web

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
)

var names = []string{"datasole.iife.min.js", "datasole-worker.iife.min.js", "datasole.mjs", "datasole.d.ts"}

func serve(t *testing.T, a *Asset, method string, header http.Header) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, "/__ds/"+a.Name, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, req)
	return rec
}

func mustLookup(t *testing.T, name string) *Asset {
	t.Helper()
	a, ok := Lookup(name)
	if !ok {
		t.Fatalf("Lookup(%q) found nothing", name)
	}
	return a
}

func TestLookup(t *testing.T) {
	t.Run("every asset is embedded with the bytes committed under dist", func(t *testing.T) {
		for _, name := range names {
			a := mustLookup(t, name)
			want, err := os.ReadFile("dist/" + name)
			if err != nil {
				t.Fatal(err)
			}
			if string(a.Body) != string(want) || a.Name != name {
				t.Errorf("%s: embedded body differs from dist/%s", name, name)
			}
		}
	})
	t.Run("the ETag is the quoted first 24 hex digits of the body's SHA-256", func(t *testing.T) {
		for _, name := range names {
			a := mustLookup(t, name)
			sum := sha256.Sum256(a.Body)
			if want := `"` + hex.EncodeToString(sum[:])[:24] + `"`; a.ETag != want {
				t.Errorf("%s: ETag %s, want %s", name, a.ETag, want)
			}
		}
	})
	t.Run("unknown names are not found", func(t *testing.T) {
		for _, name := range []string{"", "index.html", "dist/datasole.mjs", "DATASOLE.MJS", "../assets.go"} {
			if _, ok := Lookup(name); ok {
				t.Errorf("Lookup(%q) found an asset", name)
			}
		}
	})
	t.Run("the client bundle defines the global Datasole and the worker does not", func(t *testing.T) {
		if !strings.Contains(string(mustLookup(t, "datasole.iife.min.js").Body), "var Datasole=") {
			t.Error("client bundle does not assign the global Datasole")
		}
		if strings.Contains(string(mustLookup(t, "datasole-worker.iife.min.js").Body), "var Datasole=") {
			t.Error("worker bundle assigns the global Datasole")
		}
	})
}

func TestServeHTTP(t *testing.T) {
	t.Run("GET answers 200 with the body and the PROTOCOL §9 headers", func(t *testing.T) {
		for _, tc := range []struct{ name, ctype, corp string }{
			{"datasole.iife.min.js", "application/javascript; charset=utf-8", "same-origin"},
			{"datasole-worker.iife.min.js", "application/javascript; charset=utf-8", "cross-origin"},
			{"datasole.mjs", "application/javascript; charset=utf-8", "same-origin"},
			{"datasole.d.ts", "text/plain; charset=utf-8", "same-origin"},
		} {
			a := mustLookup(t, tc.name)
			rec := serve(t, a, http.MethodGet, nil)
			if rec.Code != http.StatusOK {
				t.Fatalf("%s: status %d", tc.name, rec.Code)
			}
			want := map[string]string{
				"Content-Type":                 tc.ctype,
				"Content-Length":               strconv.Itoa(len(a.Body)),
				"ETag":                         a.ETag,
				"Cache-Control":                "public, max-age=31536000, immutable",
				"Cross-Origin-Opener-Policy":   "same-origin",
				"Cross-Origin-Embedder-Policy": "require-corp",
				"Cross-Origin-Resource-Policy": tc.corp,
			}
			for k, v := range want {
				if got := rec.Header().Get(k); got != v {
					t.Errorf("%s: %s = %q, want %q", tc.name, k, got, v)
				}
			}
			if rec.Body.String() != string(a.Body) {
				t.Errorf("%s: body differs", tc.name)
			}
		}
	})

	t.Run("HEAD answers the same headers without a body", func(t *testing.T) {
		a := mustLookup(t, "datasole.iife.min.js")
		rec := serve(t, a, http.MethodHead, nil)
		if rec.Code != http.StatusOK || rec.Body.Len() != 0 {
			t.Fatalf("status %d, %d body bytes", rec.Code, rec.Body.Len())
		}
		if rec.Header().Get("Content-Length") != strconv.Itoa(len(a.Body)) || rec.Header().Get("ETag") != a.ETag {
			t.Errorf("headers %v", rec.Header())
		}
	})

	a := mustLookup(t, "datasole-worker.iife.min.js")
	weak := "W/" + a.ETag
	for _, tc := range []struct {
		desc   string
		values []string
		want   int
	}{
		{"If-None-Match equal to the ETag answers 304", []string{a.ETag}, http.StatusNotModified},
		{"a list naming the ETag answers 304", []string{`"other", ` + a.ETag}, http.StatusNotModified},
		{"a repeated header naming the ETag answers 304", []string{`"other"`, a.ETag}, http.StatusNotModified},
		{"a weak validator matches under weak comparison", []string{weak}, http.StatusNotModified},
		{"a star matches any current representation", []string{"*"}, http.StatusNotModified},
		{"another ETag answers 200", []string{`"0123456789abcdef01234567"`}, http.StatusOK},
		{"the unquoted hash answers 200", []string{strings.Trim(a.ETag, `"`)}, http.StatusOK},
		{"an empty header answers 200", []string{""}, http.StatusOK},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				rec := serve(t, a, method, http.Header{"If-None-Match": tc.values})
				if rec.Code != tc.want {
					t.Fatalf("%s: status %d, want %d", method, rec.Code, tc.want)
				}
				if tc.want != http.StatusNotModified {
					continue
				}
				if rec.Body.Len() != 0 || rec.Header().Get("Content-Type") != "" {
					t.Errorf("%s: 304 carries a body or Content-Type", method)
				}
				for _, k := range []string{"ETag", "Cache-Control", "Cross-Origin-Opener-Policy", "Cross-Origin-Embedder-Policy", "Cross-Origin-Resource-Policy"} {
					if rec.Header().Get(k) == "" {
						t.Errorf("%s: 304 lacks %s", method, k)
					}
				}
			}
		})
	}

	t.Run("other methods answer 405 with Allow", func(t *testing.T) {
		for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions, http.MethodPatch} {
			rec := serve(t, a, method, nil)
			if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
				t.Errorf("%s: status %d, Allow %q", method, rec.Code, rec.Header().Get("Allow"))
			}
			if strings.Contains(rec.Body.String(), "Datasole") {
				t.Errorf("%s: 405 leaks the asset body", method)
			}
		}
	})

	t.Run("it works behind a real server on loopback", func(t *testing.T) {
		client := mustLookup(t, "datasole.iife.min.js")
		mux := http.NewServeMux()
		mux.Handle("/__ds/datasole.iife.min.js", client)
		srv := httptest.NewServer(mux)
		defer srv.Close()
		res, err := http.Get(srv.URL + "/__ds/datasole.iife.min.js")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK || res.ContentLength != int64(len(client.Body)) {
			t.Fatalf("status %d, length %d", res.StatusCode, res.ContentLength)
		}
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/__ds/datasole.iife.min.js", nil)
		req.Header.Set("If-None-Match", client.ETag)
		res, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNotModified {
			t.Fatalf("revalidation status %d", res.StatusCode)
		}
	})
}

func FuzzIfNoneMatch(f *testing.F) {
	a, _ := Lookup("datasole.mjs")
	for _, seed := range []string{a.ETag, "*", "W/" + a.ETag, `"x", ` + a.ETag, "", ",,,", `W/"`, "\x00"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		rec := serve(t, a, http.MethodGet, http.Header{"If-None-Match": {value}})
		switch rec.Code {
		case http.StatusOK:
			if rec.Body.Len() != len(a.Body) {
				t.Fatalf("200 with %d body bytes", rec.Body.Len())
			}
		case http.StatusNotModified:
			if !strings.Contains(value, a.ETag) && !strings.Contains(value, "*") {
				t.Fatalf("304 for %q, which does not name the ETag", value)
			}
		default:
			t.Fatalf("status %d", rec.Code)
		}
	})
}
