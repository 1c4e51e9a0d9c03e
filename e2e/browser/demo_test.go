package browser

import (
	"bytes"
	"context"
	"image/png"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/crdt"
	"github.com/datasole/datasole-go/demos/contract"
)

// dashboard is the demo page's live state key "dashboard".
type dashboard struct {
	Connections int   `json:"connections"`
	Messages    int   `json:"messages"`
	StartedAt   int64 `json:"startedAt"`
}

var dashboardState = datasole.NewState[dashboard]("dashboard")

// demoServer implements the demo contract the way the demo apps do: the
// token, when given, is the user's name.
func demoServer(int) (*datasole.Server, error) {
	ds, err := datasole.New(datasole.Options{
		Logger: quiet,
		Auth: func(r *http.Request) (*datasole.Principal, error) {
			return &datasole.Principal{UserID: r.URL.Query().Get("token"), Roles: []string{"guest"}}, nil
		},
	})
	if err != nil {
		return nil, err
	}
	if err := ds.Start(context.Background()); err != nil {
		return nil, err
	}
	contract.Add.Handle(ds, func(c *datasole.Context, p contract.AddParams) (contract.AddResult, error) {
		return contract.AddResult{Sum: p.A + p.B}, nil
	})
	contract.WhoAmI.Handle(ds, func(c *datasole.Context, _ struct{}) (contract.WhoAmIResult, error) {
		return contract.WhoAmIResult{UserID: c.UserID(), ConnectionID: c.ConnID(), Roles: c.Principal().Roles}, nil
	})
	var mu sync.Mutex // orders dashboard updates
	dash := dashboard{StartedAt: time.Date(2026, 1, 2, 9, 30, 0, 0, time.UTC).UnixMilli()}
	update := func(fn func(d *dashboard)) {
		mu.Lock()
		defer mu.Unlock()
		fn(&dash)
		dashboardState.Set(context.Background(), ds, dash)
	}
	ds.OnConnect(func(*datasole.Conn) { update(func(d *dashboard) { d.Connections++ }) })
	ds.OnDisconnect(func(*datasole.Conn) { update(func(d *dashboard) { d.Connections-- }) })
	contract.ChatSendEvent.Handle(ds, func(c *datasole.Context, m contract.ChatSend) {
		from := c.UserID()
		if from == "" {
			from = "guest"
		}
		contract.ChatMessageEvent.Broadcast(ds, contract.ChatMessage{From: from, Text: m.Text, At: time.Now().UnixMilli()})
		update(func(d *dashboard) { d.Messages++ })
	})
	if _, err := ds.RegisterCRDTType("likes", datasole.Global(), crdt.TypePNCounter); err != nil {
		return nil, err
	}
	return ds, nil
}

// TestDemoPage drives demos/web like a person would and takes the screenshot
// of docs/demo.png (rewritten when DATASOLE_UPDATE_SCREENSHOT=1).
func TestDemoPage(t *testing.T) {
	needBrowser(t)
	s := startSite(t, http.FileServer(http.Dir("../../demos/web")), demoServer)

	bob := openTab(t, s.url("/?token=bob&worker=0"))
	bob.waitFor(t, `document.getElementById("status").textContent === "connected"`)
	ann := openTab(t, s.url("/?token=ann"))
	ann.do(t, chromedp.EmulateViewport(1200, 640))
	ann.waitFor(t, `document.getElementById("status").textContent === "connected"`)

	say := func(tb *tab, text string) {
		tb.do(t,
			chromedp.SetValue(chromedp.ID("chat-text"), text),
			chromedp.Click(chromedp.CSS(`#chat-form button`)),
		)
	}
	say(ann, "Hi Bob, the dashboard is live.")
	ann.waitFor(t, `document.querySelectorAll("#chat-log li").length === 1`)
	say(bob, "Hi Ann! I see it too.")
	for _, tb := range []*tab{ann, bob} {
		tb.waitFor(t, `document.querySelectorAll("#chat-log li").length === 2`)
		tb.waitFor(t, `document.getElementById("dash-messages").textContent === "2"`)
		tb.waitFor(t, `document.getElementById("dash-connections").textContent === "2"`)
	}

	t.Run("likes from two tabs add up in both", func(t *testing.T) {
		ann.do(t, chromedp.Click(chromedp.ID("like")), chromedp.Click(chromedp.ID("like")), chromedp.Click(chromedp.ID("like")))
		bob.do(t, chromedp.Click(chromedp.ID("like")), chromedp.Click(chromedp.ID("like")), chromedp.Click(chromedp.ID("unlike")), chromedp.Click(chromedp.ID("like")))
		for _, tb := range []*tab{ann, bob} {
			tb.waitFor(t, `document.getElementById("likes").textContent === "5"`)
		}
	})

	t.Run("the add form calls the typed RPC", func(t *testing.T) {
		ann.do(t,
			chromedp.SetValue(chromedp.ID("add-a"), "19"),
			chromedp.SetValue(chromedp.ID("add-b"), "23"),
			chromedp.Click(chromedp.CSS(`#add-form button`)),
		)
		ann.waitFor(t, `document.getElementById("rpc-out").textContent.includes('"sum": 42')`)
	})

	t.Run("whoami reports the token's user", func(t *testing.T) {
		bob.do(t, chromedp.Click(chromedp.ID("whoami")))
		bob.waitFor(t, `document.getElementById("rpc-out").textContent.includes('"userId": "bob"')`)
	})

	shot, err := chromedp.Run(ann.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("the screenshot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 800 || b.Dy() < 400 {
		t.Errorf("the screenshot is %v, want at least 800×400", b.Size())
	}
	if os.Getenv("DATASOLE_UPDATE_SCREENSHOT") == "1" {
		if err := os.WriteFile("../../docs/demo.png", shot, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote docs/demo.png (%d bytes)", len(shot))
	}
}
