#!/bin/sh
# check.sh verifies the browser client: the TypeScript type-checks (including the
# hand-maintained datasole.d.ts) and the committed bundles in dist/ are exactly what
# `go generate` builds from the sources. CI runs it; so can anyone with Node and Go.
set -eu
cd "$(dirname "$0")"

if [ ! -d node_modules ]; then
	npm ci --no-audit --no-fund
fi

npx tsc --noEmit -p .

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go run -C build . -src .. -out "$tmp"
if ! diff -r dist "$tmp"; then
	echo "dist/ is stale: run 'go generate' in datasole/web and commit the result" >&2
	exit 1
fi
echo "browser client: types check, dist/ is up to date"
