package datasole

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/datasole/datasole-go/datasole/session"
)

// Server is the framework-agnostic datasole core: it owns the connections,
// the RPC and event handlers and fan-out. Mount Handler on any router, or hand
// already-upgraded connections to ServeConn.
type Server struct {
	opts    Options
	log     *slog.Logger
	obs     Observer
	nodeID  string // unique per process, prefixes connection ids
	connSeq atomic.Uint64

	hub      hub
	scopes   scopeSet // live state, sequenced per scope (scope.go)
	crdts    crdtRegistry
	pub      *publisher   // the node's ordered, bounded bus publisher
	peers    peerSeqs     // the last bus sequence number seen per node
	kept     historyRules // targets whose events are kept (history.go)
	presence presence     // tracked tags and users (presence.go)
	saver    *crdtSaver   // persists changed CRDTs in the background
	rpcs     sync.Map     // method -> rpcFunc
	events   eventRegistry
	hooks    hooks
	exec     chan struct{} // executor slots
	counters *counters     // the built-in Observer behind Snapshot
	reserve  atomic.Int64  // admitted connections (reserved before upgrade)
	perPeer  peerCounts
	trusted  []netip.Prefix // Options.TrustedProxies

	serverEvents *serverEvents // OnServer handlers and their queue (serverevent.go)
	exports      exporters     // ExportEvery's goroutines (exporter.go)

	startMu    sync.Mutex
	started    atomic.Bool
	regErrs    []error // invalid registrations, returned by Start; guarded by startMu
	busCancel  func()  // ends the cluster bus subscription
	sessions   *session.Store
	ownBackend *backend.Memory // the default backend, when Options.Backend is nil
	sampled    sync.Map        // log message -> *atomic.Int64, unix nanos of its last line

	// ctx lives as long as the server: background work and connections
	// being admitted stop waiting on the backend when Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc

	closing   atomic.Bool
	done      chan struct{} // closed when Close starts
	closeMu   sync.Mutex
	wg        sync.WaitGroup // connection goroutines
	bg        sync.WaitGroup // short-lived background work (CRDT broadcasts)
	heartbeat sync.WaitGroup
	eng       engine // connection machinery (engine.go)
}

// New returns a server configured by opts, or the errors of every invalid
// option (each an *OptionError naming the field and the fix). New does no
// I/O: register handlers, then call Start, then serve.
func New(opts Options) (*Server, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{
		opts:   opts,
		log:    opts.Logger,
		nodeID: newNodeID(),
		exec:   make(chan struct{}, opts.MaxHandlers),
		done:   make(chan struct{}),
	}
	if s.opts.Backend == nil { // one node: the in-memory backend, owned by the server
		s.ownBackend = backend.NewMemory(backend.MemoryOptions{})
		s.opts.Backend = s.ownBackend
	}
	for _, p := range s.opts.TrustedProxies {
		pfx, _ := parsePrefix(p) // validated by withDefaults
		s.trusted = append(s.trusted, pfx)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.scopes.init()
	s.pub = newPublisher(s)
	s.serverEvents = newServerEvents(s)
	s.saver = newCRDTSaver(s)
	s.counters = newCounters()
	s.obs = s.counters
	if _, nop := opts.Observer.(NopObserver); !nop {
		s.obs = multiObserver{s.counters, opts.Observer}
	}
	s.hub.init()
	s.registerResync()
	s.registerRecover()
	s.registerPresence()
	s.hooks.onCRDTOp = s.handleCRDTOp
	if opts.Auth == nil {
		s.opts.Auth = Anonymous
		s.log.Warn("datasole: auth is open: every upgrade is admitted as an anonymous principal; set Options.Auth for any exposed deployment")
	}
	return s, nil
}

// ErrNotStarted is the reason upgrades are refused (503) before Start.
var ErrNotStarted = errors.New("datasole: server not started: call Server.Start before serving")

// Start connects the server to its backend — it joins the cluster bus and
// loads what it needs from the store — and starts the heartbeat. It returns
// the first failure (a backend that refuses Subscribe, say) instead of
// serving alone, and the errors of invalid handler registrations, so a
// misconfigured node fails at start. Upgrades are refused with 503 until
// Start has succeeded. Calling Start again returns nil.
func (s *Server) Start(ctx context.Context) error {
	s.startMu.Lock()
	defer s.startMu.Unlock()
	if s.started.Load() {
		return nil
	}
	if s.closing.Load() {
		return ErrClosed
	}
	if err := s.registrationErrors(); err != nil {
		return err
	}
	if err := s.startCluster(ctx); err != nil {
		if s.busCancel != nil {
			s.busCancel()
			s.busCancel = nil
		}
		return fmt.Errorf("datasole: joining the cluster: %w", err)
	}
	go s.saver.run()
	s.startPresence()
	if err := s.startSessions(); err != nil {
		return fmt.Errorf("datasole: starting sessions: %w", err)
	}
	if s.opts.HeartbeatInterval > 0 {
		s.heartbeat.Add(1)
		go s.runHeartbeat()
	}
	s.started.Store(true)
	return nil
}

// connOpened makes a new connection current and visible: its session is
// loaded, it joins the hub with what it needs to be current queued, the
// application's OnConnect hooks run. The engine calls it before reading.
//
// A connection admitted while Close runs is closed at once: Close has
// already collected the connections it shuts down.
func (s *Server) connOpened(c *Conn) {
	ctx, cancel := context.WithTimeout(s.ctx, busTimeout)
	s.acquireSession(ctx, c)
	s.attach(ctx, c)
	cancel()
	s.presenceOpened(c)
	s.obs.ConnOpened()
	if s.closing.Load() {
		c.setCloseReason("shutdown")
		c.closeNow(CloseGoingAway, "Server shutting down")
	}
	if exp := c.principal.ExpiresAt; !exp.IsZero() {
		c.expiry = time.AfterFunc(time.Until(exp), func() {
			c.setCloseReason("expired")
			c.closeNow(CloseSessionExpired, "session expired")
		})
	}
	s.hooks.connected(c)
}

// connClosed retires an ended connection whose socket is closed and whose
// writer has stopped: it leaves the hub, gives back its admission's slots,
// runs OnDisconnect hooks and releases its session.
func (s *Server) connClosed(c *Conn, a *Admission) {
	if c.expiry != nil {
		c.expiry.Stop()
	}
	s.detach(c)
	s.release(a) // before the counters move, so a caller seeing them sees the slot free
	s.hooks.disconnected(c)
	s.releaseSession(c)
	c.setCloseReason("closed")
	c.mu.Lock()
	reason, code := c.closeReason, c.closeCode
	c.mu.Unlock()
	s.obs.ConnClosed(reason, code)
	close(c.done)
}

// CloseUser closes every connection of a user, on every node of the
// cluster, with code and reason, e.g. CloseRevoked after a session was
// revoked. Their clients see
// the code; ours surface CloseRevoked and CloseSessionExpired as distinct
// errors.
func (s *Server) CloseUser(userID string, code int, reason string) {
	s.closeUserLocal(userID, code, reason)
	s.pub.enqueue(&busMsg{kind: busClose, target: ToUser(userID), version: uint64(code), key: reason})
}

func (s *Server) closeUserLocal(userID string, code int, reason string) {
	for _, c := range s.hub.userConns(userID) {
		c.setCloseReason("closed-by-server")
		c.closeNow(code, reason)
	}
}

// NodeID returns the random id of this server process. Connection ids start
// with it, so they are unique across the nodes of a cluster and restarts.
func (s *Server) NodeID() string { return s.nodeID }

// Options returns the effective options, defaults applied.
func (s *Server) Options() Options { return s.opts }

// ConnectionCount returns the number of open connections on this server.
func (s *Server) ConnectionCount() int { return s.hub.count() }

// Close stops accepting connections, lets RPCs in flight finish and queued
// frames drain until ctx is done, then closes every connection with 1001
// "Server shutting down". It returns ctx.Err() if ctx ended first (the
// remaining connections are closed at once).
func (s *Server) Close(ctx context.Context) error {
	s.closeMu.Lock()
	if s.closing.Swap(true) {
		s.closeMu.Unlock()
		s.wg.Wait()
		return nil
	}
	close(s.done)
	s.closeMu.Unlock()
	s.cancel() // connections being admitted stop waiting on the backend
	s.heartbeat.Wait()
	s.flushAllState()

	conns := s.hub.all()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.shutdown(ctx)
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); s.wg.Wait(); close(finished) }()
	var err error
	select {
	case <-finished:
	case <-ctx.Done():
		for _, c := range s.hub.all() {
			c.closeNow(CloseGoingAway, "Server shutting down")
		}
		<-finished
		err = ctx.Err()
	}
	s.stopEngine(ctx) // RPC handlers still running finish before the bus goes
	if s.busCancel != nil {
		s.busCancel() // nothing more arrives from other nodes
		s.busCancel = nil
	}
	s.serverEvents.close(ctx) // before the publisher stops: handlers may publish
	s.closeLimiter()
	s.exports.close(s)
	s.closePresence()
	s.bg.Wait()
	if s.started.Load() {
		// Writes the cluster must not lose get a short deadline of their
		// own even when ctx has ended: losing them is worse than a late exit.
		wctx, cancel := context.WithTimeout(context.Background(), busTimeout)
		s.saver.close(wctx)
		s.closeSessions(wctx)
		s.pub.close(wctx)
		cancel()
	}
	if s.ownBackend != nil {
		s.ownBackend.Close()
	}
	return err
}

func newNodeID() string {
	var b [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])
}
