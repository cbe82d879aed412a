#!/usr/bin/env bash
# Floods before authentication, measured on one or two wsgate binaries side by side:
# - handshake flood: the round-trip latency of 10 established wss connections at a fixed rate,
#   quiet and while 200 other clients make TLS handshakes back to back (loadgen `handshakes`);
# - trickled heads: the gateway's CPU seconds for 200 clients sending 16,000-byte request heads
#   one byte per packet (bench/trickle.py).
# Give --before (an older build) to compare; each round runs every binary in turn. See
# bench/README.md.
#
#   bench/floods.sh [--before BIN] [--after BIN] [--rounds N] [--secs S] [--no-build] [--out FILE]
set -euo pipefail

NAME=floods.sh
source "$(dirname "$0")/lib.sh"
BEFORE="" AFTER=$WSGATE ROUNDS=3 SECS=5 BUILD=1 OUT=""
while [ $# -gt 0 ]; do
    case $1 in
        --before) BEFORE=$2; shift ;;
        --after) AFTER=$2; shift ;;
        --rounds) ROUNDS=$2; shift ;;
        --secs) SECS=$2; shift ;;
        --no-build) BUILD=0 ;;
        --out) OUT=$2; shift ;;
        -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "floods.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
need python3 openssl
bench_tmp floods
bench_build "$LG" "$AFTER" ${BEFORE:+"$BEFORE"}

BINS=()
[ -n "$BEFORE" ] && BINS+=("before=$BEFORE")
BINS+=("after=$AFTER")
make_cert
start_echo

# The clients wait as long as a run lasts, whatever the head and handshake timeouts.
no_limits_yaml "  header-timeout: 120s
  handshake-timeout: 120s"

RAW=$TMP/raw.jsonl; : >"$RAW"
API=/bench-no-limits-api/
# The handshake flood comes from 8 source addresses, so that its closed connections' TIME_WAIT
# does not run out of ephemeral ports.
FLOOD_SOURCES=127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8,127.0.0.9
tagged() { # name round: adds "bin" and "round" to the JSON line on stdin
    python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); d["bin"]=sys.argv[1]; d["round"]=int(sys.argv[2]); print(json.dumps(d))' "$1" "$2"
}
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq "$ROUNDS"); do
    for entry in "${BINS[@]}"; do
        name=${entry%%=*} bin=${entry#*=}
        err=$TMP/gateway-$name-$round.err
        "$bin" --config "$TMP/gateway.yaml" >/dev/null 2>"$err" &
        GW=$!; PIDS+=("$GW")
        wait_addr "$err" admin "$GW" >/dev/null
        PLAIN=$(wait_addr "$err" plain "$GW")
        TLS=$(wait_addr "$err" tls "$GW")
        url=wss://$TLS$API
        lat=(latency --url "$url" --insecure --sni localhost --conns 10 --rate 2000 --size 64
             --secs "$SECS" --warmup 1 --cpu-pid "wsgate=$GW")
        log "round $round, $name: quiet"
        "$LG" "${lat[@]}" --label quiet 2>>"$TMP/lg.err" | tagged "$name" "$round" >>"$RAW"
        log "round $round, $name: 200 handshakes in flight beside it"
        "$LG" handshakes --url "$url" --insecure --sni localhost --concurrency 200 \
            --sources "$FLOOD_SOURCES" --secs $((SECS + 2)) --warmup 0 --label flood \
            >"$TMP/hs.out" 2>>"$TMP/lg.err" &
        HS=$!; PIDS+=("$HS")
        "$LG" "${lat[@]}" --label flood 2>>"$TMP/lg.err" | tagged "$name" "$round" >>"$RAW"
        wait "$HS" || true; unset_pid "$HS"
        tagged "$name" "$round" <"$TMP/hs.out" >>"$RAW"
        log "round $round, $name: 200 trickled heads"
        python3 "$BENCH/trickle.py" --addr "$PLAIN" --pid "$GW" --clients 200 --size 16000 \
            --path "$API" --label trickle | tagged "$name" "$round" >>"$RAW"
        stop_pid "$GW"
    done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

report() {
    echo "# floods.sh, $(date -u +%Y-%m-%d\ %H:%M) UTC"
    echo
    echo "Machine: $(nproc) cores, load average $LOAD_BEFORE before and $LOAD_AFTER after."
    echo "Binaries: ${BINS[*]}; $ROUNDS rounds of ${SECS} s; medians over the rounds."
    echo
    python3 - "$RAW" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
bins = list(dict.fromkeys(r["bin"] for r in rows))
def med(mode, label, key, b):
    v = [r[key] for r in rows
         if r["bin"] == b and r.get("mode") == mode and r.get("label") == label and key in r]
    return statistics.median(v) if v else float("nan")
print("| binary | echo p50 µs quiet | p99 quiet | p99.9 quiet | echo p50 µs during the flood | p99 during | p99.9 during | max during | handshakes/s of the flood | trickle: gateway CPU s | trickle: wall s |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for b in bins:
    print("| %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.2f | %.2f |" % (
        b, med("latency", "quiet", "p50_us", b), med("latency", "quiet", "p99_us", b),
        med("latency", "quiet", "p999_us", b), med("latency", "flood", "p50_us", b),
        med("latency", "flood", "p99_us", b), med("latency", "flood", "p999_us", b),
        med("latency", "flood", "max_us", b), med("handshakes", "flood", "upgrades_per_sec", b),
        med("trickle", "trickle", "gateway_cpu_secs", b), med("trickle", "trickle", "secs", b)))
print()
print("Raw results:")
print()
print("```")
for r in rows:
    print(json.dumps(r))
print("```")
EOF
}
if [ -n "$OUT" ]; then report >"$OUT"; log "report in $OUT"; else report; fi
