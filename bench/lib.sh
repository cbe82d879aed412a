# Set-up shared by the bench scripts, sourced by each: paths, the build, a temporary directory,
# the processes started (each stopped by its PID at exit), listener addresses from the logs, a
# throwaway certificate and the echo backend. The script sets NAME (for its messages) first.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
# The gateway honours CARGO_TARGET_DIR; the load generator is its own workspace with its own
# target dir, so the variable is dropped for its build.
GW_TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
WSGATE=$GW_TARGET/release/wsgate
LG=$BENCH/loadgen/target/release/wsgate-loadgen

log() { echo "$NAME: $*" >&2; }

# Exits unless every command named is on PATH.
need() {
    local t
    for t in "$@"; do command -v "$t" >/dev/null || { log "$t is needed"; exit 1; }; done
}

# With BUILD=1 builds wsgate and the load generator (release); then exits unless every binary
# named is there.
bench_build() {
    if [ "$BUILD" = 1 ]; then
        log "building wsgate and the load generator (release)"
        (cd "$ROOT" && cargo build --release --quiet)
        (cd "$BENCH/loadgen" && env -u CARGO_TARGET_DIR cargo build --release --quiet)
    fi
    local b
    for b in "$@"; do
        [ -x "$b" ] || { log "$b is missing (run without --no-build)"; exit 1; }
    done
}

# TMP, a new temporary directory named after $1, and PIDS, the processes started here. At exit
# each of them gets SIGTERM, a grace period, then SIGKILL; TMP goes unless the script failed.
bench_tmp() {
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/wsgate-$1.XXXXXX")
    PIDS=()
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}
bench_cleanup() {
    local rc=$? p alive
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq 50); do
        alive=0
        for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    if [ $rc = 0 ]; then rm -rf "$TMP"; else log "failed; configs and logs kept in $TMP"; fi
}

# Forgets a process that has ended.
unset_pid() {
    local keep=() p
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# Stops one process started here: SIGTERM, up to $2 seconds (5), then SIGKILL.
stop_pid() {
    local p=$1 grace=${2:-5}
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq $((grace * 10))); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    unset_pid "$p"
}

# Waits for "listening on ADDR (KIND)" in stderr file $1 of process $3 and prints ADDR.
wait_addr() {
    local file=$1 kind=$2 pid=$3 addr=""
    for _ in $(seq 100); do
        addr=$(grep -oE "listening on [^ ]+ \($kind\)" "$file" 2>/dev/null | head -1 | cut -d' ' -f3 || true)
        [ -n "$addr" ] && { echo "$addr"; return 0; }
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    log "no '$kind' listener in $file:"; cat "$file" >&2
    return 1
}

# A throwaway self-signed certificate for localhost, $TMP/cert.pem and $TMP/key.pem.
make_cert() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
        -subj /CN=localhost -addext subjectAltName=DNS:localhost \
        -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>"$TMP/openssl.err" ||
        { log "openssl failed:"; cat "$TMP/openssl.err" >&2; exit 1; }
}

# The load generator's echo backend on a free loopback port: ECHO_PID and ECHO_ADDR.
start_echo() {
    "$LG" echo --listen 127.0.0.1:0 2>"$TMP/echo.err" &
    ECHO_PID=$!; PIDS+=("$ECHO_PID")
    ECHO_ADDR=$(wait_addr "$TMP/echo.err" echo "$ECHO_PID")
}

# $TMP/gateway.yaml: the keyless API of bench/conf on a plain and a TLS listener (the certificate
# of make_cert), with an admin listener, in front of the echo backend. The load comes from a few
# loopback addresses, so neither connection cap is what a run measures; more bounds come as $1.
no_limits_yaml() {
    cp "$BENCH/conf/no-limits-api_1.0.0.yaml" "$BENCH/conf/no-limits-product_1.0.0.yaml" "$TMP/"
    cat >"$TMP/gateway.yaml" <<EOF
listeners:
  - address: 127.0.0.1:0
  - address: 127.0.0.1:0
    tls:
      certificates:
        - cert: $TMP/cert.pem
          key: $TMP/key.pem
admin: 127.0.0.1:0
products: [no-limits-product_1.0.0.yaml]
catalog:
  name: sandbox
  properties:
    target-url: ws://$ECHO_ADDR/
applications: []
bounds:
  max-connections: 20000
  max-pending-per-address: 20000
${1:-}
EOF
}

# Waits until each of the $2 holders (PIDs in hpids) has written "ready: ..." to $TMP/$1-J.err,
# which it does once every connection opened or failed; exits when one ends first or after 120 s
# ($3 names them in that message).
wait_holders() {
    local stem=$1 procs=$2 ready j p
    for _ in $(seq 1200); do
        ready=0
        for j in $(seq "$procs"); do
            grep -q '^ready:' "$TMP/$stem-$j.err" 2>/dev/null && ready=$((ready + 1))
        done
        [ $ready = "$procs" ] && return 0
        for p in "${hpids[@]}"; do
            kill -0 "$p" 2>/dev/null || { log "a holder exited early"; cat "$TMP/$stem"-*.err >&2; exit 1; }
        done
        sleep 0.1
    done
    log "$3: holders not ready after 120 s"
    exit 1
}
