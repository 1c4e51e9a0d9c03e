package client_test

import (
	"errors"
	"testing"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/client"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func asServerError(err error, target **client.ServerError) bool { return errors.As(err, target) }

func isRateLimited(err error) bool { return errors.Is(err, datasole.ErrRateLimited) }
