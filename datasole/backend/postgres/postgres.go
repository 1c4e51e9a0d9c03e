// Package dspostgres is the PostgreSQL backend for datasole: several nodes
// sharing one database see the same versioned state and exchange messages
// over LISTEN/NOTIFY.
//
// New creates its tables if they are missing: <table>_kv (key BYTEA, value
// BYTEA, version BIGINT, expires_at TIMESTAMPTZ), <table>_bus for large
// messages, <table>_stream and <table>_history for history streams, and
// <table>_presence and <table>_nodes for presence. Compare-and-set is an
// UPDATE guarded by the version; expiry uses the database clock, and expired
// rows are deleted periodically.
//
// The backend implements every optional interface of package backend:
// GetMany is one query (key = ANY($1)); a history append is one statement
// that takes the stream's row lock, inserts the entry, trims old ones and
// notifies, so subscribers receive a stream's messages in offset order;
// presence joins entries with one liveness row per node.
//
// # Durability
//
// Versions must never go back, so a write the backend acknowledged must
// survive a database crash. With synchronous_commit=off, Postgres
// acknowledges commits before their WAL is flushed, and a crash or an
// immediate restart loses the last of them: versions already handed to
// clients are then given again to different values. New therefore refuses a
// pool whose connections run with synchronous_commit=off, unless
// Options.AllowAsyncCommit is set; backends opened from a URL set it to on
// for their own connections. New logs a warning when fsync is off (the
// server can then lose data in an operating-system crash).
//
// The bus is one NOTIFY channel per prefix. A message whose notification
// would exceed Postgres' payload limit (8000 bytes) is written to the bus
// table, and the notification carries the row's id; rows are deleted after
// Options.BusRetention. A dedicated connection LISTENs; when it is lost it
// reconnects, LISTENs again and reports a gap (backend.GapNotifier).
//
// Errors that mean the database cannot be reached or cannot serve now
// (connection refused or lost, the server shutting down or starting, a
// read-only standby after a failover) match backend.ErrUnavailable.
//
// Importing the package registers the URL schemes postgres and postgresql
// with backend.Open.
package dspostgres

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

func init() {
	backend.Register("postgres", open)
	backend.Register("postgresql", open)
}

// Options configures New. The zero value is ready to use.
type Options struct {
	// Prefix namespaces keys and channels. Empty means backend.DefaultPrefix.
	Prefix string
	// Table is the name stem of the tables. Empty means "datasole".
	Table string
	// SubscriberQueueBytes bounds each subscription's queue while its
	// handler is busy. Zero means backend.DefaultSubscriberQueueBytes.
	SubscriberQueueBytes int
	// BusRetention is how long large messages stay in the bus table. Zero
	// means one minute.
	BusRetention time.Duration
	// CleanupInterval is how often expired keys, old bus rows, expired
	// history and the presence entries of dead nodes are deleted. Zero
	// means one minute.
	CleanupInterval time.Duration
	// Logger receives the backend's warnings (lost listening connection,
	// unsafe settings, a subscription dropping messages) and the server's
	// notices on the listening connection. Nil means slog.Default().
	Logger *slog.Logger
	// AllowAsyncCommit lets New accept a pool whose connections run with
	// synchronous_commit=off, with a logged warning instead of an error.
	// A database crash can then lose acknowledged writes, and versions go
	// back (see Durability in the package documentation).
	AllowAsyncCommit bool
}

// ErrAsyncCommit is returned by New for a pool whose connections run with
// synchronous_commit=off, unless Options.AllowAsyncCommit is set.
var ErrAsyncCommit = errors.New("dspostgres: synchronous_commit is off: a database crash can lose acknowledged writes and versions would go back; " +
	"set it on for the backend's role or database (ALTER ROLE … SET synchronous_commit = on) or in the pool's RuntimeParams, or set Options.AllowAsyncCommit")

// maxInline is the largest notification payload sent inline; Postgres
// refuses payloads of 8000 bytes and more.
const maxInline = 7000

// Backend is a backend.Backend on a PostgreSQL database. Create it with New.
type Backend struct {
	pool      *pgxpool.Pool
	ownsPool  bool
	prefix    string
	kv, bus   string // quoted table names
	stream    string
	history   string
	presence  string
	nodes     string
	channel   string
	retention time.Duration
	log       *slog.Logger
	disp      *backend.Dispatcher
	stop      context.CancelFunc
	wg        sync.WaitGroup
	sql       statements

	mu     sync.RWMutex
	closed bool
}

var (
	_ backend.Backend     = (*Backend)(nil)
	_ backend.GapNotifier = (*Backend)(nil)
	_ backend.BatchGetter = (*Backend)(nil)
	_ backend.History     = (*Backend)(nil)
	_ backend.Presence    = (*Backend)(nil)
)

// New checks the pool's durability settings, creates the tables if needed,
// starts listening and returns the backend. The caller keeps ownership of
// pool: Close does not close it.
func New(ctx context.Context, pool *pgxpool.Pool, opts Options) (*Backend, error) {
	if opts.Prefix == "" {
		opts.Prefix = backend.DefaultPrefix
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Table == "" {
		opts.Table = "datasole"
	}
	if opts.BusRetention <= 0 {
		opts.BusRetention = time.Minute
	}
	if opts.CleanupInterval <= 0 {
		opts.CleanupInterval = time.Minute
	}
	sum := sha256.Sum256([]byte(opts.Table + "\x00" + opts.Prefix))
	table := func(suffix string) string { return pgx.Identifier{opts.Table + suffix}.Sanitize() }
	b := &Backend{
		pool:      pool,
		prefix:    opts.Prefix,
		kv:        table("_kv"),
		bus:       table("_bus"),
		stream:    table("_stream"),
		history:   table("_history"),
		presence:  table("_presence"),
		nodes:     table("_nodes"),
		channel:   "ds_" + hex.EncodeToString(sum[:12]),
		retention: opts.BusRetention,
		log:       opts.Logger,
	}
	if err := b.checkSettings(ctx, opts.AllowAsyncCommit); err != nil {
		return nil, err
	}
	// The lock keeps nodes starting together from racing to create the
	// same tables, which Postgres reports as a unique violation.
	lock := int64(binary.BigEndian.Uint64(sum[12:20]))
	if _, err := pool.Exec(ctx, `SELECT pg_advisory_xact_lock(`+strconv.FormatInt(lock, 10)+`);
CREATE TABLE IF NOT EXISTS `+b.kv+` (
	key BYTEA PRIMARY KEY,
	value BYTEA NOT NULL,
	version BIGINT NOT NULL,
	expires_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS `+b.bus+` (
	id BIGSERIAL PRIMARY KEY,
	channel BYTEA NOT NULL,
	payload BYTEA NOT NULL,
	created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS `+b.stream+` (
	name BYTEA PRIMARY KEY,
	epoch TEXT NOT NULL,
	top BIGINT NOT NULL,
	first_kept BIGINT NOT NULL,
	expires_at TIMESTAMPTZ,
	entries_expire_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS `+b.history+` (
	stream BYTEA NOT NULL,
	epoch TEXT NOT NULL,
	pos BIGINT NOT NULL,
	data BYTEA NOT NULL,
	PRIMARY KEY (stream, epoch, pos)
);
CREATE TABLE IF NOT EXISTS `+b.presence+` (
	set_name BYTEA NOT NULL,
	conn BYTEA NOT NULL,
	node BYTEA NOT NULL,
	user_id BYTEA NOT NULL,
	info BYTEA NOT NULL,
	PRIMARY KEY (set_name, conn)
);
CREATE INDEX IF NOT EXISTS `+table("_presence_node")+` ON `+b.presence+` (node);
CREATE TABLE IF NOT EXISTS `+b.nodes+` (
	node BYTEA PRIMARY KEY,
	expires_at TIMESTAMPTZ NOT NULL
)`); err != nil {
		return nil, b.fail("create tables", err)
	}
	b.sql = b.prepareStatements()
	conn, err := b.listen(ctx)
	if err != nil {
		return nil, err
	}
	b.disp = backend.NewDispatcher(backend.DispatcherOptions{QueueBytes: opts.SubscriberQueueBytes, Logger: opts.Logger})
	runCtx, stop := context.WithCancel(context.Background())
	b.stop = stop
	b.wg.Add(2)
	go b.receive(runCtx, conn)
	go b.cleanup(runCtx, opts.CleanupInterval)
	return b, nil
}

func open(ctx context.Context, u *url.URL, prefix string) (backend.Backend, error) {
	cfg, err := pgxpool.ParseConfig(u.String())
	if err != nil {
		return nil, err
	}
	if _, set := cfg.ConnConfig.RuntimeParams["synchronous_commit"]; !set {
		cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "on"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	b, err := New(ctx, pool, Options{Prefix: prefix})
	if err != nil {
		pool.Close()
		return nil, err
	}
	b.ownsPool = true
	return b, nil
}

// listen opens the dedicated connection that receives notifications.
func (b *Backend) listen(ctx context.Context) (*pgx.Conn, error) {
	cfg := b.pool.Config().ConnConfig.Copy()
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		b.log.Info("dspostgres: server notice", "severity", n.Severity, "code", n.Code, "message", n.Message)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, b.fail("listen", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+b.channel); err != nil {
		_ = conn.Close(ctx)
		return nil, b.fail("listen", err)
	}
	return conn, nil
}

// receive routes notifications until ctx ends, reconnecting with backoff
// whenever the listening connection is lost.
func (b *Backend) receive(ctx context.Context, conn *pgx.Conn) {
	defer b.wg.Done()
	backoff := 50 * time.Millisecond
	for {
		for conn == nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			var err error
			if conn, err = b.listen(ctx); err != nil {
				backoff = min(2*backoff, 5*time.Second)
				continue
			}
			backoff = 50 * time.Millisecond
			b.log.Info("dspostgres: listening again; messages sent meanwhile are lost")
			b.disp.Gap()
		}
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			_ = conn.Close(context.Background())
			conn = nil
			if ctx.Err() == nil {
				b.log.Warn("dspostgres: listening connection lost; reconnecting", "error", err)
			}
			continue
		}
		b.deliver(ctx, n.Payload)
	}
}

// notification is the NOTIFY payload: a message inline, the id of the bus
// row holding it, or for a history entry too large to travel inline its
// stream (without prefix), epoch and offset.
type notification struct {
	Channel []byte `json:"c,omitempty"`
	Msg     []byte `json:"m,omitempty"`
	Ref     int64  `json:"r,omitempty"`
	Stream  []byte `json:"s,omitempty"`
	Epoch   string `json:"e,omitempty"`
	Offset  int64  `json:"o,omitempty"`
}

func decodeNotification(payload string) (notification, error) {
	var n notification
	if err := json.Unmarshal([]byte(payload), &n); err != nil {
		return n, fmt.Errorf("dspostgres: bad notification: %w", err)
	}
	return n, nil
}

func (b *Backend) deliver(ctx context.Context, payload string) {
	n, err := decodeNotification(payload)
	if err != nil {
		return // not ours: another program notifying on our channel
	}
	// Rows are fetched before the next notification so that order is kept.
	switch {
	case n.Ref != 0:
		err := b.pool.QueryRow(ctx, `SELECT channel, payload FROM `+b.bus+` WHERE id = $1`, n.Ref).Scan(&n.Channel, &n.Msg)
		if err != nil {
			b.disp.Gap()
			return
		}
	case n.Epoch != "":
		var data []byte
		err := b.pool.QueryRow(ctx, `SELECT data FROM `+b.history+` WHERE stream = $1 AND epoch = $2 AND pos = $3`,
			append([]byte(b.prefix), n.Stream...), n.Epoch, n.Offset).Scan(&data)
		if err != nil {
			// Trimmed or expired already: subscribers recover from history.
			b.disp.Gap()
			return
		}
		n.Msg = backend.EncodeStreamEnvelope(string(n.Stream), backend.Position{Epoch: n.Epoch, Offset: uint64(n.Offset)}, data)
	}
	if n.Msg == nil {
		n.Msg = []byte{}
	}
	b.disp.Dispatch(string(n.Channel), n.Msg)
}

func (b *Backend) cleanup(ctx context.Context, every time.Duration) {
	defer b.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b.collect(ctx)
	}
}

// collect deletes what has expired. Errors are logged and left for the
// next round; operations report their own.
func (b *Backend) collect(ctx context.Context) {
	for _, q := range []struct {
		what, sql string
		args      []any
	}{
		{"expired keys", `DELETE FROM ` + b.kv + ` WHERE expires_at <= now()`, nil},
		{"bus rows", `DELETE FROM ` + b.bus + ` WHERE created_at < now() - $1::bigint * interval '1 millisecond'`, []any{b.retention.Milliseconds()}},
		{"expired streams", b.sql.collectStreams, nil},
		{"expired history", b.sql.collectEntries, nil},
		{"presence of dead nodes", b.sql.collectPresence, nil},
		{"dead nodes", `DELETE FROM ` + b.nodes + ` WHERE expires_at <= now()`, nil},
	} {
		if _, err := b.pool.Exec(ctx, q.sql, q.args...); err != nil && ctx.Err() == nil {
			b.log.Warn("dspostgres: cleanup failed", "what", q.what, "error", err)
		}
	}
}

func (b *Backend) check(ctx context.Context) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return backend.ErrClosed
	}
	return ctx.Err()
}

func (b *Backend) key(k string) []byte { return []byte(b.prefix + k) }

const live = `(expires_at IS NULL OR expires_at > now())`

// expired is true for a conflicting row that has expired; such a row is
// replaced as if it did not exist.
const expired = `(t.expires_at IS NOT NULL AND t.expires_at <= now())`

const expiresAt = `CASE WHEN $3::bigint > 0 THEN now() + $3::bigint * interval '1 millisecond' END`

func ttlMillis(ttl time.Duration) int64 {
	if ttl <= 0 {
		return 0
	}
	return max(ttl.Milliseconds(), 1)
}

// Get implements backend.Backend.
func (b *Backend) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	if err := b.check(ctx); err != nil {
		return nil, 0, err
	}
	var (
		v []byte
		n int64
	)
	err := b.pool.QueryRow(ctx, `SELECT value, version FROM `+b.kv+` WHERE key = $1 AND `+live, b.key(key)).Scan(&v, &n)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, backend.ErrNotFound
	}
	if err != nil {
		return nil, 0, b.fail("get", err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, uint64(n), nil
}

// GetMany implements backend.BatchGetter in one query.
func (b *Backend) GetMany(ctx context.Context, keys []string) ([]backend.Versioned, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	out := make([]backend.Versioned, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	full := make([][]byte, len(keys))
	for i, k := range keys {
		full[i] = b.key(k)
	}
	rows, err := b.pool.Query(ctx, `SELECT key, value, version FROM `+b.kv+` WHERE key = ANY($1) AND `+live, full)
	if err != nil {
		return nil, b.fail("get many", err)
	}
	defer rows.Close()
	found := make(map[string]backend.Versioned, len(keys))
	for rows.Next() {
		var (
			k, v []byte
			n    int64
		)
		if err := rows.Scan(&k, &v, &n); err != nil {
			return nil, b.fail("get many", err)
		}
		if v == nil {
			v = []byte{}
		}
		found[string(k[len(b.prefix):])] = backend.Versioned{Value: v, Version: uint64(n)}
	}
	if err := rows.Err(); err != nil {
		return nil, b.fail("get many", err)
	}
	given := make(map[string]bool, len(found))
	for i, k := range keys {
		if e, ok := found[k]; ok {
			if given[k] { // a key asked twice gets its own copy
				e.Value = append([]byte{}, e.Value...)
			}
			out[i], given[k] = e, true
		}
	}
	return out, nil
}

// Set implements backend.Backend.
func (b *Backend) Set(ctx context.Context, key string, value []byte, ttl time.Duration) (uint64, error) {
	return b.write(ctx, `INSERT INTO `+b.kv+` AS t (key, value, version, expires_at) VALUES ($1, $2, 1, `+expiresAt+`)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at,
	version = CASE WHEN `+expired+` THEN 1 ELSE t.version + 1 END
RETURNING version`, key, value, ttl)
}

// CompareAndSet implements backend.Backend.
func (b *Backend) CompareAndSet(ctx context.Context, key string, value []byte, expect uint64, ttl time.Duration) (uint64, error) {
	if expect == 0 {
		return b.write(ctx, `INSERT INTO `+b.kv+` AS t (key, value, version, expires_at) VALUES ($1, $2, 1, `+expiresAt+`)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at, version = 1
	WHERE `+expired+`
RETURNING version`, key, value, ttl)
	}
	return b.write(ctx, `UPDATE `+b.kv+` SET value = $2, version = version + 1, expires_at = `+expiresAt+`
WHERE key = $1 AND version = $4 AND `+live+`
RETURNING version`, key, value, ttl, int64(expect))
}

func (b *Backend) write(ctx context.Context, sql, key string, value []byte, ttl time.Duration, extra ...any) (uint64, error) {
	if err := b.check(ctx); err != nil {
		return 0, err
	}
	if value == nil {
		value = []byte{} // NULL would violate NOT NULL
	}
	var v int64
	err := b.pool.QueryRow(ctx, sql, append([]any{b.key(key), value, ttlMillis(ttl)}, extra...)...).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, backend.ErrConflict
	}
	if err != nil {
		return 0, b.fail("write", err)
	}
	return uint64(v), nil
}

// Delete implements backend.Backend.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	if _, err := b.pool.Exec(ctx, `DELETE FROM `+b.kv+` WHERE key = $1`, b.key(key)); err != nil {
		return b.fail("delete", err)
	}
	return nil
}

// Incr implements backend.Backend.
func (b *Backend) Incr(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	if err := b.check(ctx); err != nil {
		return 0, err
	}
	var n int64
	err := b.pool.QueryRow(ctx, `INSERT INTO `+b.kv+` AS t (key, value, version, expires_at)
VALUES ($1, convert_to($2::bigint::text, 'UTF8'), 1, `+expiresAt+`)
ON CONFLICT (key) DO UPDATE SET
	value = CASE WHEN `+expired+` THEN EXCLUDED.value
		ELSE convert_to((convert_from(t.value, 'UTF8')::bigint + $2::bigint)::text, 'UTF8') END,
	version = CASE WHEN `+expired+` THEN 1 ELSE t.version + 1 END,
	expires_at = CASE WHEN `+expired+` THEN EXCLUDED.expires_at ELSE t.expires_at END
RETURNING convert_from(value, 'UTF8')::bigint`, b.key(key), delta, ttlMillis(ttl)).Scan(&n)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code[:2] == "22") { // data exception: not an integer, overflow
		return 0, backend.ErrNotCounter
	}
	if err != nil {
		return 0, b.fail("incr", err)
	}
	return n, nil
}

// Keys implements backend.Backend.
func (b *Backend) Keys(ctx context.Context, prefix string) ([]string, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	rows, err := b.pool.Query(ctx, `SELECT key FROM `+b.kv+` WHERE substring(key FROM 1 FOR length($1::bytea)) = $1 AND `+live, b.key(prefix))
	if err != nil {
		return nil, b.fail("keys", err)
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var k []byte
		err := r.Scan(&k)
		return string(k[len(b.prefix):]), err
	})
	if err != nil {
		return nil, b.fail("keys", err)
	}
	return keys, nil
}

// Publish implements backend.Backend. Messages too large for a notification
// go through the bus table in the same statement as their notification.
func (b *Backend) Publish(ctx context.Context, channel string, msg []byte) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	inline, err := json.Marshal(notification{Channel: []byte(channel), Msg: msg})
	if err != nil {
		return b.fail("publish", err)
	}
	if len(inline) <= maxInline {
		_, err = b.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, b.channel, string(inline))
	} else {
		_, err = b.pool.Exec(ctx, `WITH row AS (INSERT INTO `+b.bus+` (channel, payload) VALUES ($2, $3) RETURNING id)
SELECT pg_notify($1, '{"r":' || id || '}') FROM row`, b.channel, []byte(channel), msg)
	}
	if err != nil {
		return b.fail("publish", err)
	}
	return nil
}

// Subscribe implements backend.Backend.
func (b *Backend) Subscribe(ctx context.Context, channel string, handler func(msg []byte)) (func(), error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	return b.disp.Subscribe(channel, handler)
}

// OnGap implements backend.GapNotifier: fn runs after the listening
// connection was lost and is back, and when a subscription's queue
// overflowed.
func (b *Backend) OnGap(fn func()) { b.disp.OnGap(fn) }

// Close implements backend.Backend. It closes the pool only if the backend
// was opened from a URL.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	b.stop()
	b.wg.Wait()
	b.disp.Close()
	if b.ownsPool {
		b.pool.Close()
	}
	return nil
}
