#!/usr/bin/env bash
# release.sh releases every module of the repository at one version.
#
#   scripts/release.sh v0.2.0    set the version, test, commit and tag (never pushes)
#   scripts/release.sh -list     print the directories of the released modules
#
# All modules users `go get` are released together, at one version, each tagged
# <dir>/<version> (datasole/v0.2.0, adapters/gin/v0.2.0, datasole/backend/redis/v0.2.0,
# …), the tag form the go command looks for when a module lives in a subdirectory.
# Every go.mod of the repository requires its sibling modules at that version. The
# relative replace lines stay: they serve development, and the go command ignores
# them in a dependency. (cmd/datasole has none, because `go run …/cmd/datasole@v`
# refuses a module with replace lines; it builds inside the workspace.)
#
# Steps, each stopping the release when it fails:
#   1. VERSION is a semantic version below v2 (v2+ would need /v2 module paths),
#      the work tree is clean and none of the tags exists yet;
#   2. every requirement of a sibling module, in every go.mod, is set to VERSION;
#   3. the installability test (ci/install) publishes the modules at VERSION into a
#      local module proxy and builds and runs apps outside the repository from it
#      (skipped when DATASOLE_RELEASE_SKIP_INSTALL_TEST=1, which only the release
#      script's own test sets);
#   4. the "## Unreleased" heading of CHANGELOG.md becomes "## VERSION (date)";
#   5. one commit "Release VERSION", then one annotated tag per released module.
# Nothing is pushed; the script prints the push command.
#
# Modules not released: the demos (copied, never imported), the end-to-end test
# modules, the repository's own checks and the browser bundle builder.
set -euo pipefail
cd "$(dirname "$0")/.."

unreleased=(demos e2e/auth e2e/browser bench ci datasole/web/build)

die() { echo "release: $*" >&2; exit 1; }

modules() { # every module of the workspace, as a directory relative to the root
	go work edit -json | sed -n 's/.*"DiskPath": "\.\/\(.*\)".*/\1/p'
}

released() {
	local m u
	for m in $(modules); do
		for u in "${unreleased[@]}"; do
			[ "$m" = "$u" ] && continue 2
		done
		echo "$m"
	done
}

if [ "${1:-}" = "-list" ]; then
	released
	exit 0
fi

[ $# -eq 1 ] || die "usage: scripts/release.sh VERSION | -list"
version="$1"
[[ "$version" =~ ^v(0|1)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$ ]] ||
	die "$version is not a version this repository can release: want vMAJOR.MINOR.PATCH with MAJOR 0 or 1 (v2 and later need /v2 module paths)"

[ -z "$(git status --porcelain)" ] || die "the work tree has changes; commit or stash them first"

prefix="$(sed -n 's/^module \(.*\)\/datasole$/\1/p' datasole/go.mod)"
[ -n "$prefix" ] || die "cannot read the module path prefix from datasole/go.mod"

for m in $(released); do
	if git rev-parse -q --verify "refs/tags/$m/$version" >/dev/null; then
		die "tag $m/$version exists already"
	fi
done

# 2. Requirements of siblings: "<prefix>/… vX" inside a require block or line.
for m in $(modules); do
	sed -i -E "s#^([[:space:]]*(require[[:space:]]+)?${prefix//./\\.}/[^[:space:]]+) v[^[:space:]]+#\1 $version#" "$m/go.mod"
	(cd "$m" && go mod edit -fmt)
done
if grep -n -E "${prefix//./\\.}/[^[:space:]]+ v0\.0\.0([^-]|$)" $(for m in $(modules); do echo "$m/go.mod"; done); then
	die "a sibling is still required at v0.0.0 (above)"
fi

# 3. Installable from a module proxy at that version.
if [ "${DATASOLE_RELEASE_SKIP_INSTALL_TEST:-}" != 1 ]; then
	eval "$(bash scripts/services.sh)"
	(cd ci && CI=true GOWORK="$PWD/../go.work" go test -count=1 -run 'TestInstall' ./install) ||
		die "the modules at $version do not install; the go.mod changes are left in the work tree (git checkout -- . undoes them)"
fi

# 4. The changelog names the version.
if grep -q '^## Unreleased' CHANGELOG.md; then
	sed -i "0,/^## Unreleased.*/s//## $version ($(date -u +%Y-%m-%d))/" CHANGELOG.md
elif ! grep -q "^## $version\b" CHANGELOG.md; then
	die "CHANGELOG.md has neither an \"## Unreleased\" section nor one for $version"
fi

# 5. Commit and tag.
git commit -q -a -m "Release $version" || die "nothing to commit"
tags=()
for m in $(released); do
	path="$(sed -n 's/^module //p' "$m/go.mod")"
	git tag -a "$m/$version" -m "$path $version"
	tags+=("$m/$version")
done
echo "release: committed and tagged ${#tags[@]} modules at $version:" >&2
printf '  %s\n' "${tags[@]}" >&2
echo "release: publish with: git push origin HEAD ${tags[*]}" >&2
