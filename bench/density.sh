#!/usr/bin/env bash
# Density: what an idle proxied WebSocket costs wsgate in memory, over plain ws and over TLS
# (wss, terminated by the gateway). For each count N it opens N idle connections through one
# gateway to the echo backend, reads the gateway's RSS, the kernel's slab and TCP figures and the
# gateway's /stats, then closes them. Both series run in one invocation; the report gives the
# per-connection slope of each and the ratio wss/ws. See bench/README.md.
#
#   bench/density.sh [--quick] [--counts "1000 5000 9500"] [--per-proc N] [--no-build]
#                    [--out FILE]
set -euo pipefail

ARGS="$*"
NAME=density.sh
source "$(dirname "$0")/lib.sh"
COUNTS="1000 5000 9500" PER_PROC=4000 BUILD=1 QUICK=0 OUT=""
while [ $# -gt 0 ]; do
    case $1 in
        --quick) QUICK=1 COUNTS="500 2000" ;;
        --counts) COUNTS=$2; shift ;;
        --per-proc) PER_PROC=$2; shift ;;
        --no-build) BUILD=0 ;;
        --out) OUT=$2; shift ;;
        -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "density.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
for c in $COUNTS; do
    [[ $c =~ ^[1-9][0-9]*$ ]] || { echo "density.sh: --counts: $c is not a positive number" >&2; exit 2; }
    # One gateway process holds two descriptors per proxied connection, under a hard limit.
    [ "$c" -le 9900 ] || { echo "density.sh: $c connections exceed what one process may hold here (~9,900)" >&2; exit 2; }
done
[[ $PER_PROC =~ ^[1-9][0-9]*$ ]] || { echo "density.sh: --per-proc must be a positive number" >&2; exit 2; }
need python3 curl openssl
bench_tmp density
bench_build "$WSGATE" "$LG"
make_cert
start_echo

# One plain and one TLS listener; the keyless API (schemes ws and wss) is served on both. The
# open-files limit (two per connection) is the real bound on the counts run here.
no_limits_yaml
"$WSGATE" check --config "$TMP/gateway.yaml" >"$TMP/check.txt" 2>&1 ||
    { log "wsgate check failed:"; cat "$TMP/check.txt" >&2; exit 1; }

start_gateway() { # series name -> sets GW_PID, PLAIN_ADDR, TLS_ADDR (empty without TLS), ADMIN
    local err=$TMP/gateway-$1.err
    "$WSGATE" --config "$TMP/gateway.yaml" >"$TMP/gateway-$1.activity" 2>"$err" &
    GW_PID=$!; PIDS+=("$GW_PID")
    # The admin listener is announced after the API listeners.
    ADMIN=$(wait_addr "$err" admin "$GW_PID")
    PLAIN_ADDR=$(grep -oE "listening on [^ ]+ \(plain\)" "$err" | head -1 | cut -d' ' -f3)
    TLS_ADDR=$(grep -oE "listening on [^ ]+ \(tls\)" "$err" | head -1 | cut -d' ' -f3 || true)
}

stats() { curl -sf --max-time 5 "http://$ADMIN/stats" | tr -d '\n'; }
# TcpExt counters by name from /proc/net/netstat (a header line, then a values line).
tcpext() {
    awk -v k="$1" '$1 == "TcpExt:" { if (!h) { for (i = 2; i <= NF; i++) if ($i == k) c = i; h = 1 } else { print $c; exit } }' /proc/net/netstat
}
meminfo_kb() { awk -v k="$1:" '$1 == k { print $2 }' /proc/meminfo; }
rss_kb() { awk -v k="${2:-VmRSS}:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# One JSON object: the gateway's RSS, the kernel's memory, TCP sockets and the gateway's /stats.
sample() {
    local st tcp
    st=$(stats || echo null)
    # TCP: inuse X orphan Y tw Z alloc A mem M (pages)
    tcp=$(awk '$1 == "TCP:" { printf "\"tcp_inuse\":%s,\"tcp_tw\":%s,\"tcp_alloc\":%s,\"tcp_mem_pages\":%s", $3, $7, $9, $11 }' /proc/net/sockstat)
    tcp="$tcp,\"listen_overflows\":$(tcpext ListenOverflows)"
    printf '{"rss_kb":%s,"rss_anon_kb":%s,"slab_kb":%s,"sunreclaim_kb":%s,"mem_available_kb":%s,%s,"stats":%s}' \
        "$(rss_kb "$GW_PID")" "$(rss_kb "$GW_PID" RssAnon)" "$(meminfo_kb Slab)" "$(meminfo_kb SUnreclaim)" \
        "$(meminfo_kb MemAvailable)" "$tcp" "$st"
}

# Polls /stats until its "open" count is $1 (or 10 s pass).
wait_open() {
    local want=$1 open
    for _ in $(seq 100); do
        open=$(stats | grep -oE '"open":[0-9]+' | cut -d: -f2 || true)
        [ "${open:-x}" = "$want" ] && return 0
        sleep 0.1
    done
    log "gateway reports ${open:-?} open connections, expected $want"
}

RUNS=$TMP/runs.jsonl; : >"$RUNS"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
T_START=$(date +%s.%N)
SERIES_NO=0
for series in ws wss; do
    SERIES_NO=$((SERIES_NO + 1))
    # A fresh gateway per series, so the two do not share heap history.
    start_gateway "$series"
    if [ $series = ws ]; then
        url="ws://$PLAIN_ADDR/bench-no-limits-api/"; tls=()
    else
        if [ -z "$TLS_ADDR" ]; then
            log "the gateway announced no '(tls)' listener: no wss series"
            printf '{"series":"wss","n":0,"unavailable":"no (tls) listener announced by the gateway"}\n' >>"$RUNS"
            stop_pid "$GW_PID" 10
            continue
        fi
        url="wss://$TLS_ADDR/bench-no-limits-api/"; tls=(--insecure --sni localhost)
    fi
    log "$series: gateway pid $GW_PID, $url, admin $ADMIN"
    sleep 0.5
    printf '{"series":"%s","n":0,"url":"%s","at":%s}\n' "$series" "$url" "$(sample)" >>"$RUNS"
    round=0
    for n in $COUNTS; do
        round=$((round + 1))
        procs=$(((n + PER_PROC - 1) / PER_PROC))
        before=$(sample)
        t0=$(date +%s.%N)
        hpids=()
        # wsgate listens with a backlog of 128 (mio's default): more connects in flight than
        # that overflow its accept queue whenever it is busy, and each overflow costs the
        # client a SYN retransmission (1 s, then 3 s ...). So the holders keep ~100 in flight.
        conc=$((100 / procs))
        for j in $(seq "$procs"); do
            # Spread evenly; each holder binds to its own two source addresses.
            k=$((n / procs + (j <= n % procs ? 1 : 0)))
            src="127.$SERIES_NO.$round.$((2 * j - 1)),127.$SERIES_NO.$round.$((2 * j))"
            "$LG" hold --url "$url" "${tls[@]}" --conns "$k" --sources "$src" \
                --hold-secs 3600 --timeout 30 --concurrency "$conc" --label "$series-$n-$j" \
                >"$TMP/hold-$series-$n-$j.out" 2>"$TMP/hold-$series-$n-$j.err" &
            hpids+=($!); PIDS+=($!)
        done
        wait_holders "hold-$series-$n" "$procs" "$series $n"
        t1=$(date +%s.%N)
        opened=0
        for j in $(seq "$procs"); do
            o=$(grep -m1 '^ready:' "$TMP/hold-$series-$n-$j.err" | awk '{ print $2 }')
            opened=$((opened + o))
        done
        wait_open "$opened"
        sleep 0.5
        at=$(sample)
        holder_rss=0
        for p in "${hpids[@]}"; do holder_rss=$((holder_rss + $(rss_kb "$p"))); done
        echo_rss=$(rss_kb "$ECHO_PID")
        log "$series: $opened of $n open (ready in $(python3 -c "print(f'{$t1 - $t0:.1f}')") s), gateway RSS $(rss_kb "$GW_PID") kB"
        # All at once: each holder sends close frames and waits up to 2 s for the handshakes.
        for p in "${hpids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
        for p in "${hpids[@]}"; do stop_pid "$p" 10; done
        wait_open 0
        after=$(sample)
        holds=$(cat "$TMP"/hold-$series-$n-*.out | paste -sd, -)
        printf '{"series":"%s","n":%s,"opened":%s,"holders":%s,"ready_secs":%s,"holder_rss_kb":%s,"echo_rss_kb":%s,"before":%s,"at":%s,"after_close":%s,"holds":[%s]}\n' \
            "$series" "$n" "$opened" "$procs" "$(python3 -c "print(f'{$t1 - $t0:.3f}')")" \
            "$holder_rss" "$echo_rss" "$before" "$at" "$after" "$holds" >>"$RUNS"
    done
    kill -0 "$GW_PID" 2>/dev/null || { log "the gateway exited during the $series series"; exit 1; }
    stop_pid "$GW_PID" 10
done
T_END=$(date +%s.%N)
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

DATE=$(date +%Y-%m-%d-%H%M%S)
[ -n "$OUT" ] || OUT=$BENCH/results/density-$DATE.md
mkdir -p "$(dirname "$OUT")"
CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
COMMIT=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(cd "$ROOT" && git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null | head -1)
RUSTLS_V=$(awk '/^name = "rustls"$/ { getline; gsub(/"/, "", $3); print $3; exit }' "$ROOT/Cargo.lock")

export RUNS COUNTS QUICK DATE CPU_MODEL COMMIT DIRTY LOAD_BEFORE LOAD_AFTER T_START T_END PER_PROC \
    RUSTLS_V
export NPROC=$(nproc) KERNEL=$(uname -sr) RUSTC=$(rustc --version) WSGATE_V=$("$WSGATE" --version) \
    MEM_TOTAL_KB=$(meminfo_kb MemTotal) NOFILE=$(ulimit -n) OPENSSL_V=$(openssl version) \
    CMDLINE="bench/density.sh${ARGS:+ $ARGS}"
python3 "$BENCH/density_report.py" >"$OUT"
cat "$OUT"
log "wrote ${OUT#"$ROOT"/}"
