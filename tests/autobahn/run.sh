#!/usr/bin/env bash
# Autobahn|Testsuite conformance comparison: the same echo backend tested directly and through
# wsgate in one run; a correct proxy reproduces the direct result of every case.
#
# With Autobahn there are two passes, one per echo backend of Autobahn's own: `wstest -m
# echoserver`, which fails a connection by dropping TCP, over every case but groups 12 and 13
# (it declines permessage-deflate), then `wstest -m testeeserver`, which accepts
# permessage-deflate, over groups 12 and 13 (see the end of this file for why only those).
# With kosoku, one pass against Python websockets.
#
# usage: tests/autobahn/run.sh [WSGATE_BINARY]
#   binary: the argument, else $WSGATE, else target/release/wsgate, else target/debug/wsgate
# environment:
#   AUTOBAHN_CASES     comma separated case globs (default 1.* to 7.*, 9.*, 10.*, 12.*, 13.*;
#                      all but group 8, which the suite itself does not have)
#   AUTOBAHN_EXCLUDE   comma separated case globs to leave out (default none)
#   AUTOBAHN_SELF_TEST 1: both agents point at the backend directly (checks this script; no wsgate)
#   AUTOBAHN_RUNNER    auto (default), autobahn (wstest on Python 2.7) or kosoku (Python 3)
#   AUTOBAHN_RECHECKS  rounds re-running only the cases that differed (default 10; a round of a
#                      few cases takes seconds, and some cases vary run to run even directly)
#   AUTOBAHN_PARALLEL  1 (default): the two agents run at the same time, each fuzzing client
#                      against its own instance of the echo backend (groups 12 and 13 take
#                      minutes per agent); 0: one after the other, against one backend
#   WSGATE_RUST_LOG    RUST_LOG for wsgate (default info)
# exit: 0 all cases equal, 1 some differ, 2 setup failed, 77 no runner can be installed here.
# Prints, per pass, the counts by group, a table of differing cases and the line `N passed, N
# failed` (cases equal / differing): a case passes only when wsgate's behavior and behaviorClose
# are the backend's own.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cache="$root/tests/.cache"
reports="$cache/autobahn-reports"
cases="${AUTOBAHN_CASES:-1.*,2.*,3.*,4.*,5.*,6.*,7.*,9.*,10.*,12.*,13.*}"
parallel="${AUTOBAHN_PARALLEL:-1}"
exclude="${AUTOBAHN_EXCLUDE:-}"
self_test="${AUTOBAHN_SELF_TEST:-0}"
runner="${AUTOBAHN_RUNNER:-auto}"
ab_venv="$cache/autobahn-venv"
kosoku_venv="$cache/kosoku-venv"

pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
py2="$pyenv_root/versions/2.7.18/bin/python2.7"

say() { echo "autobahn: $*" >&2; }
die() { say "$*"; exit 2; }

mkdir -p "$cache"
work="$(mktemp -d "${TMPDIR:-/tmp}/wsgate-autobahn.XXXXXX")"
pids=()

# Stop every process this script started, by pid: SIGTERM, up to 5 s, then SIGKILL.
stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local rc=$? pid
    for pid in "${pids[@]}"; do stop_pid "$pid"; done
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Runs a step, keeping its output in a log that is shown only when it fails.
quiet() {
    local log="$work/step.log"
    if ! "$@" >"$log" 2>&1; then
        cat "$log" >&2
        return 1
    fi
}

install_autobahn() {
    if [ -x "$ab_venv/bin/wstest" ] && "$ab_venv/bin/python" -c 'import autobahntestsuite' 2>/dev/null; then
        return 0
    fi
    [ -x "$py2" ] || return 1
    say "installing autobahntestsuite 25.10.1 into $ab_venv (about 30 s)"
    (
        flock 9
        # virtualenv goes into a private directory so the image's Python 2.7 stays unchanged.
        quiet "$py2" -m pip install --disable-pip-version-check -q --target "$cache/py2-virtualenv" 'virtualenv<20.22'
        rm -rf "$ab_venv"
        PYTHONPATH="$cache/py2-virtualenv" quiet "$py2" -m virtualenv -q -p "$py2" "$ab_venv"
        quiet "$ab_venv/bin/pip" install --disable-pip-version-check -q autobahntestsuite==25.10.1
    ) 9>"$cache/autobahn-install.lock"
    [ -x "$ab_venv/bin/wstest" ]
}

install_kosoku() {
    if [ -x "$kosoku_venv/bin/kosoku" ]; then
        return 0
    fi
    command -v python3 >/dev/null 2>&1 || return 1
    say "installing kosoku 0.1.0 into $kosoku_venv"
    (
        flock 9
        python3 -m venv "$kosoku_venv" && quiet "$kosoku_venv/bin/pip" install --disable-pip-version-check -q kosoku==0.1.0
    ) 9>"$cache/kosoku-install.lock"
    [ -x "$kosoku_venv/bin/kosoku" ]
}

case "$runner" in
auto)
    if install_autobahn; then runner=autobahn
    elif install_kosoku; then say "Python 2.7 not found at $py2: falling back to kosoku"; runner=kosoku
    else say "SKIP: neither Autobahn (Python 2.7) nor kosoku (Python 3) can be installed here"; exit 77
    fi ;;
autobahn) install_autobahn || die "cannot install Autobahn (Python 2.7 at $py2?)" ;;
kosoku) install_kosoku || die "cannot install kosoku" ;;
*) die "AUTOBAHN_RUNNER must be auto, autobahn or kosoku" ;;
esac

if [ "$runner" = autobahn ]; then py="$ab_venv/bin/python"; else py="$kosoku_venv/bin/python"; fi

free_port() {
    "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_open() {
    "$py" -c 'import socket, sys; s = socket.socket(); s.settimeout(1); sys.exit(s.connect_ex(("127.0.0.1", int(sys.argv[1]))))' "$1"
}

# Starts the pass's echo backend, named $1 (its log is $work/backend-PASS-$1.log); sets
# backend_port. The port
# is picked by binding port 0 first; if another program takes it before the backend binds, the
# backend dies and we try another one.
start_backend() {
    local name=$1 attempt pid i log="$work/backend-$pass-$1.log" err="$work/backend-$pass-$1.err"
    for attempt in 1 2 3 4 5; do
        if [ "$runner" = autobahn ]; then
            backend_port="$(free_port)"
            (cd "$work" && exec "$ab_venv/bin/wstest" -m "$pass_backend" -w "ws://127.0.0.1:$backend_port") \
                >"$log" 2>&1 &
            pid=$!
        else
            local pypeer
            pypeer="$(bash "$root/tests/peers/setup.sh")" || die "Python websockets peer setup failed"
            "$pypeer" "$root/tests/peers/ws_echo.py" --port 0 >"$log" 2>"$err" &
            pid=$!
        fi
        pids+=("$pid")
        for i in $(seq 300); do
            kill -0 "$pid" 2>/dev/null || break
            if [ "$runner" = kosoku ]; then
                backend_port="$(head -n1 "$log" | grep -E '^[0-9]+$' || true)"
                [ -n "$backend_port" ] && return 0
            elif port_open "$backend_port"; then
                return 0
            fi
            sleep 0.1
        done
        stop_pid "$pid"
        say "backend $name did not come up (attempt $attempt):"
        tail -n 20 "$log" "$err" >&2 2>/dev/null || true
    done
    die "no echo backend"
}

# Starts wsgate with a keyless, limitless API at base path / in front of the pass's backend for
# it; sets gateway_pid, and gateway_port from its `listening on ADDR (plain)` log line.
start_wsgate() {
    local bin=$1 pid i addr
    cat >"$work/gateway-$pass.yaml" <<EOF
listeners:
  - address: 127.0.0.1:0
products: [autobahn-product.yaml]
catalog:
  name: sandbox
  properties: { target-url: "ws://127.0.0.1:$backend_port_b/" }
applications: []
bounds:
  max-connections: 1000
  max-message-size: 64MiB
  idle-timeout: 1h
  header-timeout: 10s
  handshake-timeout: 10s
  close-grace: 5s
  shutdown-grace: 5s
  buffer-bound: 64KiB
  over-limit: close
EOF
    cat >"$work/autobahn-api.yaml" <<'EOF'
swagger: '2.0'
info:
  version: 1.0.0
  title: autobahn
  x-ibm-name: autobahn
basePath: /
x-ibm-configuration:
  properties:
    target-url:
      value: ws://127.0.0.1:9/
      encoded: false
  gateway: datapower-api-gateway
  type: rest
  phase: realized
  enforced: true
  assembly:
    execute:
      - websocket-upgrade:
          version: 2.0.0
          title: websocket-upgrade
          target-url: $(target-url)
          parameter-control:
            type: blocklist
            values: []
          header-control:
            type: blocklist
            values: []
paths:
  /:
    get:
      responses:
        '200':
          description: success
security: []
schemes: [ws, wss]
EOF
    cat >"$work/autobahn-product.yaml" <<'EOF'
info:
  version: 1.0.0
  title: autobahn-product
  name: autobahn-product
gateways: [datapower-api-gateway]
plans:
  default-plan:
    title: Default Plan
    apis:
      autobahn1.0.0: {}
apis:
  autobahn1.0.0:
    $ref: autobahn-api.yaml
product: 1.0.0
EOF
    RUST_LOG="${WSGATE_RUST_LOG:-info}" RUST_LOG_STYLE=never "$bin" --config "$work/gateway-$pass.yaml" \
        >"$work/wsgate-$pass.out" 2>"$work/wsgate-$pass.log" &
    pid=$!
    pids+=("$pid")
    gateway_pid=$pid
    for i in $(seq 200); do
        addr="$(sed -n 's/.*listening on \([^ ]*\) (plain).*/\1/p' "$work/wsgate-$pass.log" | head -n1)"
        if [ -n "$addr" ]; then
            gateway_port="${addr##*:}"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    say "wsgate did not log a plain listener:"
    tail -n 40 "$work/wsgate-$pass.log" >&2
    exit 2
}

json_list() {
    local item out="" sep="" items=()
    IFS=, read -ra items <<<"$1"
    for item in "${items[@]}"; do
        [ -n "$item" ] || continue
        out="$out$sep\"$item\""
        sep=", "
    done
    echo "[$out]"
}

# Starts the fuzzing client for one agent (name, url) over the cases, reporting into $out/NAME,
# in the background (so that a signal to this script reaches the trap at once) and bounded in
# time; sets fuzz to its pid.
fuzz_agent() {
    local n=$1 name=$2 url=$3 round_cases=$4 dir="$out/$2"
    mkdir -p "$dir"
    if [ "$runner" = autobahn ]; then
        cat >"$work/spec-$pass-$n-$name.json" <<EOF
{
  "options": {"failByDrop": false},
  "outdir": "$dir",
  "servers": [{"agent": "$name", "url": "$url"}],
  "cases": $(json_list "$round_cases"),
  "exclude-cases": $(json_list "$exclude"),
  "exclude-agent-cases": {}
}
EOF
        (cd "$work" && exec timeout 3600 "$ab_venv/bin/wstest" -m fuzzingclient -s "$work/spec-$pass-$n-$name.json") \
            >"$work/fuzz-$pass-$n-$name.log" 2>&1 &
    else
        local args=() globs=() g hostport="${url#ws://}"
        IFS=, read -ra globs <<<"$round_cases"
        for g in "${globs[@]}"; do [ -n "$g" ] && args+=(-i "$g"); done
        IFS=, read -ra globs <<<"$exclude"
        for g in "${globs[@]}"; do [ -n "$g" ] && args+=(-x "$g"); done
        timeout 3600 "$kosoku_venv/bin/kosoku" "${args[@]}" -o "$dir" "${hostport%/}" \
            >"$work/fuzz-$pass-$n-$name.log" 2>&1 &
    fi
    fuzz=$!
    pids+=("$fuzz")
}

# Waits for one agent's fuzzing client and checks that it wrote its report.
wait_agent() {
    local n=$1 name=$2 pid=$3 ok=0
    wait "$pid" && ok=1
    # kosoku exits 1 when a case fails on its own; the comparison decides.
    if [ "$ok" = 0 ] && [ "$runner" = autobahn ]; then
        tail -n 40 "$work/fuzz-$pass-$n-$name.log" >&2
        die "wstest fuzzingclient failed for $name"
    fi
    [ -f "$out/$name/index.json" ] || { tail -n 40 "$work/fuzz-$pass-$n-$name.log" >&2; die "no report for $name"; }
}

# Runs the cases (comma separated) against both agents into $reports/round-N, at the same time
# or one after the other; sets round_args to the four compare.py arguments of that round.
run_round() {
    local n=$1 round_cases=$2 pid_a
    out="$reports/$pass/round-$1"
    fuzz_agent "$n" direct "ws://127.0.0.1:$backend_port_a/" "$round_cases"
    pid_a=$fuzz
    if [ "$parallel" != 1 ]; then
        wait_agent "$n" direct "$pid_a"
    fi
    fuzz_agent "$n" "$agent_b" "$url_b" "$round_cases"
    if [ "$parallel" = 1 ]; then
        wait_agent "$n" direct "$pid_a"
    fi
    wait_agent "$n" "$agent_b" "$fuzz"
    if [ "$runner" = autobahn ]; then
        round_args=("$out/direct/index.json" direct "$out/$agent_b/index.json" "$agent_b")
    else
        # kosoku names the agent after the server's Server header: take each file's only agent.
        round_args=("$out/direct/index.json" "" "$out/$agent_b/index.json" "")
    fi
}

bin=""
if [ "$self_test" != 1 ]; then
    bin="${1:-${WSGATE:-}}"
    if [ -z "$bin" ]; then
        for c in "$root/target/release/wsgate" "$root/target/debug/wsgate"; do
            [ -x "$c" ] && { bin="$c"; break; }
        done
    fi
    [ -n "$bin" ] && [ -x "$bin" ] || die "no wsgate binary (argument, \$WSGATE or target/*/wsgate)"
fi

# One pass: the cases (comma separated) against the backend program `wstest -m $pass_backend`
# directly and through a wsgate of its own, with rechecks of the cases that differ; appends the
# comparison to $work/compare.out and sets pass_rc to compare.py's exit code.
run_pass() {
    local name
    pass=$1 pass_backend=$2
    local pass_cases=$3 started=$SECONDS n rc=1 round_cases all_args=() pass_pids=()
    # Each agent has its own instance of the backend when they run at the same time, so neither
    # waits for the other's traffic; one after the other, they share one.
    start_backend direct
    pass_pids+=("${pids[-1]}")
    backend_port_a=$backend_port
    if [ "$parallel" = 1 ]; then
        start_backend behind
        pass_pids+=("${pids[-1]}")
    fi
    backend_port_b=$backend_port
    name="$pass_backend"
    [ "$runner" = kosoku ] && name="Python websockets echo"
    say "pass $pass: $name on 127.0.0.1:$backend_port_a, for wsgate on 127.0.0.1:$backend_port_b"
    agent_b=wsgate
    if [ "$self_test" = 1 ]; then
        agent_b=direct-again
        url_b="ws://127.0.0.1:$backend_port_b/"
    else
        start_wsgate "$bin"
        pass_pids+=("$gateway_pid")
        say "pass $pass: wsgate $bin on 127.0.0.1:$gateway_port"
        url_b="ws://127.0.0.1:$gateway_port/"
    fi
    round_cases="$pass_cases"
    for n in $(seq 0 "$rechecks"); do
        run_round "$n" "$round_cases"
        all_args+=("${round_args[@]}")
        set +e
        "$py" "$here/compare.py" --ids-out "$work/differing" "${all_args[@]}" >"$work/compare-$pass.out"
        rc=$?
        set -e
        [ "$rc" -eq 0 ] && break
        [ -s "$work/differing" ] || break
        # Many differences are a real fault, not chance: two rechecks show that well enough.
        if [ "$(wc -l <"$work/differing")" -gt 20 ] && [ "$n" -ge 2 ]; then break; fi
        round_cases="$(paste -sd, "$work/differing")"
        if [ "$n" -lt "$rechecks" ]; then
            say "pass $pass: rechecking $(wc -l <"$work/differing") differing case(s): $round_cases"
        fi
    done
    say "pass $pass ran in $((SECONDS - started)) s; reports in $reports/$pass"
    { echo "== pass $pass (backend: $name; cases $pass_cases)"; cat "$work/compare-$pass.out"; } >>"$work/compare.out"
    if [ "$rc" -ne 0 ] && [ "$self_test" != 1 ]; then
        say "pass $pass: wsgate log (last 30 lines):"
        tail -n 30 "$work/wsgate-$pass.log" >&2
    fi
    for n in "${pass_pids[@]}"; do stop_pid "$n"; done
    pass_rc=$rc
}

rm -rf "$reports"
mkdir -p "$reports"
: >"$work/compare.out"
rechecks="${AUTOBAHN_RECHECKS:-10}"
start=$SECONDS
rc=0
if [ "$runner" = autobahn ]; then
    # Autobahn's echoserver fails a connection by dropping TCP (so a relay must not invent a
    # close there) and declines permessage-deflate: it takes every group but 12 and 13. Its
    # testeeserver, the same echo with failByDrop off, accepts permessage-deflate: it takes
    # groups 12 and 13. Not the others: in groups 3 to 5, seven cases look at how an endpoint
    # fails after a client's protocol error, which through wsgate is wsgate's own doing. wsgate
    # fails at once, as the echoserver does (NON-STRICT: the echo of the message before the
    # error does not come); the testeeserver still echoes it first (OK).
    drop_cases="" deflate_cases=""
    IFS=, read -ra globs <<<"$cases"
    for g in "${globs[@]}"; do
        case "$g" in
        "") ;;
        12.* | 13.*) deflate_cases="$deflate_cases${deflate_cases:+,}$g" ;;
        *) drop_cases="$drop_cases${drop_cases:+,}$g" ;;
        esac
    done
    if [ -n "$drop_cases" ]; then
        run_pass echoserver echoserver "$drop_cases"
        [ "$pass_rc" -eq 0 ] || rc=$pass_rc
    fi
    if [ -n "$deflate_cases" ]; then
        run_pass testeeserver testeeserver "$deflate_cases"
        [ "$pass_rc" -eq 0 ] || rc=$pass_rc
    fi
else
    run_pass websockets websockets "$cases"
    rc=$pass_rc
fi
say "suite ran in $((SECONDS - start)) s"
cat "$work/compare.out"
exit "$rc"
