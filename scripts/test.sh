#!/usr/bin/env bash
# test.sh runs the whole test suite on a fresh machine: it installs and starts
# what the tests need (Redis, PostgreSQL, Chromium, the npm packages of the
# browser client), then vets and tests every module of the workspace with the
# race detector. With CI=true a missing service fails the tests instead of
# skipping them.
set -euo pipefail
cd "$(dirname "$0")/.."

export GOTOOLCHAIN=local

step() { printf '\n== %s\n' "$*" >&2; }

step "services"
eval "$(bash scripts/services.sh)"

if [ -x datasole/web/check.sh ] || [ -f datasole/web/check.sh ]; then
	step "browser client: type-check and reproducible bundles"
	bash datasole/web/check.sh
fi

if [ -f scripts/chromium.sh ]; then
	step "chromium"
	eval "$(bash scripts/chromium.sh)"
fi

step "gofmt"
unformatted=$(git ls-files '*.go' | xargs -r gofmt -l)
if [ -n "$unformatted" ]; then
	echo "gofmt would change:" >&2
	echo "$unformatted" >&2
	exit 1
fi

modules=$(go work edit -json | sed -n 's/.*"DiskPath": "\(.*\)".*/\1/p')
status=0
for m in $modules; do
	step "module $m"
	(cd "$m" && go vet ./... && go test -race -count=1 -timeout 10m ./...) || status=1
done

# Latency and heap bounds: the race detector distorts them, so their files
# are built without it (//go:build !race) and run here.
step "latency and memory bounds (without the race detector)"
(cd datasole/backend/redis && go test -count=1 -timeout 10m -run 'TestAPausedRedis|TestStateMemoryIsBounded' .) || status=1
exit $status
