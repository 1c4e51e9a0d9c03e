package datasole

import (
	"encoding/json"
	"time"

	"github.com/datasole/datasole-go/datasole/protocol"
)

// Target selects the connections a server push goes to. Targeting happens on
// the server, so it works with every v1 client.
type Target struct {
	kind targetKind
	id   string
}

type targetKind uint8

const (
	targetAll targetKind = iota
	targetConn
	targetUser
	targetTag
)

// ToAll targets every connection.
func ToAll() Target { return Target{kind: targetAll} }

// ToConn targets one connection by id.
func ToConn(id string) Target { return Target{kind: targetConn, id: id} }

// ToUser targets every connection of one user.
func ToUser(userID string) Target { return Target{kind: targetUser, id: userID} }

// ToTag targets every connection carrying a tag (a room).
func ToTag(tag string) Target { return Target{kind: targetTag, id: tag} }

// Broadcast sends an event to every connection.
func (s *Server) Broadcast(event string, data any) error { return s.Send(ToAll(), event, data) }

// Send pushes an event to the connections t selects. The frame is encoded
// and compressed once and the same bytes are queued on every target. An
// event to a target with history (KeepHistory) is stored in the target's
// stream first and reaches every node's connections from there, with its
// position; Send never waits for either.
func (s *Server) Send(t Target, event string, data any) error {
	if s.closing.Load() {
		return ErrClosed
	}
	raw, err := marshalData(data)
	if err != nil {
		return err
	}
	now := time.Now().UnixMilli()
	payload, err := marshal(protocol.Event{Event: event, Data: raw, Timestamp: now})
	if err != nil {
		return err
	}
	if len(payload) > protocol.MaxPayload-128 { // room for a history position
		return protocol.ErrPayloadTooLarge
	}
	if _, kept := s.historyOf(t); kept {
		s.sendKept(t, event, raw, now)
		return nil
	}
	msg, err := protocol.Encode(protocol.EventS2C, 0, payload)
	if err != nil {
		return err
	}
	s.deliver(t, protocol.EventS2C, msg)
	s.pub.enqueue(&busMsg{kind: busFrame, target: t, op: protocol.EventS2C, msg: msg})
	return nil
}

// push encodes one frame once and queues it on every local target
// connection.
func (s *Server) push(t Target, op protocol.Opcode, payload []byte) error {
	msg, err := protocol.Encode(op, 0, payload)
	if err != nil {
		return err
	}
	s.deliver(t, op, msg)
	return nil
}

// deliver queues an encoded message on the local connections t selects.
func (s *Server) deliver(t Target, op protocol.Opcode, msg []byte) int {
	n := s.hub.eachTarget(t, func(c *Conn) { c.enqueue(op, msg) })
	s.obs.Fanout(op, n)
	return n
}

func marshalData(v any) (json.RawMessage, error) {
	switch d := v.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		return d, nil
	}
	return json.Marshal(v)
}

func marshal(v any) ([]byte, error) { return json.Marshal(v) }
