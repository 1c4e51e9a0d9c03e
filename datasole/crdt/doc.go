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
// Remote input is validated: an op of another type is refused with
// [ErrTypeMismatch], malformed ops with [ErrInvalidOp], malformed states with
// [ErrInvalidState], changes past [Limits] with [ErrTooLarge], and a refused
// op or state changes nothing. [Limits.MaxSkew] clamps timestamps that lie
// too far in the future (see [Clamp]).
package crdt
