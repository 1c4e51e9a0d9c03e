package protocol

import "encoding/json"

// RPC error codes of protocol v1, plus the codes this implementation adds.
const (
	CodeParseError     = -32700 // the RPC_REQ body is not a JSON object with a method
	CodeInvalidParams  = -32602 // the params do not fit the method
	CodeMethodNotFound = -32601 // no handler for the method
	CodeInternal       = -32000 // the handler failed
	CodeTimeout        = -32001 // the handler ran past its deadline
	CodeRateLimited    = -32029 // the call was refused by the rate limiter
	CodeOverloaded     = -32003 // too many calls in flight
	CodeUnavailable    = -32010 // a backend the call needs is unavailable: retry later
)

// RPCRequest is the body of an RPC_REQ frame.
type RPCRequest struct {
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	// CorrelationID echoes the header value; the server answers by the header.
	CorrelationID json.RawMessage `json:"correlationId,omitempty"`
}

// RPCResponse is the body of an RPC_RES frame. Exactly one of Result and Error
// is meaningful; a nil Result is omitted (the handler returned nothing).
type RPCResponse struct {
	CorrelationID json.RawMessage `json:"correlationId,omitempty"`
	Result        json.RawMessage `json:"result,omitempty"`
	Error         *RPCError       `json:"error,omitempty"`
}

// RPCError is the error member of a failed RPC_RES.
type RPCError struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// Event is the body of EVENT_C2S (no timestamp) and EVENT_S2C frames. Pos
// is an extension member: the event's position in its target's history,
// present only for targets the server keeps history of. v1 clients ignore it.
type Event struct {
	Event     string          `json:"event"`
	Data      json.RawMessage `json:"data,omitempty"`
	Timestamp int64           `json:"timestamp,omitempty"`
	Pos       *StreamPos      `json:"pos,omitempty"`
}

// StreamPos is an event's position in a history stream: the stream ("a"
// for every connection, "u:<user>", "t:<tag>"), the stream's epoch (it
// changes when the history is lost) and the offset (1, 2, 3, … with no gaps
// within an epoch).
type StreamPos struct {
	Stream string `json:"s"`
	Epoch  string `json:"e"`
	Offset uint64 `json:"o"`
}

// StatePatchBody is the body of a STATE_PATCH frame. Version (the version
// the patches produce) and Base (the version they apply to, present only
// when it is not Version-1) are extension members that v1 clients ignore.
type StatePatchBody struct {
	Key     string          `json:"key"`
	Patches json.RawMessage `json:"patches"`
	Version uint64          `json:"version,omitempty"`
	Base    *uint64         `json:"base,omitempty"`
}

// StateSnapshotBody is the body of a STATE_SNAPSHOT frame.
type StateSnapshotBody struct {
	Key     string          `json:"key"`
	Data    json.RawMessage `json:"data"`
	Version uint64          `json:"version,omitempty"`
}

// ErrorBody is the body of an ERROR frame. Code is an extension member.
type ErrorBody struct {
	Message    string `json:"message"`
	RetryAfter int64  `json:"retryAfter,omitempty"`
	Code       string `json:"code,omitempty"`
}

// CRDTOpBody is the body of a CRDT_OP frame.
type CRDTOpBody struct {
	Key string          `json:"key"`
	Op  json.RawMessage `json:"op"`
}

// CRDTStateBody is the body of a CRDT_STATE frame.
type CRDTStateBody struct {
	Key   string          `json:"key"`
	State json.RawMessage `json:"state"`
}

// PongPayload is the exact payload of every PONG frame.
var PongPayload = []byte("null")
