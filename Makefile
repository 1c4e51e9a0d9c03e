# The few verbs people expect. `make demo` and `make test` work on a fresh machine.
.PHONY: demo test bench bench-compare generate fixture vet

ADDR ?= :3000

## demo: run the demo app (gin) on the in-memory backend at $(ADDR)
demo:
	go run ./demos/gin -addr $(ADDR)

## test: install/start Redis, PostgreSQL and Chromium, then test every module with -race
test:
	bash scripts/test.sh

## bench: run the benchmarks of the core
bench:
	cd datasole && go test -run '^$$' -bench . -benchmem ./...

## bench-compare: run datasole, the gorilla and nbio floors and centrifuge side by side
## (bench/cmd/compare, about 10 minutes); writes bench/results/ and the "Side by side"
## table and chart of docs/performance.md. Extra flags: make bench-compare BENCH_FLAGS='-idle 10000'.
## The harness raises its open-file limit itself (and the servers', which it starts);
## 100,000 idle connections need a hard limit above 101,024 (root with CAP_SYS_RESOURCE;
## without it that size is skipped and the table says why).
bench-compare:
	go run ./bench/cmd/compare -doc docs/performance.md -chart docs/bench-compare.svg $(BENCH_FLAGS)

## generate: rebuild the browser bundles from TypeScript (esbuild's Go API)
generate:
	cd datasole/web && go generate ./...

## fixture: run the interop fixture on 127.0.0.1:8080
fixture:
	go run ./demos/fixture -addr 127.0.0.1:8080

vet:
	for m in $$(go work edit -json | sed -n 's/.*"DiskPath": "\(.*\)".*/\1/p'); do (cd $$m && go vet ./...) || exit 1; done
