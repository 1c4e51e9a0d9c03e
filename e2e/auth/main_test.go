package auth_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Servers, stores and clients of every test leave no goroutine behind. The
// ignores name goroutines fasthttp starts once per process or stops only
// after a sleep (as in the fiber adapter's own tests), none per connection.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreTopFunction("github.com/valyala/fasthttp/stackless.funcWorker"),
	)
}
