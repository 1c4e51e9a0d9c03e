package dspostgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/jackc/pgx/v5/pgconn"
)

// fail wraps an error of operation op, classifying outages as
// backend.ErrUnavailable.
func (b *Backend) fail(op string, err error) error {
	return fmt.Errorf("dspostgres: %s: %w", op, classify(err))
}

// classify marks the errors that mean the database cannot serve right now,
// the caller's deadline passing while it does not answer included. A
// cancellation by the caller is left as it is.
func classify(err error) error {
	switch {
	case errors.Is(err, context.Canceled):
		return err
	case errors.Is(err, context.DeadlineExceeded):
		return backend.Unavailable(err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		if unavailableState(pgErr.Code) {
			return backend.Unavailable(err)
		}
		return err
	}
	var (
		connectErr *pgconn.ConnectError
		netErr     net.Error
	)
	switch {
	case errors.As(err, &connectErr), errors.As(err, &netErr), pgconn.SafeToRetry(err),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return backend.Unavailable(err)
	}
	return err
}

// unavailableState reports the SQLSTATEs of a server that cannot serve now:
// connection exceptions (class 08), shutdown or startup (57P01-57P03), too
// many connections (53300), and a read-only standby (25006), as seen
// right after a failover.
func unavailableState(code string) bool {
	switch code {
	case "57P01", "57P02", "57P03", "53300", "25006":
		return true
	}
	return strings.HasPrefix(code, "08")
}

// checkSettings refuses synchronous_commit=off unless allowed, and warns
// about fsync=off. See Durability in the package documentation.
func (b *Backend) checkSettings(ctx context.Context, allowAsync bool) error {
	var syncCommit, fsync string
	if err := b.pool.QueryRow(ctx, `SELECT current_setting('synchronous_commit'), current_setting('fsync')`).Scan(&syncCommit, &fsync); err != nil {
		return b.fail("read settings", err)
	}
	if syncCommit == "off" {
		if !allowAsync {
			return ErrAsyncCommit
		}
		b.log.Warn("dspostgres: synchronous_commit is off: a database crash can lose acknowledged writes and versions go back")
	}
	if fsync == "off" {
		b.log.Warn("dspostgres: fsync is off on the server: an operating-system crash can lose or corrupt data")
	}
	return nil
}
