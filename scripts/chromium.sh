#!/usr/bin/env bash
# Makes sure Debian's chromium is installed for the browser end-to-end tests
# and prints the export line that points the tests at it:
#
#	eval "$(bash scripts/chromium.sh)"
#
# Idempotent: when /usr/bin/chromium exists it only prints. Progress goes to
# stderr so that stdout stays evaluable.
set -euo pipefail

bin=/usr/bin/chromium
if [ ! -x "$bin" ]; then
	if ! command -v apt-get >/dev/null 2>&1; then
		echo "chromium.sh: $bin is missing and apt-get is not available" >&2
		exit 1
	fi
	sudo=""
	if [ "$(id -u)" != 0 ]; then
		sudo="sudo"
	fi
	export DEBIAN_FRONTEND=noninteractive
	# A fresh machine has empty package lists; install fails until they exist.
	if ! apt-cache show chromium >/dev/null 2>&1; then
		$sudo apt-get update -qq >&2
	fi
	if ! $sudo apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2; then
		# Lists may be stale (a package version gone from the mirror): refresh once.
		$sudo apt-get update -qq >&2
		$sudo apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
	fi
fi
echo "export DATASOLE_CHROMIUM=$bin"
