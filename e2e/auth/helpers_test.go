package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/datasole/datasole-go/datasole/backend/backendtest"
	_ "github.com/datasole/datasole-go/datasole/backend/postgres" // registers postgres://
	_ "github.com/datasole/datasole-go/datasole/backend/redis"    // registers redis://
	"github.com/gorilla/websocket"
)

// node is a running datasole server and what connected to it.
type node struct {
	ds    *datasole.Server
	url   string // http(s)://127.0.0.1:port
	users chan string
	tls   *tls.Config // the client config for an https node
}

// serve starts a datasole server with o on loopback. setup runs between New
// and Start (Store.Attach, registrations). With serverTLS the node serves
// https and asks for client certificates.
func serve(t *testing.T, o datasole.Options, setup func(ds *datasole.Server), serverTLS *tls.Config) *node {
	t.Helper()
	o.Logger = quiet
	ds, err := datasole.New(o)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{ds: ds, users: make(chan string, 16)}
	ds.OnConnect(func(c *datasole.Conn) { n.users <- c.UserID() })
	if setup != nil {
		setup(ds)
	}
	if err := ds.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(ds.Handler())
	if serverTLS != nil {
		hs.TLS = serverTLS
		hs.StartTLS()
		n.tls = hs.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	} else {
		hs.Start()
	}
	n.url = hs.URL
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ds.Close(ctx)
		hs.Close()
	})
	return n
}

// upgrade dials n's datasole path offering protocols, with hdr and, for an
// https node, clientCert. It returns the socket, or nil and the status of
// the refusal.
func (n *node) upgrade(t *testing.T, protocols []string, hdr http.Header, clientCert *tls.Certificate) (*websocket.Conn, int) {
	t.Helper()
	d := websocket.Dialer{Subprotocols: protocols, HandshakeTimeout: 10 * time.Second}
	if n.tls != nil {
		d.TLSClientConfig = n.tls.Clone()
		if clientCert != nil {
			d.TLSClientConfig.Certificates = []tls.Certificate{*clientCert}
		}
	}
	ws, resp, err := d.DialContext(t.Context(), "ws"+strings.TrimPrefix(n.url, "http")+"/__ds", hdr)
	if err != nil {
		if resp == nil {
			t.Fatalf("dial: %v", err)
		}
		return nil, resp.StatusCode
	}
	t.Cleanup(func() { ws.Close() })
	return ws, http.StatusSwitchingProtocols
}

// mustUpgrade upgrades and returns the user id the server admitted.
func (n *node) mustUpgrade(t *testing.T, protocols []string, hdr http.Header, clientCert *tls.Certificate) (*websocket.Conn, string) {
	t.Helper()
	ws, status := n.upgrade(t, protocols, hdr, clientCert)
	if ws == nil {
		t.Fatalf("upgrade refused with %d", status)
	}
	return ws, <-n.users
}

func tokenProtocols(token string) []string {
	return []string{"datasole.v1", datasole.TokenProtocolPrefix + token}
}

// closeCode waits for the server to close ws and returns the close code.
func closeCode(t *testing.T, ws *websocket.Conn) int {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(15 * time.Second))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code
			}
			t.Fatalf("waiting for a close frame: %v", err)
		}
	}
}

// alive checks that ws is served: a PING frame gets its PONG.
func alive(t *testing.T, ws *websocket.Conn) {
	t.Helper()
	if err := ws.WriteMessage(websocket.BinaryMessage, []byte{0x07, 0, 0, 0, 9, 0, 0, 0, 0}); err != nil {
		t.Fatalf("ping: %v", err)
	}
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer ws.SetReadDeadline(time.Time{})
	for {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for pong: %v", err)
		}
		if len(msg) > 0 && msg[0] == 0x08 {
			return
		}
	}
}

// sharedBackends lists the real shared backends from scripts/services.sh.
// Without them the caller skips, unless CI=true makes that a failure.
func sharedBackends(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, env := range map[string]string{"redis": "DATASOLE_TEST_REDIS", "postgres": "DATASOLE_TEST_POSTGRES"} {
		if u := os.Getenv(env); u != "" {
			out[name] = u
		} else if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set; run: eval \"$(bash scripts/services.sh)\"", env)
		}
	}
	if len(out) == 0 {
		t.Skip("no shared backend; run: eval \"$(bash scripts/services.sh)\"")
	}
	return out
}

// openNodes opens n backends on one server and one fresh namespace, as n
// nodes of one cluster each open their own.
func openNodes(t *testing.T, rawURL string, n int) []backend.Backend {
	t.Helper()
	sep := "?"
	if strings.Contains(rawURL, "?") {
		sep = "&"
	}
	u := rawURL + sep + "prefix=" + backendtest.NewPrefix()
	out := make([]backend.Backend, n)
	for i := range out {
		b, err := backend.Open(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		out[i] = b
	}
	return out
}

var serial atomic.Int64

// certAuthority issues client certificates for the tests.
type certAuthority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCA(t *testing.T) *certAuthority {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)), Subject: pkix.Name{CommonName: "e2e CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &certAuthority{cert, key, pool}
}

// issue makes a client certificate valid until notAfter.
func (ca *certAuthority) issue(t *testing.T, subject pkix.Name, uris []string, notAfter time.Time) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)), Subject: subject,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	for _, s := range uris {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// serverTLS asks for client certificates and verifies those given against ca.
func (ca *certAuthority) serverTLS() *tls.Config {
	return &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: ca.pool}
}
