package datasole

import (
	"io"
	"net"
	"time"
)

// WebSocket is what the core needs from an upgraded WebSocket connection.
// *websocket.Conn of gorilla/websocket and of fasthttp/websocket (used by
// gofiber/contrib/websocket) satisfy it as they are, so an adapter that
// upgrades by itself can hand its connection to ServeConn.
type WebSocket interface {
	NextReader() (messageType int, r io.Reader, err error)
	WriteMessage(messageType int, data []byte) error
	WriteControl(messageType int, data []byte, deadline time.Time) error
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
	SetReadLimit(limit int64)
	SetPongHandler(h func(appData string) error)
	RemoteAddr() net.Addr
	Close() error
}

// WebSocket message types (RFC 6455), as gorilla and fasthttp number them.
const (
	textMessage   = 1
	binaryMessage = 2
	closeMessage  = 8
	pingMessage   = 9
)

// Close codes used by the server.
const (
	CloseNormal          = 1000
	CloseGoingAway       = 1001 // server shutting down
	CloseProtocolError   = 1002
	ClosePolicyViolation = 1008 // abuse, slow consumer
	CloseMessageTooBig   = 1009
	CloseInternalError   = 1011
	CloseTryAgainLater   = 1013 // over capacity
	CloseSessionExpired  = 4001 // the principal's ExpiresAt passed
	CloseRevoked         = 4003 // CloseUser: the credential was revoked
)

func formatClose(code int, text string) []byte {
	if code == 1005 || code == 1006 {
		return []byte{}
	}
	buf := make([]byte, 2+len(text))
	buf[0] = byte(code >> 8)
	buf[1] = byte(code)
	copy(buf[2:], text)
	return buf
}
