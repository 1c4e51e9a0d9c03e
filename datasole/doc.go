// Package datasole is a realtime server for Go web apps: one WebSocket per
// browser tab carries typed RPC, events in both directions, live state synced
// as JSON Patch, CRDTs and per-user sessions. It speaks the datasole wire
// protocol v1, so the TypeScript browser client works against it unchanged.
//
// # The contract
//
// Every RPC method, event and state key is declared once, in a package the
// server and its Go clients share (and that `datasole gen ts` turns into
// TypeScript for the browser):
//
//	var (
//		Add       = datasole.NewRPC[AddParams, AddResult]("add")
//		ChatSend  = datasole.NewEvent[ChatMessage]("chat:send")
//		Dashboard = datasole.NewState[DashboardState]("dashboard")
//	)
//
// # A server's life
//
// New checks the Options and does no I/O. Handlers are registered with
// methods that return an error for a mistake (an empty or reserved name, a
// second handler for one RPC method): RPC.Handle and Event.Handle for the
// typed descriptors, HandleRPC and On for raw JSON. Start connects to the
// backend (Options.Backend; by default everything stays in process) and
// returns the first registration error again, so a broken node fails at
// start. Handler then serves the WebSocket upgrade at Options.Path
// (default "/__ds") and the browser runtime below it; a server not started
// refuses upgrades with 503. Close drains and closes every connection.
//
// The framework adapters mount Handler in one line each: dsgin.Mount(ds),
// dsecho.Mount(ds), dsfiber.Mount(ds) and dshttp.Wrap(next, ds), in the
// modules under adapters/. Auth handlers for JWT, signed cookies and client
// certificates are in the modules under auth/; Redis and Postgres backends
// in backend/redis and backend/postgres.
//
// # Other packages of this module
//
//   - client: the Go client, with reconnects and the same typed descriptors;
//   - protocol: the v1 frame codec;
//   - crdt: pn-counter, lww-register and lww-map;
//   - session: per-user sessions over a backend;
//   - backend: the Backend interface and the in-memory backend;
//   - adaptertest, authtest, clustertest, observertest: the test suites that
//     adapters, auth handlers, backends and metrics exporters run.
package datasole
