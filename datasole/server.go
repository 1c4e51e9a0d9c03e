package datasole

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
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

	hub   hub
	live  live
	crdts crdtRegistry
	// syncMu orders state changes against connections joining a scope:
	// changes hold it shared, attaching a connection (and its snapshots)
	// holds it exclusively, so a joiner gets each key as a snapshot or as a
	// later patch, never neither and never a patch against an unseen value.
	syncMu   sync.RWMutex
	rpcs     sync.Map // method -> rpcFunc
	events   eventRegistry
	hooks    hooks
	exec     chan struct{} // executor slots
	counters *counters     // the built-in Observer behind Snapshot
	reserve  atomic.Int64  // admitted connections (reserved before upgrade)
	perPeer  peerCounts

	startMu    sync.Mutex
	started    atomic.Bool
	regErrs    []error // invalid registrations, returned by Start; guarded by startMu
	busCancel  func()  // ends the cluster bus subscription
	sessions   *session.Store
	ownBackend *backend.Memory // for sessions when Options.Backend is nil
	sampled    sync.Map        // log message -> *atomic.Int64, unix nanos of its last line

	closing   atomic.Bool
	done      chan struct{} // closed when Close starts
	closeMu   sync.Mutex
	wg        sync.WaitGroup // connection goroutines
	heartbeat sync.WaitGroup
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
	s.counters = newCounters()
	s.obs = s.counters
	if _, nop := opts.Observer.(NopObserver); !nop {
		s.obs = multiObserver{s.counters, opts.Observer}
	}
	s.hub.init()
	s.registerResync()
	s.hooks.onCRDTOp = s.handleCRDTOp
	s.OnDisconnect(s.releaseCRDTQuota)
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
	if s.opts.Backend != nil {
		if err := s.startCluster(ctx); err != nil {
			if s.busCancel != nil {
				s.busCancel()
				s.busCancel = nil
			}
			return fmt.Errorf("datasole: joining the cluster bus: %w", err)
		}
	}
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
func (s *Server) connOpened(c *Conn) {
	s.acquireSession(c)
	s.attach(c)
	s.obs.ConnOpened()
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
	s.hub.remove(c)
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

// CloseUser closes every connection of a user on this server with code and
// reason, e.g. CloseRevoked after a session was revoked. Their clients see
// the code; ours surface CloseRevoked and CloseSessionExpired as distinct
// errors.
func (s *Server) CloseUser(userID string, code int, reason string) {
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
	s.heartbeat.Wait()
	s.flushAllState()
	if s.busCancel != nil {
		s.busCancel()
	}

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
	s.closeSessions()
	return err
}

// closeSessions writes every session back, even when ctx has ended (with a
// short deadline of its own): losing sessions is worse than a late exit.
func (s *Server) closeSessions() {
	if s.sessions != nil {
		ctx, cancel := context.WithTimeout(context.Background(), busTimeout)
		if err := s.sessions.Close(ctx); err != nil {
			s.backendError("session-flush", err)
		}
		cancel()
	}
	if s.ownBackend != nil {
		s.ownBackend.Close()
	}
}

func newNodeID() string {
	var b [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])
}
