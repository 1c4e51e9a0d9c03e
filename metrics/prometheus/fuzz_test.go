package dsprom_test

import (
	"bytes"
	"context"
	"testing"

	dsprom "github.com/datasole/datasole-go/metrics/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Method names come off the network: whatever a client sends, the number of
// series stays bounded and the exposition stays valid.
func FuzzMethodLabels(f *testing.F) {
	for _, seed := range []string{"echo", "", "other", "bad\xff", "a\nb\"c\\", "# HELP x"} {
		f.Add(seed)
	}
	const maxMethods = 4
	col := dsprom.New(dsprom.Options{MaxMethods: maxMethods})
	f.Fuzz(func(t *testing.T, method string) {
		_, done := col.StartRPC(context.Background(), method)
		done("ok")
		col.RPCRefused(method, "not-found")
		col.RPCRefused(method+"?", "not-found")
		if n := testutil.CollectAndCount(col, "datasole_rpc_duration_seconds"); n > maxMethods+1 {
			t.Fatalf("%d method series, at most %d allowed", n, maxMethods+1)
		}
		text, err := testutil.CollectAndFormat(col, expfmt.TypeTextPlain)
		if err != nil {
			t.Fatal(err)
		}
		parser := expfmt.NewTextParser(model.LegacyValidation)
		if _, err := parser.TextToMetricFamilies(bytes.NewReader(text)); err != nil {
			t.Fatalf("exposition after method %q does not parse: %v", method, err)
		}
	})
}
