package datasole

import (
	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/datasole/datasole-go/datasole/session"

	"context"
	"crypto/rand"
	"encoding/base32"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
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
	syncMu  sync.RWMutex
	rpcs    sync.Map // method -> rpcFunc
	events  eventRegistry
	hooks   hooks
	exec    chan struct{} // executor slots
	stats   Stats
	reserve atomic.Int64 // admitted connections (reserved before upgrade)
	perPeer peerCounts

	busCancel   func() // ends the cluster bus subscription
	sessions    *session.Store
	ownBackend  *backend.Memory // for sessions when Options.Backend is nil
	lastSampled atomic.Int64    // unix nanos of the last sampled log line

	closing   atomic.Bool
	done      chan struct{} // closed when Close starts
	closeMu   sync.Mutex
	wg        sync.WaitGroup // connection goroutines
	heartbeat sync.WaitGroup
}

// New returns a server configured by opts.
func New(opts Options) *Server {
	opts = opts.withDefaults()
	s := &Server{
		opts:   opts,
		log:    opts.Logger,
		obs:    opts.Observer,
		nodeID: newNodeID(),
		exec:   make(chan struct{}, opts.MaxHandlers),
		done:   make(chan struct{}),
	}
	s.hub.init()
	s.registerResync()
	s.hooks.onCRDTOp = s.handleCRDTOp
	s.OnDisconnect(s.releaseCRDTQuota)
	if opts.Auth == nil {
		s.opts.Auth = Anonymous
		s.log.Warn("datasole: auth is open: every upgrade is admitted as an anonymous principal; set Options.Auth for any exposed deployment")
	}
	if opts.Backend != nil {
		if err := s.startCluster(); err != nil {
			s.log.Error("datasole: joining the cluster bus", "err", err)
		}
	}
	if err := s.startSessions(); err != nil {
		s.log.Error("datasole: starting sessions", "err", err)
	}
	if opts.HeartbeatInterval > 0 {
		s.heartbeat.Add(1)
		go s.runHeartbeat()
	}
	return s
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

func (s *Server) runHeartbeat() {
	defer s.heartbeat.Done()
	t := time.NewTicker(s.opts.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			s.hub.each(func(c *Conn) { c.push(outMsg{kind: outPing}) })
		}
	}
}

func newNodeID() string {
	var b [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])
}
