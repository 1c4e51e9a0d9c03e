package auth_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	dscookie "github.com/datasole/datasole-go/auth/cookie"
	"github.com/datasole/datasole-go/datasole"
	"github.com/gorilla/websocket"
)

// A ticket issued by one node is redeemed on another through the shared
// backend, once: of two upgrades racing with one ticket on two nodes,
// exactly one is admitted.
func TestTicketAcrossNodes(t *testing.T) {
	for name, u := range sharedBackends(t) {
		t.Run(name, func(t *testing.T) {
			bs := openNodes(t, u, 2)
			var nodes []*node
			var ticketAPI string
			for i, b := range bs {
				tickets, err := datasole.NewTickets(datasole.TicketOptions{Backend: b})
				if err != nil {
					t.Fatal(err)
				}
				nodes = append(nodes, serve(t, datasole.Options{Backend: b, Auth: tickets.Authenticate}, nil, nil))
				if i == 0 { // node A also serves the app's ticket endpoint
					api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						p := &datasole.Principal{UserID: r.Header.Get("X-Test-User")} // the app's auth, for the test
						tickets.ServeHTTP(w, r.WithContext(datasole.WithPrincipal(r.Context(), p)))
					}))
					t.Cleanup(api.Close)
					ticketAPI = api.URL
				}
			}
			issue := func(user string) string {
				req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, ticketAPI, nil)
				req.Header.Set("X-Test-User", user)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				var body struct{ Ticket string }
				if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
					t.Fatalf("ticket endpoint: %d, %v", resp.StatusCode, err)
				}
				return body.Ticket
			}

			ticket := issue("olga")
			if _, user := nodes[1].mustUpgrade(t, tokenProtocols(ticket), nil, nil); user != "olga" {
				t.Fatalf("node B admitted %q", user)
			}
			if _, status := nodes[0].upgrade(t, tokenProtocols(ticket), nil, nil); status != http.StatusUnauthorized {
				t.Fatalf("the redeemed ticket on node A: %d, want 401", status)
			}

			for round := range 10 {
				ticket := issue("pat")
				var (
					wg       sync.WaitGroup
					start    = make(chan struct{})
					statuses = make([]int, len(nodes))
				)
				for i, n := range nodes {
					wg.Go(func() {
						<-start
						d := websocket.Dialer{Subprotocols: tokenProtocols(ticket)}
						ws, resp, err := d.DialContext(context.Background(), "ws"+n.url[len("http"):]+"/__ds", nil)
						switch {
						case err == nil:
							statuses[i] = http.StatusSwitchingProtocols
							t.Cleanup(func() { ws.Close() })
						case resp != nil:
							statuses[i] = resp.StatusCode
						default:
							t.Errorf("dial: %v", err)
						}
					})
				}
				close(start)
				wg.Wait()
				won := 0
				for i, s := range statuses {
					switch s {
					case http.StatusSwitchingProtocols:
						won++
						<-nodes[i].users
					case http.StatusUnauthorized:
					default:
						t.Fatalf("round %d: status %d", round, s)
					}
				}
				if won != 1 {
					t.Fatalf("round %d: statuses %v, want exactly one upgrade", round, statuses)
				}
			}
		})
	}
}

// A session revoked on one node loses its connection on another node (close
// code 4003), through the shared backend's bus, and its cookie is refused
// there (401).
func TestCookieRevocationAcrossNodes(t *testing.T) {
	for name, u := range sharedBackends(t) {
		t.Run(name, func(t *testing.T) {
			bs := openNodes(t, u, 2)
			var (
				nodes  []*node
				stores []*dscookie.Store
				sess   []*dscookie.Session
			)
			for _, b := range bs {
				store, err := dscookie.NewStore(dscookie.StoreOptions{Backend: b})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { store.Close() })
				s, err := dscookie.NewSession(dscookie.Options{Keys: []dscookie.Key{{Hash: []byte("0123456789abcdef0123456789abcdef")}},
					Insecure: true, Lookup: store.Lookup})
				if err != nil {
					t.Fatal(err)
				}
				nodes = append(nodes, serve(t, datasole.Options{Backend: b, Auth: s.Authenticate}, func(ds *datasole.Server) {
					if err := store.Attach(context.Background(), ds); err != nil {
						t.Fatal(err)
					}
				}, nil))
				stores, sess = append(stores, store), append(sess, s)
			}
			// Logged in on node A, connected to node B.
			id, err := stores[0].Create(t.Context(), &datasole.Principal{UserID: "quinn"})
			if err != nil {
				t.Fatal(err)
			}
			cname, value, _ := sess[0].EncodeID(id)
			cookie := http.Header{"Cookie": {cname + "=" + value}}
			ws, user := nodes[1].mustUpgrade(t, nil, cookie, nil)
			if user != "quinn" {
				t.Fatalf("connected as %q", user)
			}
			alive(t, ws)

			if err := stores[0].Revoke(t.Context(), id); err != nil {
				t.Fatal(err)
			}
			if code := closeCode(t, ws); code != datasole.CloseRevoked {
				t.Fatalf("closed with %d, want %d", code, datasole.CloseRevoked)
			}
			for i, n := range nodes {
				if _, status := n.upgrade(t, nil, cookie, nil); status != http.StatusUnauthorized {
					t.Fatalf("node %d after revocation: %d, want 401", i, status)
				}
			}
		})
	}
}
