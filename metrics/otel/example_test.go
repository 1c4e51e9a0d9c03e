package dsotel_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http/httptest"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/client"
	dsotel "github.com/datasole/datasole-go/metrics/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// Pass the application's providers (or none, for the global ones) and use
// the Observer as the server's.
func Example() {
	spans := tracetest.NewSpanRecorder() // in production: a batching exporter
	obs, err := dsotel.New(dsotel.Options{
		MeterProvider:  sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader())),
		TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ds, err := datasole.New(datasole.Options{Observer: obs, Auth: datasole.Anonymous})
	if err != nil {
		log.Fatal(err)
	}
	ds.HandleRPC("echo", func(c *datasole.Context, p json.RawMessage) (any, error) { return p, nil })
	if err := ds.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	hs := httptest.NewServer(ds.Handler())
	defer hs.Close()

	ctx := context.Background()
	c, err := client.Dial(ctx, hs.URL, client.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	c.CallRaw(ctx, "echo", "hi")
	c.Close()
	ds.Close(ctx)
	for _, s := range spans.Ended() {
		fmt.Println(s.Name())
		for _, kv := range s.Attributes() {
			fmt.Printf("  %s=%s\n", kv.Key, kv.Value.String())
		}
	}
	// Output:
	// datasole.rpc echo
	//   rpc.system=datasole
	//   rpc.method=echo
	//   datasole.rpc.outcome=ok
}
