package dscookie

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/authtest"
	"github.com/gorilla/securecookie"
)

func key(seed byte, block bool) Key {
	k := Key{Hash: bytes.Repeat([]byte{seed}, 32)}
	if block {
		k.Block = bytes.Repeat([]byte{seed + 1}, 32)
	}
	return k
}

func mustSession(t *testing.T, o Options) *Session {
	t.Helper()
	s, err := NewSession(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// issued runs s.Issue for p and returns the Set-Cookie it produced.
func issued(t *testing.T, s *Session, p *datasole.Principal) *http.Cookie {
	t.Helper()
	w := httptest.NewRecorder()
	if err := s.Issue(w, p); err != nil {
		t.Fatal(err)
	}
	cs := w.Result().Cookies()
	if len(cs) != 1 {
		t.Fatalf("Issue set %d cookies, want 1", len(cs))
	}
	return cs[0]
}

func withCookie(name, value string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/__ds", nil)
	r.AddCookie(&http.Cookie{Name: name, Value: value})
	return r
}

// forge builds a cookie value in securecookie's format (base64 of
// "date|value|mac", the MAC covering "name|date|value") for a chosen
// timestamp, so expiry is tested without sleeping.
func forge(name string, hashKey []byte, date int64, p payload) string {
	js, _ := json.Marshal(p)
	body := fmt.Sprintf("%s|%d|%s", name, date, base64.URLEncoding.EncodeToString(js))
	mac := hmac.New(sha256.New, hashKey)
	mac.Write([]byte(body))
	signed := append([]byte(body+"|"), mac.Sum(nil)...)[len(name)+1:]
	return base64.URLEncoding.EncodeToString(signed)
}

type recorder struct {
	mu   sync.Mutex
	text strings.Builder
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.text.WriteString(rec.Message)
	rec.Attrs(func(a slog.Attr) bool { r.text.WriteString(" " + a.String()); return true })
	r.text.WriteString("\n")
	return nil
}

func TestIssueThenAuthenticate(t *testing.T) {
	p := &datasole.Principal{UserID: "u1", Roles: []string{"admin"}, Metadata: map[string]any{"tenant": "acme", "seats": 3.0}}
	for _, encrypted := range []bool{false, true} {
		t.Run(fmt.Sprintf("a cookie from Issue is accepted (encrypted=%v)", encrypted), func(t *testing.T) {
			s := mustSession(t, Options{Keys: []Key{key(1, encrypted)}})
			c := issued(t, s, p)
			got := authtest.OK(t, s.Authenticate, withCookie(c.Name, c.Value))
			if got.ExpiresAt.IsZero() {
				t.Fatal("principal has no ExpiresAt")
			}
			got.ExpiresAt = time.Time{}
			if !reflect.DeepEqual(got, p) {
				t.Fatalf("principal = %+v, want %+v", got, p)
			}
			raw, _ := base64.URLEncoding.DecodeString(c.Value)
			inner := string(raw)
			if parts := strings.SplitN(inner, "|", 3); len(parts) == 3 {
				b, _ := base64.URLEncoding.DecodeString(parts[1])
				inner = string(b)
			}
			if strings.Contains(inner, "acme") == encrypted {
				t.Fatalf("cookie content readable = %v, want %v", !encrypted, !encrypted)
			}
		})
	}

	t.Run("the cookie is HttpOnly, Secure, SameSite=Lax, Path=/ with the max age", func(t *testing.T) {
		c := issued(t, mustSession(t, Options{Keys: []Key{key(1, false)}, MaxAge: time.Hour}), p)
		if c.Name != DefaultName || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.MaxAge != 3600 || c.Domain != "" {
			t.Fatalf("cookie attributes %+v", c)
		}
	})
	t.Run("Clear expires the cookie with the same attributes", func(t *testing.T) {
		w := httptest.NewRecorder()
		mustSession(t, Options{Keys: []Key{key(1, false)}, Path: "/app"}).Clear(w)
		h := w.Header().Get("Set-Cookie")
		for _, want := range []string{DefaultName + "=;", "Path=/app", "Max-Age=0", "HttpOnly", "Secure", "SameSite=Lax"} {
			if !strings.Contains(h, want) {
				t.Fatalf("Set-Cookie %q lacks %q", h, want)
			}
		}
	})
	t.Run("Encode gives the name and the same kind of value for fiber", func(t *testing.T) {
		s := mustSession(t, Options{Keys: []Key{key(1, false)}, Name: "__Host-ds"})
		name, value, err := s.Encode(p)
		if err != nil || name != "__Host-ds" {
			t.Fatalf("Encode = %q, %v", name, err)
		}
		if got := authtest.OK(t, s.Authenticate, withCookie(name, value)); got.UserID != "u1" {
			t.Fatalf("UserID = %q", got.UserID)
		}
	})
	t.Run("a principal without user id cannot be issued", func(t *testing.T) {
		s := mustSession(t, Options{Keys: []Key{key(1, false)}})
		for _, bad := range []*datasole.Principal{nil, {}} {
			if err := s.Issue(httptest.NewRecorder(), bad); err == nil {
				t.Fatalf("Issue(%+v) succeeded", bad)
			}
		}
	})
	t.Run("no cookie is ErrNoCredentials so Chain moves on", func(t *testing.T) {
		h, err := New(Options{Keys: []Key{key(1, false)}})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range []*http.Request{httptest.NewRequest(http.MethodGet, "/__ds", nil), withCookie("other", "x"), withCookie(DefaultName, "")} {
			if _, err := h(r); !errors.Is(err, datasole.ErrNoCredentials) {
				t.Fatalf("err = %v, want ErrNoCredentials", err)
			}
		}
	})
}

func TestKeyRotation(t *testing.T) {
	old, cur := key(1, true), key(7, true)
	p := &datasole.Principal{UserID: "u1"}
	c := issued(t, mustSession(t, Options{Keys: []Key{old}}), p)
	r := withCookie(c.Name, c.Value)

	t.Run("a cookie signed with a previous key is accepted", func(t *testing.T) {
		authtest.OK(t, mustSession(t, Options{Keys: []Key{cur, old}}).Authenticate, r)
	})
	t.Run("new cookies are signed with the current key only", func(t *testing.T) {
		fresh := issued(t, mustSession(t, Options{Keys: []Key{cur, old}}), p)
		authtest.OK(t, mustSession(t, Options{Keys: []Key{cur}}).Authenticate, withCookie(fresh.Name, fresh.Value))
		authtest.Refused(t, mustSession(t, Options{Keys: []Key{old}}).Authenticate, withCookie(fresh.Name, fresh.Value))
	})
	t.Run("a cookie signed with a key that was removed is refused", func(t *testing.T) {
		authtest.Refused(t, mustSession(t, Options{Keys: []Key{cur}}).Authenticate, r)
	})
}

func TestBadCookiesAreRefused(t *testing.T) {
	k := key(1, false)
	s := mustSession(t, Options{Keys: []Key{k}, MaxAge: time.Hour})
	good := issued(t, s, &datasole.Principal{UserID: "u1"}).Value
	now := time.Now().Unix()
	flip := func(v string, i int) string {
		b := []byte(v)
		b[i] ^= 0x01
		return string(b)
	}
	other := issued(t, mustSession(t, Options{Keys: []Key{k}, Name: "other"}), &datasole.Principal{UserID: "u1"}).Value
	cases := []struct {
		name, value string
	}{
		{"a tampered cookie", flip(good, len(good)/2)},
		{"a cookie with a tampered signature", flip(good, len(good)-3)},
		{"a cookie older than MaxAge", forge(DefaultName, k.Hash, now-2*3600, payload{UserID: "u1"})},
		{"a cookie signed by an unknown key", forge(DefaultName, bytes.Repeat([]byte{9}, 32), now, payload{UserID: "admin"})},
		{"a cookie issued under another name", other},
		{"a cookie without a user id", forge(DefaultName, k.Hash, now, payload{Roles: []string{"admin"}})},
		{"an oversized cookie", strings.Repeat("A", 5000)},
		{"garbage", "%%%not-base64"},
	}
	// The forger must be right for the forged cases to mean anything.
	authtest.OK(t, s.Authenticate, withCookie(DefaultName, forge(DefaultName, k.Hash, now, payload{UserID: "u1"})))
	for _, tc := range cases {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			rec := &recorder{}
			s := mustSession(t, Options{Keys: []Key{k}, MaxAge: time.Hour, Logger: slog.New(rec)})
			authtest.Refused(t, s.Authenticate, withCookie(DefaultName, tc.value))
			if _, err := s.Authenticate(withCookie(DefaultName, tc.value)); err != ErrInvalidCookie {
				t.Fatalf("error %q reveals more than ErrInvalidCookie", err)
			}
			log := rec.text.String()
			if !strings.Contains(log, "reason=") {
				t.Fatalf("no reason logged: %q", log)
			}
			if len(tc.value) > 8 && strings.Contains(log, tc.value) {
				t.Fatal("the cookie value was written to the log")
			}
		})
	}
}

func TestUnsafeConfigurationIsRefused(t *testing.T) {
	cases := []struct {
		name string
		opts Options
	}{
		{"no keys", Options{}},
		{"a short hash key", Options{Keys: []Key{{Hash: []byte("short")}}}},
		{"a block key of a bad length", Options{Keys: []Key{{Hash: key(1, false).Hash, Block: []byte("12345")}}}},
		{"a short previous key", Options{Keys: []Key{key(1, false), {Hash: []byte("x")}}}},
		{"SameSite=None without Secure", Options{Keys: []Key{key(1, false)}, SameSite: http.SameSiteNoneMode, Insecure: true}},
		{"a __Host- name with a Domain", Options{Keys: []Key{key(1, false)}, Name: "__Host-s", Domain: "example.com"}},
		{"a __Host- name with another Path", Options{Keys: []Key{key(1, false)}, Name: "__Host-s", Path: "/app"}},
		{"a __Secure- name without Secure", Options{Keys: []Key{key(1, false)}, Name: "__Secure-s", Insecure: true}},
		{"a MaxAge under one second", Options{Keys: []Key{key(1, false)}, MaxAge: time.Millisecond}},
	}
	for _, tc := range cases {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			if _, err := NewSession(tc.opts); err == nil {
				t.Fatal("NewSession succeeded")
			}
			if h, err := New(tc.opts); err == nil || h != nil {
				t.Fatal("New succeeded")
			}
		})
	}
}

// FuzzCookie checks that arbitrary cookie values never panic and are never
// admitted unless they decode with the session's key.
func FuzzCookie(f *testing.F) {
	k := key(1, true)
	s, err := NewSession(Options{Keys: []Key{k}})
	if err != nil {
		f.Fatal(err)
	}
	_, good, _ := s.Encode(&datasole.Principal{UserID: "u1"})
	f.Add(good)
	f.Add(forge(DefaultName, k.Hash, time.Now().Unix(), payload{UserID: "u1"}))
	f.Add("MTcwMDAwMDAwMHx8")
	f.Fuzz(func(t *testing.T, v string) {
		r := httptest.NewRequest(http.MethodGet, "/__ds", nil)
		r.Header.Set("Cookie", DefaultName+"="+v)
		p, err := s.Authenticate(r)
		if err != nil {
			if !errors.Is(err, datasole.ErrUnauthorized) {
				t.Fatalf("err = %v, want one wrapping ErrUnauthorized", err)
			}
			return
		}
		c, _ := r.Cookie(DefaultName)
		var check payload
		if derr := securecookie.New(k.Hash, k.Block).SetSerializer(securecookie.JSONEncoder{}).Decode(DefaultName, c.Value, &check); derr != nil || p.UserID == "" {
			t.Fatalf("admitted %+v for a value that does not decode: %v", p, derr)
		}
	})
}
