#!/usr/bin/env bash
# The cost of the limits: messages per second through wsgate with the seed's limits in force but
# raised out of reach ("limits on") versus an API without limits ("no limits"), with the echo
# backend reached directly as the ceiling. All three run in one invocation, interleaved, and the
# report gives ratios. See bench/README.md.
#
# A second part offers the same fixed rate to each target, so wsgate's CPU per message is compared
# at equal load (under a flood it also depends on how much CPU the gateway happened to get).
#
#   bench/limits.sh [--quick] [--secs S] [--warmup S] [--rounds N] [--conns M] [--window W]
#                   [--sizes "64 4096"] [--rate R] [--no-build] [--out FILE]
set -euo pipefail

ARGS="$*"
NAME=limits.sh
source "$(dirname "$0")/lib.sh"
SECS=10 WARMUP=2 ROUNDS=3 CONNS=64 WINDOW=16 SIZES="64 4096" RATE=20000 LAT_SECS="" BUILD=1
QUICK=0 OUT=""
while [ $# -gt 0 ]; do
    case $1 in
        --quick) QUICK=1 SECS=3 WARMUP=1 ROUNDS=1 LAT_SECS=2 ;;
        --secs) SECS=$2; shift ;;
        --warmup) WARMUP=$2; shift ;;
        --rounds) ROUNDS=$2; shift ;;
        --conns) CONNS=$2; shift ;;
        --window) WINDOW=$2; shift ;;
        --rate) RATE=$2; shift ;;
        --sizes) SIZES=$2; shift ;;
        --no-build) BUILD=0 ;;
        --out) OUT=$2; shift ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "limits.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
LAT_SECS=${LAT_SECS:-$SECS}
need python3
bench_tmp limits

# Runs the load generator in the background and waits for it, so a SIGTERM to this script is
# handled at once (bash defers traps until a foreground command ends) and cleanup can stop it.
lg() {
    "$LG" "$@" &
    local pid=$!
    PIDS+=("$pid")
    wait "$pid"
    local rc=$?
    unset_pid "$pid"
    return $rc
}

bench_build "$WSGATE" "$LG"
start_echo

gateway_yaml() { # product file, "applications: ..." block
    cat <<EOF
listeners:
  - address: 127.0.0.1:0
    tls-offloaded: true
products: [$1]
catalog:
  name: sandbox
  properties:
    target-url: ws://$ECHO_ADDR/
$2
bounds:
  # The load comes from one loopback address; what is measured is the limits' cost.
  max-pending-per-address: 20000
EOF
}

# (a) limits on: the seed API unchanged; the seed product with only the limit values raised.
ON=$TMP/limits-on; mkdir -p "$ON"
cp "$ROOT/conf/test-yahel-websocket-api_1.0.0.yaml" "$ON/"
sed -e 's#value: 100/1hour#value: 1000000000/1hour#' \
    -e 's#value: 3/1minute#value: 1000000000/1minute#' \
    -e 's#value: 5/1minute#value: 1000000000/1minute#' \
    -e 's#value: 2$#value: 100000#' \
    "$ROOT/conf/test-yahel-websocket-product_1.0.0.yaml" >"$ON/test-yahel-websocket-product_1.0.0.yaml"
# The edit must have hit all four values; a changed seed should fail here, not bench silently.
[ "$(diff "$ROOT/conf/test-yahel-websocket-product_1.0.0.yaml" "$ON/test-yahel-websocket-product_1.0.0.yaml" | grep -c '^>')" = 4 ] ||
    { log "the seed product changed: could not raise exactly its four limit values"; exit 1; }
gateway_yaml test-yahel-websocket-product_1.0.0.yaml \
    "applications:
  - {name: demo-app, client-id: demo-client-id, product: test-yahel-websocket-product, plan: default-plan}" \
    >"$ON/gateway.yaml"

# (b) no limits: a keyless API with only the upgrade, in a product without limits.
OFF=$TMP/no-limits; mkdir -p "$OFF"
cp "$BENCH/conf/no-limits-api_1.0.0.yaml" "$BENCH/conf/no-limits-product_1.0.0.yaml" "$OFF/"
gateway_yaml no-limits-product_1.0.0.yaml "applications: []" >"$OFF/gateway.yaml"

for d in "$ON" "$OFF"; do
    "$WSGATE" check --config "$d/gateway.yaml" >"$d/check.txt" 2>&1 ||
        { log "wsgate check failed for $d:"; cat "$d/check.txt" >&2; exit 1; }
done

start_gateway() { # dir -> sets GW_PID, GW_ADDR
    "$WSGATE" --config "$1/gateway.yaml" >"$1/activity.log" 2>"$1/stderr" &
    GW_PID=$!; PIDS+=("$GW_PID")
    GW_ADDR=$(wait_addr "$1/stderr" plain "$GW_PID")
}
start_gateway "$ON"; ON_PID=$GW_PID; ON_URL="ws://$GW_ADDR/test-yahel-websocket-api/"
start_gateway "$OFF"; OFF_PID=$GW_PID; OFF_URL="ws://$GW_ADDR/bench-no-limits-api/"
DIRECT_URL="ws://$ECHO_ADDR/"
log "echo $ECHO_ADDR (pid $ECHO_PID), limits-on $ON_URL (pid $ON_PID), no-limits $OFF_URL (pid $OFF_PID)"

HEADER='X-IBM-Client-Id: demo-client-id'

# Evidence that (a) runs the seed's policies on every message: the same flood on one connection
# against the seed product unchanged (3 messages a minute) is closed after 3, against (a) not;
# and (a) refuses a client without the client id.
SEED=$TMP/seed; mkdir -p "$SEED"
cp "$ROOT"/conf/test-yahel-websocket-{api,product}_1.0.0.yaml "$ON/gateway.yaml" "$SEED/"
start_gateway "$SEED"; SEED_PID=$GW_PID
one_conn=(flood --conns 1 --window 1 --secs 1 --warmup 0 --header "$HEADER")
SANITY_SEED=$("$LG" "${one_conn[@]}" --url "ws://$GW_ADDR/test-yahel-websocket-api/" 2>/dev/null)
kill -TERM "$SEED_PID"; wait "$SEED_PID" 2>/dev/null || true
unset_pid "$SEED_PID"
SANITY_ON=$("$LG" "${one_conn[@]}" --url "$ON_URL" 2>/dev/null)
SANITY_NOID=$("$LG" hold --url "$ON_URL" --conns 1 --hold-secs 0 2>/dev/null)
RUNS=$TMP/runs.jsonl; : >"$RUNS"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
T_START=$(date +%s)
targets=(direct no-limits limits-on)
for r in $(seq "$ROUNDS"); do
    for size in $SIZES; do
        # Rotate the order each round so no target always runs first or last.
        for k in 0 1 2; do
            t=${targets[$(((k + r - 1) % 3))]}
            case $t in
                direct) url=$DIRECT_URL; cpu=() ;;
                no-limits) url=$OFF_URL; cpu=(--cpu-pid "wsgate=$OFF_PID") ;;
                limits-on) url=$ON_URL; cpu=(--cpu-pid "wsgate=$ON_PID") ;;
            esac
            log "round $r/$ROUNDS, ${size} B, $t"
            lg flood --url "$url" --conns "$CONNS" --size "$size" --window "$WINDOW" \
                --secs "$SECS" --warmup "$WARMUP" --header "$HEADER" --label "$t" \
                "${cpu[@]}" --cpu-pid "echo=$ECHO_PID" >>"$RUNS"
        done
    done
done
# Part 2: the same fixed offered rate to each target.
LAT=$TMP/latency.jsonl; : >"$LAT"
for r in $(seq "$ROUNDS"); do
    for size in $SIZES; do
        for k in 0 1 2; do
            t=${targets[$(((k + r - 1) % 3))]}
            case $t in
                direct) url=$DIRECT_URL; cpu=() ;;
                no-limits) url=$OFF_URL; cpu=(--cpu-pid "wsgate=$OFF_PID") ;;
                limits-on) url=$ON_URL; cpu=(--cpu-pid "wsgate=$ON_PID") ;;
            esac
            log "round $r/$ROUNDS, ${size} B, $t, $RATE round trips/s offered"
            lg latency --url "$url" --conns "$CONNS" --size "$size" --rate "$RATE" \
                --secs "$LAT_SECS" --warmup "$WARMUP" --header "$HEADER" --label "$t" \
                "${cpu[@]}" --cpu-pid "echo=$ECHO_PID" >>"$LAT"
        done
    done
done
T_END=$(date +%s)
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# Everything still up? A gateway that died mid-run would make the numbers meaningless.
for p in "$ECHO_PID" "$ON_PID" "$OFF_PID"; do
    kill -0 "$p" 2>/dev/null || { log "process $p exited during the run"; exit 1; }
done

DATE=$(date +%Y-%m-%d-%H%M%S)
[ -n "$OUT" ] || OUT=$BENCH/results/limits-$DATE.md
mkdir -p "$(dirname "$OUT")"
CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
COMMIT=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(cd "$ROOT" && git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null | head -1)

export RUNS LAT SECS LAT_SECS WARMUP ROUNDS CONNS WINDOW SIZES RATE QUICK DATE CPU_MODEL COMMIT \
    DIRTY LOAD_BEFORE LOAD_AFTER T_START T_END SANITY_SEED SANITY_ON SANITY_NOID
export NPROC=$(nproc) KERNEL=$(uname -sr) RUSTC=$(rustc --version) \
    WSGATE_V=$("$WSGATE" --version) CMDLINE="bench/limits.sh${ARGS:+ $ARGS}"
python3 "$BENCH/limits_report.py" >"$OUT"
cat "$OUT"
log "wrote ${OUT#"$ROOT"/}"
