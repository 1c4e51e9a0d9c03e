package dsredis_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/datasole/datasole-go/datasole/backend/backendtest"
	dsredis "github.com/datasole/datasole-go/datasole/backend/redis"
	"github.com/datasole/datasole-go/datasole/client"
	"github.com/datasole/datasole-go/datasole/clustertest"
	"github.com/redis/go-redis/v9"
)

// presenceTTL is short in these tests so that a killed node's entries
// vanish quickly.
const presenceTTL = 2 * time.Second

// presenceNode configures a node of the presence scenario: every connection
// joins "room", which is tracked with join and leave events.
func presenceNode(ds *datasole.Server) error {
	ds.OnConnect(func(c *datasole.Conn) { c.Tag("room") })
	return ds.TrackPresence("room", datasole.PresenceOptions{Events: true,
		Info: func(c *datasole.Conn) any { return map[string]string{"device": "test"} }})
}

// runPresenceNode is the child process of TestPresenceAcrossNodesSurvivesAKilledNode:
// one node on the shared Redis, listening on loopback, printing its URL.
func runPresenceNode() {
	opts, err := redis.ParseURL(os.Getenv("DATASOLE_TEST_REDIS"))
	if err != nil {
		panic(err)
	}
	rc := redis.NewClient(opts)
	be, err := dsredis.New(context.Background(), rc, dsredis.Options{Prefix: os.Getenv("DATASOLE_NODE_PREFIX")})
	if err != nil {
		panic(err)
	}
	ds, err := datasole.New(datasole.Options{Backend: be, PresenceTTL: presenceTTL,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Auth: func(r *http.Request) (*datasole.Principal, error) {
			return &datasole.Principal{UserID: r.URL.Query().Get("token")}, nil
		}})
	if err != nil {
		panic(err)
	}
	if err := presenceNode(ds); err != nil {
		panic(err)
	}
	if err := ds.Start(context.Background()); err != nil {
		panic(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	fmt.Printf("http://%s\n", l.Addr())
	http.Serve(l, ds.Handler()) // until the parent kills the process
}

// TestPresenceAcrossNodesSurvivesAKilledNode: 10 clients join a tracked tag,
// 5 on a node in this process and 5 on a node in a child process; Presence
// on this node lists all 10 and subscribers get their join events. The
// child is killed (SIGKILL): its 5 entries vanish within the TTL, the other
// 5 stay.
func TestPresenceAcrossNodesSurvivesAKilledNode(t *testing.T) {
	url := serverURL(t)
	prefix := backendtest.NewPrefix()
	cmd := exec.Command(os.Args[0], "-test.run", "^$")
	cmd.Env = append(os.Environ(), "DATASOLE_PRESENCE_NODE=1", "DATASOLE_TEST_REDIS="+url, "DATASOLE_NODE_PREFIX="+prefix)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("the child node did not start: %v", err)
	}
	childURL := strings.TrimSpace(line)

	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	nodes := clustertest.Start(t, 1, func(t *testing.T) backend.Backend {
		rc := redis.NewClient(opts)
		b, err := dsredis.New(context.Background(), rc, dsredis.Options{Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close(); rc.Close() })
		return b
	}, func(ds *datasole.Server) {
		if err := presenceNode(ds); err != nil {
			t.Fatal(err)
		}
	})
	here := nodes[0]
	joins := make(chan client.PresenceChange, 32)
	watcher := clustertest.Dial(t, here, "watcher")
	watcher.OnJoin("room", func(pc client.PresenceChange) { joins <- pc })

	dialChild := func(user string) *client.Client {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := client.Dial(ctx, childURL, client.Options{Token: user, NoReconnect: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	for i := range 5 {
		clustertest.Dial(t, here, fmt.Sprint("here", i))
		dialChild(fmt.Sprint("there", i))
	}
	ctx := context.Background()
	listed := func(want int) func() bool {
		return func() bool {
			es, err := here.DS.Presence(ctx, "room")
			return err == nil && len(es) == want
		}
	}
	waitUntil(t, "11 entries (10 clients and the watcher) on this node's listing", 10*time.Second, listed(11))
	st, err := here.DS.PresenceStats(ctx, "room")
	if err != nil || st.Connections != 11 || st.Users != 11 {
		t.Fatalf("stats %+v %v", st, err)
	}
	seen := map[string]bool{}
	waitUntil(t, "join events of the other node's clients", 10*time.Second, func() bool {
		for {
			select {
			case pc := <-joins:
				seen[pc.UserID] = true
			default:
				n := 0
				for u := range seen {
					if strings.HasPrefix(u, "there") {
						n++
					}
				}
				return n == 5
			}
		}
	})

	killed := time.Now()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the killed node's entries to vanish", 3*presenceTTL+5*time.Second, listed(6))
	t.Logf("the killed node's entries vanished %v after SIGKILL (TTL %v)", time.Since(killed).Round(10*time.Millisecond), presenceTTL)
	es, _ := here.DS.Presence(ctx, "room")
	for _, e := range es {
		if strings.HasPrefix(e.UserID, "there") {
			t.Fatalf("an entry of the killed node is still listed: %+v", e)
		}
	}
}

func waitUntil(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
