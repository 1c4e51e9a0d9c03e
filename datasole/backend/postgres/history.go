package dspostgres

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math"

	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/jackc/pgx/v5"
)

// A history stream is a row of <table>_stream (epoch, top offset, lowest
// offset kept, expiries) and its entries in <table>_history, keyed by
// stream, epoch and offset. Stream names carry the prefix.

// statements holds the SQL that depends on the table names.
type statements struct {
	appendOnly, appendInline, appendRef string
	readHistory, createStream           string
	collectStreams, collectEntries      string
	collectPresence                     string
}

func expiry(param string) string {
	return `CASE WHEN ` + param + `::bigint > 0 THEN now() + ` + param + `::bigint * interval '1 millisecond' END`
}

func (b *Backend) prepareStatements() statements {
	metaExpired := `(t.expires_at IS NOT NULL AND t.expires_at <= now())`
	entriesExpired := `(t.entries_expire_at IS NOT NULL AND t.entries_expire_at <= now())`
	// $1 name, $2 new epoch, $3 ttl ms, $4 meta ttl ms, $5 size, $6 data.
	// The upsert takes the stream's row lock until commit, so appends to
	// one stream commit, and notify, in offset order.
	appendCTE := `WITH m AS (
	INSERT INTO ` + b.stream + ` AS t (name, epoch, top, first_kept, expires_at, entries_expire_at)
	VALUES ($1::bytea, $2::text, 1, 1, ` + expiry("$4") + `, ` + expiry("$3") + `)
	ON CONFLICT (name) DO UPDATE SET
		epoch = CASE WHEN ` + metaExpired + ` THEN EXCLUDED.epoch ELSE t.epoch END,
		top = CASE WHEN ` + metaExpired + ` THEN 1 ELSE t.top + 1 END,
		first_kept = CASE WHEN ` + metaExpired + ` THEN 1
			WHEN ` + entriesExpired + ` THEN t.top + 1
			ELSE GREATEST(t.first_kept, t.top + 2 - $5::bigint) END,
		expires_at = EXCLUDED.expires_at,
		entries_expire_at = EXCLUDED.entries_expire_at
	RETURNING epoch, top, first_kept
), added AS (
	INSERT INTO ` + b.history + ` (stream, epoch, pos, data) SELECT $1::bytea, epoch, top, $6::bytea FROM m
), trimmed AS (
	DELETE FROM ` + b.history + ` h USING m WHERE h.stream = $1::bytea AND h.epoch = m.epoch AND h.pos < m.first_kept
), reset AS (
	DELETE FROM ` + b.history + ` h USING m WHERE m.top = 1 AND h.stream = $1::bytea AND h.epoch <> m.epoch
)
`
	// $7 notification channel, $8 bus channel in base64, $9 stream name
	// without prefix.
	b64 := func(expr string) string { return `translate(encode(` + expr + `, 'base64'), E'\n', '')` }
	envelope := `'\x64736801'::bytea || int4send(octet_length($9::bytea)) || $9::bytea` +
		` || set_byte('\x00'::bytea, 0, octet_length(m.epoch)) || convert_to(m.epoch, 'UTF8') || int8send(m.top) || $6::bytea`
	return statements{
		appendOnly: appendCTE + `SELECT epoch, top FROM m`,
		appendInline: appendCTE + `SELECT epoch, top, pg_notify($7::text,
	json_build_object('c', $8::text, 'm', ` + b64(envelope) + `)::text) FROM m`,
		appendRef: appendCTE + `SELECT epoch, top, pg_notify($7::text,
	json_build_object('c', $8::text, 's', ` + b64("$9::bytea") + `, 'e', m.epoch, 'o', m.top)::text) FROM m`,

		// $1 name, $2 since epoch, $3 since offset, $4 limit (NULL: all).
		// One statement reads the metadata and the entries from one
		// snapshot, so trimming in between cannot open a hole.
		readHistory: `SELECT s.epoch, s.top, s.first_kept,
	(s.entries_expire_at IS NOT NULL AND s.entries_expire_at <= now()),
	(s.expires_at IS NOT NULL AND s.expires_at <= now()),
	h.pos, h.data
FROM ` + b.stream + ` s LEFT JOIN LATERAL (
	SELECT pos, data FROM ` + b.history + `
	WHERE stream = s.name AND epoch = s.epoch AND s.epoch = $2::text AND pos > $3::bigint AND pos >= s.first_kept
	ORDER BY pos LIMIT $4::bigint
) h ON true
WHERE s.name = $1::bytea
ORDER BY h.pos`,

		// $1 name, $2 new epoch, $3 meta ttl ms. Returns no row when a
		// live stream exists (created concurrently).
		createStream: `INSERT INTO ` + b.stream + ` AS t (name, epoch, top, first_kept, expires_at, entries_expire_at)
VALUES ($1::bytea, $2::text, 0, 1, ` + expiry("$3") + `, NULL)
ON CONFLICT (name) DO UPDATE SET epoch = EXCLUDED.epoch, top = 0, first_kept = 1,
	expires_at = EXCLUDED.expires_at, entries_expire_at = NULL
	WHERE ` + metaExpired + `
RETURNING epoch`,

		collectStreams: `WITH gone AS (DELETE FROM ` + b.stream + ` WHERE expires_at <= now() RETURNING name)
DELETE FROM ` + b.history + ` h USING gone WHERE h.stream = gone.name`,
		// Streams whose entries expired keep their epoch and top; what is
		// kept starts after the top.
		collectEntries: `WITH cleared AS (
	UPDATE ` + b.stream + ` SET first_kept = top + 1, entries_expire_at = NULL
	WHERE entries_expire_at <= now() AND (expires_at IS NULL OR expires_at > now())
	RETURNING name
)
DELETE FROM ` + b.history + ` h USING cleared WHERE h.stream = cleared.name`,
		collectPresence: `DELETE FROM ` + b.presence + ` p
WHERE NOT EXISTS (SELECT 1 FROM ` + b.nodes + ` n WHERE n.node = p.node AND n.expires_at > now())`,
	}
}

// maxInlineData is a conservative bound on channel, stream and data for a
// history notification to fit inline: base64 grows 4/3, plus the envelope
// header, the epoch and the JSON around.
const maxInlineData = (maxInline-200)*3/4 - 64

// AppendPublish implements backend.History in one statement: the stream's
// row is upserted (taking its lock until commit), the entry inserted, older
// entries trimmed, and the envelope notified. Postgres delivers
// notifications in commit order, which the row lock makes offset order.
// Envelopes too large for a notification are read back by the listeners
// from the history table.
func (b *Backend) AppendPublish(ctx context.Context, stream, channel string, data []byte, o backend.StreamOptions) (backend.Position, error) {
	o, err := o.Resolve()
	if err != nil {
		return backend.Position{}, err
	}
	if err := b.check(ctx); err != nil {
		return backend.Position{}, err
	}
	if data == nil {
		data = []byte{}
	}
	args := []any{b.key(stream), backend.NewEpoch(), o.TTL.Milliseconds(), o.MetaTTL.Milliseconds(), o.Size, data}
	sql := b.sql.appendOnly
	if channel != "" {
		sql = b.sql.appendInline
		if len(channel)+len(stream)+len(data) > maxInlineData {
			sql = b.sql.appendRef
		}
		args = append(args, b.channel, base64.StdEncoding.EncodeToString([]byte(channel)), []byte(stream))
	}
	var (
		epoch string
		top   int64
	)
	dest := []any{&epoch, &top}
	if channel != "" {
		dest = append(dest, nil) // pg_notify's void
	}
	if err := b.pool.QueryRow(ctx, sql, args...).Scan(dest...); err != nil {
		return backend.Position{}, b.fail("append", err)
	}
	return backend.Position{Epoch: epoch, Offset: uint64(top)}, nil
}

// ReadHistory implements backend.History: one query reads the stream's
// metadata and the entries after since; a missing or expired stream is
// created with a fresh epoch.
func (b *Backend) ReadHistory(ctx context.Context, stream string, since backend.Position, limit int, o backend.StreamOptions) ([]backend.HistoryEntry, backend.Position, error) {
	o, err := o.Resolve()
	if err != nil {
		return nil, backend.Position{}, err
	}
	if err := b.check(ctx); err != nil {
		return nil, backend.Position{}, err
	}
	var lim any // NULL: no limit
	if limit > 0 {
		lim = int64(limit)
	}
	sinceOffset := int64(min(since.Offset, math.MaxInt64))
	for attempt := 0; attempt < 3; attempt++ {
		rows, err := b.pool.Query(ctx, b.sql.readHistory, b.key(stream), since.Epoch, sinceOffset, lim)
		if err != nil {
			return nil, backend.Position{}, b.fail("read history", err)
		}
		var (
			top            backend.Position
			first          int64
			entriesExpired bool
			metaExpired    bool
			found          bool
			entries        []backend.HistoryEntry
		)
		for rows.Next() {
			var (
				epoch string
				t     int64
				pos   *int64
				data  []byte
			)
			if err := rows.Scan(&epoch, &t, &first, &entriesExpired, &metaExpired, &pos, &data); err != nil {
				rows.Close()
				return nil, backend.Position{}, b.fail("read history", err)
			}
			found, top = true, backend.Position{Epoch: epoch, Offset: uint64(t)}
			if pos != nil {
				if data == nil {
					data = []byte{}
				}
				entries = append(entries, backend.HistoryEntry{Offset: uint64(*pos), Data: data})
			}
		}
		if err := rows.Err(); err != nil {
			return nil, backend.Position{}, b.fail("read history", err)
		}
		if !found || metaExpired {
			created, err := b.createStream(ctx, stream, o)
			if err != nil {
				return nil, backend.Position{}, err
			}
			if created == "" {
				continue // created by another node meanwhile: read it
			}
			top = backend.Position{Epoch: created}
			if since.Epoch == "" {
				return nil, top, nil
			}
			return nil, top, backend.ErrUnrecoverable
		}
		switch {
		case since.Epoch == "":
			return nil, top, nil
		case since.Epoch != top.Epoch || since.Offset > top.Offset:
			return nil, top, backend.ErrUnrecoverable
		case since.Offset == top.Offset:
			return nil, top, nil
		case entriesExpired || since.Offset+1 < uint64(first) ||
			len(entries) == 0 || entries[0].Offset != since.Offset+1:
			return nil, top, backend.ErrUnrecoverable
		}
		return entries, top, nil
	}
	return nil, backend.Position{}, fmt.Errorf("dspostgres: read history: stream %q kept changing", stream)
}

// createStream creates the stream's metadata with a new epoch, replacing
// expired metadata, and returns the epoch; "" when a live stream exists.
func (b *Backend) createStream(ctx context.Context, stream string, o backend.StreamOptions) (string, error) {
	var epoch string
	err := b.pool.QueryRow(ctx, b.sql.createStream, b.key(stream), backend.NewEpoch(), o.MetaTTL.Milliseconds()).Scan(&epoch)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", b.fail("read history", err)
	}
	return epoch, nil
}
