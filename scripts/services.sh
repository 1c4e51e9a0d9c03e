#!/usr/bin/env bash
# services.sh starts throwaway Redis and PostgreSQL servers for the backend tests.
#
#   eval "$(bash scripts/services.sh)"
#
# It installs redis-server and postgresql with apt-get when they are missing, starts
# Redis on 127.0.0.1:6390 (no persistence) and PostgreSQL on 127.0.0.1:5440 (trust
# auth, fsync off) with their data under one temporary directory, waits until both
# accept connections and prints the export lines the tests read. Running it again
# while the servers are up only re-prints the exports. Progress goes to stderr so
# that stdout stays safe to eval.
#
#   bash scripts/services.sh stop    stops both servers and removes their data
set -euo pipefail

REDIS_PORT="${DATASOLE_REDIS_PORT:-6390}"
PG_PORT="${DATASOLE_PG_PORT:-5440}"
BASE="${DATASOLE_SERVICES_DIR:-${TMPDIR:-/tmp}/datasole-services}"

log() { echo "services: $*" >&2; }

pg_bindir() {
	local d
	if command -v pg_config >/dev/null 2>&1; then
		d="$(pg_config --bindir)"
		[ -x "$d/initdb" ] && { echo "$d"; return; }
	fi
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		[ -x "$d/initdb" ] && { echo "$d"; return; }
	done
	d="$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")"
	[ -x "$d/initdb" ] && echo "$d"
}

# as_pg runs a PostgreSQL tool as a non-root user: initdb and postgres refuse root.
as_pg() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

install_missing() {
	local pkgs=()
	command -v redis-server >/dev/null 2>&1 || pkgs+=(redis-server)
	[ -n "$(pg_bindir)" ] || pkgs+=(postgresql)
	[ ${#pkgs[@]} -eq 0 ] && return
	log "installing ${pkgs[*]}"
	local sudo=()
	[ "$(id -u)" = 0 ] || sudo=(sudo)
	if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}" >&2; then
		"${sudo[@]}" apt-get update -q >&2
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}" >&2
	fi
}

redis_up() {
	# A raw PING over bash's /dev/tcp needs no redis-cli.
	local reply
	reply="$( (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT" && printf 'PING\r\n' >&3 && timeout 1 head -c 7 <&3) 2>/dev/null || true)"
	[[ "$reply" == +PONG* ]]
}

start_redis() {
	if redis_up; then
		log "redis already up on port $REDIS_PORT"
		return
	fi
	mkdir -p "$BASE/redis"
	redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
		--daemonize yes --dir "$BASE/redis" --pidfile "$BASE/redis/redis.pid" \
		--logfile "$BASE/redis/redis.log" >&2
	for _ in $(seq 100); do
		redis_up && { log "redis up on port $REDIS_PORT"; return; }
		sleep 0.1
	done
	log "redis did not start; see $BASE/redis/redis.log"
	exit 1
}

start_postgres() {
	local bin data="$BASE/pg/data"
	bin="$(pg_bindir)"
	if "$bin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; then
		log "postgres already up on port $PG_PORT"
		return
	fi
	mkdir -p "$BASE/pg"
	chmod 755 "$BASE" "$BASE/pg"
	[ "$(id -u)" = 0 ] && chown postgres: "$BASE/pg"
	if [ ! -s "$data/PG_VERSION" ]; then
		as_pg "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --no-sync >&2
	fi
	as_pg "$bin/pg_ctl" -D "$data" -l "$BASE/pg/postgres.log" -w -t 30 start \
		-o "-p $PG_PORT -k $BASE/pg -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" >&2
	log "postgres up on port $PG_PORT"
}

stop_all() {
	local bin
	if [ -f "$BASE/redis/redis.pid" ]; then
		kill "$(cat "$BASE/redis/redis.pid")" 2>/dev/null || true
	fi
	bin="$(pg_bindir)"
	if [ -n "$bin" ] && [ -d "$BASE/pg/data" ]; then
		as_pg "$bin/pg_ctl" -D "$BASE/pg/data" -m fast -w stop >&2 || true
	fi
	rm -rf "$BASE"
	log "stopped"
}

if [ "${1:-}" = stop ]; then
	stop_all
	exit 0
fi

install_missing
mkdir -p "$BASE"
start_redis
start_postgres
echo "export DATASOLE_TEST_REDIS=redis://127.0.0.1:$REDIS_PORT/0"
echo "export DATASOLE_TEST_POSTGRES='postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable'"
echo "export DATASOLE_TEST_REDIS_SERVER=$(command -v redis-server)"
