package dsredis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"syscall"

	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/redis/go-redis/v9"
)

// fail wraps an error of operation op, classifying outages as
// backend.ErrUnavailable.
func (b *Backend) fail(op string, err error) error {
	return fmt.Errorf("dsredis: %s: %w", op, classify(err))
}

// classify marks the errors that mean Redis cannot serve right now: no
// connection, a timeout (the caller's deadline passing while Redis does not
// answer included), a server loading its data set, a replica after a
// failover, a cluster without quorum. A cancellation by the caller is left
// as it is.
func classify(err error) error {
	var netErr net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return err
	case errors.As(err, &netErr), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, redis.ErrPoolExhausted),
		redis.IsLoadingError(err), redis.IsReadOnlyError(err), redis.IsClusterDownError(err),
		redis.IsTryAgainError(err), redis.IsMasterDownError(err), redis.IsMaxClientsError(err),
		redis.HasErrorPrefix(err, "BUSY"):
		return backend.Unavailable(err)
	}
	return err
}

// logAdapter turns go-redis's log lines into records of a slog.Logger.
// go-redis gives them no level; they report trouble, so they are warnings.
type logAdapter struct{ log *slog.Logger }

func (l logAdapter) Printf(ctx context.Context, format string, v ...any) {
	l.log.Log(ctx, slog.LevelWarn, strings.TrimSpace(fmt.Sprintf(format, v...)), "library", "go-redis")
}
