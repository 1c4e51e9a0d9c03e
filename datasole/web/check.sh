#!/bin/sh
# check.sh verifies the browser client: the TypeScript type-checks (including the
# hand-maintained datasole.d.ts), the contract type tests pass against both the published
# declarations and the sources, the contract they use is what `datasole gen ts` writes, and
# the committed bundles in dist/ are exactly what `go generate` builds from the sources.
# CI runs it; so can anyone with Node and Go. (The unit tests and the npm package test are
# Go tests of the build module.)
set -eu
cd "$(dirname "$0")"

# Install when node_modules is missing or was installed from another lock file.
if ! cmp -s package-lock.json node_modules/.installed-lock 2>/dev/null; then
	npm ci --no-audit --no-fund
	cp package-lock.json node_modules/.installed-lock
fi

npx tsc --noEmit -p .
npx tsc --noEmit -p test/unit

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

go run -C ../../cmd/datasole . gen ts ./internal/tsgen/testdata/app -o "$tmp/contract.ts"
if ! diff test/types/contract.ts "$tmp/contract.ts"; then
	echo "test/types/contract.ts is stale: regenerate it with datasole gen ts (see the file's first line)" >&2
	exit 1
fi
# The type tests hold @ts-expect-error lines: tsc fails if any of them compiles.
npx tsc --noEmit -p test/types
npx tsc --noEmit -p test/types/tsconfig.src.json

go run -C build . -src .. -out "$tmp/dist"
if ! diff -r dist "$tmp/dist"; then
	echo "dist/ is stale: run 'go generate' in datasole/web and commit the result" >&2
	exit 1
fi
echo "browser client: types check, type tests pass, dist/ is up to date"
