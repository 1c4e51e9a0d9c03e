// Command centrifuge is the peer of the comparison: a centrifugal/centrifuge
// node with its WebSocket handler at /connection/websocket, default
// settings. Connections are accepted anonymously; the RPC method "echo"
// returns its data; every connection may subscribe to the channel "bench",
// where the debug endpoint's publications go through node.Publish.
package main

import (
	"context"
	"net"
	"net/http"

	"github.com/centrifugal/centrifuge"

	"github.com/datasole/datasole-go/bench/internal/serverkit"
)

// Channel is the channel fan-out publications go to.
const Channel = "bench"

type server struct{ node *centrifuge.Node }

func (s server) Conns() int { return s.node.Hub().NumClients() }

func (s server) Publish(msg []byte) { s.node.Publish(Channel, msg) }

func main() {
	serverkit.Main("centrifuge", func(addr string) (serverkit.Server, func(context.Context) error, error) {
		node, err := centrifuge.New(centrifuge.Config{})
		if err != nil {
			return nil, nil, err
		}
		node.OnConnecting(func(ctx context.Context, e centrifuge.ConnectEvent) (centrifuge.ConnectReply, error) {
			return centrifuge.ConnectReply{Credentials: &centrifuge.Credentials{}}, nil
		})
		node.OnConnect(func(c *centrifuge.Client) {
			c.OnRPC(func(e centrifuge.RPCEvent, cb centrifuge.RPCCallback) {
				if e.Method != "echo" {
					cb(centrifuge.RPCReply{}, centrifuge.ErrorMethodNotFound)
					return
				}
				cb(centrifuge.RPCReply{Data: e.Data}, nil)
			})
			c.OnSubscribe(func(e centrifuge.SubscribeEvent, cb centrifuge.SubscribeCallback) {
				if e.Channel != Channel {
					cb(centrifuge.SubscribeReply{}, centrifuge.ErrorPermissionDenied)
					return
				}
				cb(centrifuge.SubscribeReply{}, nil)
			})
		})
		if err := node.Run(); err != nil {
			return nil, nil, err
		}
		mux := http.NewServeMux()
		mux.Handle("/connection/websocket", centrifuge.NewWebsocketHandler(node, centrifuge.WebsocketConfig{
			CheckOrigin: func(*http.Request) bool { return true },
		}))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, nil, err
		}
		hs := &http.Server{Handler: mux}
		go hs.Serve(ln)
		stop := func(ctx context.Context) error {
			err := hs.Shutdown(ctx)
			node.Shutdown(ctx)
			return err
		}
		return server{node}, stop, nil
	})
}
