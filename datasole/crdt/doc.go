// Package crdt implements the three conflict-free replicated data types of
// the datasole wire protocol v1: [PNCounter], [LWWRegister] and [LWWMap].
// The server and the Go client share it; it does no I/O.
//
// Each replica has a node id. Local changes (Increment, Set, Delete) return
// the [Op] to send to other replicas, which hand it to Apply; a replica's
// [State] can be sent instead and is combined with Merge. Ops and states
// have the v1 JSON shapes of CRDT_OP and CRDT_STATE (PROTOCOL.md §5.9–5.10),
// so stock v1 peers read them; what v1 lacks travels in extra members that
// v1 peers ignore:
//
//   - op "seq": per-node pn-counter op number, so a receiver counts each op
//     once (see [PNCounter]);
//   - state metadata "seqs": the highest op seq per node a counter includes;
//   - state metadata "writer": the node id of a register's winning write;
//   - state metadata "fields": every lww-map field's (timestamp, nodeId),
//     with "deleted": true for tombstones.
//
// Last-writer-wins is decided by (timestamp, nodeId) lexicographically in
// local writes, ops and merges alike. Merges are commutative, associative
// and idempotent, so replicas that have received the same writes hold the
// same state whatever the order or duplication of delivery.
//
// # Untrusted input
//
// Remote input is validated: an op of another type is refused with
// [ErrTypeMismatch], malformed ops with [ErrInvalidOp], malformed states with
// [ErrInvalidState], changes past [Limits] with [ErrTooLarge], and a refused
// op or state changes nothing. [Limits.MaxSkew] clamps timestamps that lie
// too far in the future (see [Clamp]). Register and map values holding an
// object member named __proto__, constructor or prototype at any depth are
// refused with [ErrForbiddenValue], as live state values are.
//
// Sizes are bounded in bytes of the encoded state, the JSON a CRDT_STATE
// frame carries. With the default [Limits], a value may take 64 KiB, local
// changes and ops may grow a state to 256 KiB, a pn-counter takes ops from
// at most 1,024 node ids, and no replica holds a state past
// [MaxStateCeiling] (1008 KiB), so every state fits one frame. Each replica
// keeps a running upper bound of its encoded size ([CRDT.Size]) and checks
// every change against it before applying it, at the cost of the change,
// not of the state. A pn-counter op whose seq jumps more than
// [Limits.MaxSeqJump] past its node's known ops is refused with [ErrSeqJump].
//
// Nothing in an op proves who wrote it: any writer can name any node id. A
// server binds each node id to the first writer that uses it with
// [Owners], and stores the bindings with the state as a [Record]; clients
// never see them.
//
// # Encoding
//
// [CRDT.EncodedState] returns the encoded state, cached until the next
// change, so a server can send the state of an unchanged CRDT again without
// encoding it again; [AppendRecord] appends state and bindings to a buffer
// from the cached encodings.
package crdt
