package datasole_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/backend"
)

// ticketApp is a server admitting tickets, plus the app's ticket endpoint
// behind its own (header-based, for the test) authentication.
type ticketApp struct {
	ds      *datasole.Server
	tickets *datasole.Tickets
	ws      string // the datasole server's URL
	api     string // the app's URL
	users   chan string
}

// ticketServer runs a server whose Auth redeems tickets stored in
// o.Backend (in-process without one).
func ticketServer(t *testing.T, o datasole.Options) *ticketApp {
	t.Helper()
	tickets, err := datasole.NewTickets(datasole.TicketOptions{Backend: o.Backend})
	if err != nil {
		t.Fatal(err)
	}
	o.Auth = tickets.Authenticate
	ds, err := datasole.New(quietOptions(o))
	if err != nil {
		t.Fatal(err)
	}
	app := &ticketApp{ds: ds, tickets: tickets, users: make(chan string, 16)}
	ds.OnConnect(func(c *datasole.Conn) { app.users <- c.UserID() })
	if err := ds.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(ds.Handler())
	login := func(next http.Handler) http.Handler { // the app's own auth middleware
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u := r.Header.Get("X-Test-User"); u != "" {
				r = r.WithContext(datasole.WithPrincipal(r.Context(), &datasole.Principal{UserID: u, Roles: []string{"member"}}))
			}
			next.ServeHTTP(w, r)
		})
	}
	api := httptest.NewServer(login(tickets))
	t.Cleanup(func() {
		ds.Close(context.Background())
		hs.Close()
		api.Close()
	})
	app.ws, app.api = hs.URL, api.URL
	return app
}

// issue asks the app's endpoint for a ticket as user.
func (a *ticketApp) issue(t *testing.T, user string) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, a.api, nil)
	req.Header.Set("X-Test-User", user)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("ticket endpoint answered %d", resp.StatusCode)
	}
	var body struct {
		Ticket    string `json:"ticket"`
		ExpiresIn int    `json:"expiresIn"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Ticket == "" || body.ExpiresIn <= 0 {
		t.Fatalf("ticket response %+v, %v", body, err)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("Cache-Control = %q, want no-store", cc)
	}
	return body.Ticket
}

func ticketProtocols(ticket string) []string {
	return []string{"datasole.v1", datasole.TokenProtocolPrefix + ticket}
}

func TestTicketAdmitsOnceOverSocket(t *testing.T) {
	for name, o := range map[string]datasole.Options{
		"in-process store": {},
		"backend store":    {Backend: backend.NewMemory(backend.MemoryOptions{Prefix: "ticket-test:"})},
	} {
		t.Run(name, func(t *testing.T) {
			if o.Backend != nil {
				t.Cleanup(func() { o.Backend.Close() })
			}
			app := ticketServer(t, o)
			ticket := app.issue(t, "alice")
			if _, _, err := upgrade(t, app.ws, ticketProtocols(ticket), nil); err != nil {
				t.Fatalf("first upgrade with the ticket: %v", err)
			}
			if u := <-app.users; u != "alice" {
				t.Fatalf("connected as %q, want alice", u)
			}
			_, resp, err := upgrade(t, app.ws, ticketProtocols(ticket), nil)
			if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("second upgrade with the same ticket: err %v, resp %v; want 401", err, resp)
			}
		})
	}
}

func TestTicketConcurrentRedemptionsOneWins(t *testing.T) {
	for name, o := range map[string]datasole.Options{
		"in-process store": {},
		"backend store":    {Backend: backend.NewMemory(backend.MemoryOptions{Prefix: "ticket-race:"})},
	} {
		t.Run(name, func(t *testing.T) {
			if o.Backend != nil {
				t.Cleanup(func() { o.Backend.Close() })
			}
			app := ticketServer(t, o)
			for round := range 20 {
				ticket := app.issue(t, "bob")
				const racers = 4
				var (
					wg       sync.WaitGroup
					start    = make(chan struct{})
					mu       sync.Mutex
					admitted int
					refused  int
				)
				for range racers {
					wg.Go(func() {
						<-start
						_, resp, err := upgrade(t, app.ws, ticketProtocols(ticket), nil)
						mu.Lock()
						defer mu.Unlock()
						switch {
						case err == nil:
							admitted++
						case resp != nil && resp.StatusCode == http.StatusUnauthorized:
							refused++
						default:
							t.Errorf("upgrade failed otherwise: %v", err)
						}
					})
				}
				close(start)
				wg.Wait()
				if admitted != 1 || refused != racers-1 {
					t.Fatalf("round %d: %d admitted, %d refused; want exactly one admitted", round, admitted, refused)
				}
				<-app.users
			}
		})
	}
}

func TestTicketEndpointRefusesWithoutAnAuthenticatedUser(t *testing.T) {
	app := ticketServer(t, datasole.Options{})
	cases := []struct {
		name, method, user string
		want               int
	}{
		{"a GET", http.MethodGet, "alice", http.StatusMethodNotAllowed},
		{"a request the app did not authenticate", http.MethodPost, "", http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), tc.method, app.api, nil)
			if tc.user != "" {
				req.Header.Set("X-Test-User", tc.user)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
	t.Run("refuses an anonymous principal from Auth", func(t *testing.T) {
		tk, err := datasole.NewTickets(datasole.TicketOptions{Auth: datasole.Anonymous})
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		tk.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/ticket", nil))
		if rec.Code != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401", rec.Code)
		}
	})
}

func TestTicketMalformedIsRefusedAndOtherTokensPassOn(t *testing.T) {
	app := ticketServer(t, datasole.Options{})
	for _, bad := range []string{"dst1.", "dst1.short", "dst1." + strings.Repeat("A", 43) + "A", "dst1." + strings.Repeat("*", 43)} {
		_, resp, err := upgrade(t, app.ws, ticketProtocols(bad), nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("ticket %q: err %v, resp %v; want 401", bad, err, resp)
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/__ds?token=eyJhbGciOiJIUzI1NiJ9.e30.sig", nil)
	if _, err := app.tickets.Authenticate(r); !errors.Is(err, datasole.ErrNoCredentials) {
		t.Fatalf("a JWT gave %v, want ErrNoCredentials so Chain tries the next handler", err)
	}
}

func TestTicketExpiresAfterTTL(t *testing.T) {
	for _, withBackend := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			o := datasole.TicketOptions{TTL: 10 * time.Second}
			if withBackend {
				b := backend.NewMemory(backend.MemoryOptions{})
				defer b.Close()
				o.Backend = b
			}
			tk, err := datasole.NewTickets(o)
			if err != nil {
				t.Fatal(err)
			}
			p := &datasole.Principal{UserID: "carol", ExpiresAt: time.Now().Add(time.Hour)}
			fresh, err := tk.Issue(t.Context(), p)
			if err != nil {
				t.Fatal(err)
			}
			stale, _ := tk.Issue(t.Context(), p)
			time.Sleep(9 * time.Second) // fake clock: within the TTL
			got, err := tk.Redeem(t.Context(), fresh)
			if err != nil || got.UserID != "carol" || !got.ExpiresAt.Equal(p.ExpiresAt) {
				t.Fatalf("redeem within the TTL: %+v, %v", got, err)
			}
			time.Sleep(time.Second) // now at the TTL
			if _, err := tk.Redeem(t.Context(), stale); !errors.Is(err, datasole.ErrInvalidTicket) {
				t.Fatalf("redeem after the TTL: %v, want ErrInvalidTicket", err)
			}
		})
	}
}

// FuzzTicket redeems arbitrary strings: nothing panics, and nothing but the
// one ticket issued is ever admitted.
func FuzzTicket(f *testing.F) {
	f.Add("dst1.")
	f.Add("dst1." + strings.Repeat("A", 43))
	f.Add("dst1." + strings.Repeat("_", 42) + "=")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	tk, err := datasole.NewTickets(datasole.TicketOptions{})
	if err != nil {
		f.Fatal(err)
	}
	issued, err := tk.Issue(context.Background(), &datasole.Principal{UserID: "u"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if s == issued {
			return
		}
		if p, err := tk.Redeem(context.Background(), s); err == nil || !errors.Is(err, datasole.ErrUnauthorized) {
			t.Fatalf("Redeem(%q) = %+v, %v; want a refusal", s, p, err)
		}
		r := httptest.NewRequest(http.MethodGet, "/__ds", nil)
		r.Header.Set("Sec-WebSocket-Protocol", "datasole.v1, "+datasole.TokenProtocolPrefix+s)
		if p, err := tk.Authenticate(r); err == nil {
			t.Fatalf("Authenticate admitted %+v for %q", p, s)
		}
	})
}
