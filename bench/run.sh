#!/usr/bin/env bash
# The whole comparison in one run: wsgate side by side with nginx (one worker) and HAProxy (one
# thread), all in front of the same echo backend, with the backend reached directly as the
# ceiling. Scenarios: idle-connection density (ws and wss), throughput (flood), latency at a fixed
# rate, handshake rate (ws and wss), and wsgate with its limits on against without. Writes
# report.md, raw.jsonl, meta.json and PNG plots into one directory. See bench/README.md.
#
#   bench/run.sh [--quick] [--no-build] [--out DIR] [--scenarios "density throughput latency handshakes"]
#
# --quick: smaller counts, 2 s runs, one round (under 2 minutes once built); its default output
# goes to bench/results/tmp/ (git-ignored). The full run takes about 9 minutes once built.
set -euo pipefail

ARGS="$*"
NAME=run.sh
source "$(dirname "$0")/lib.sh"
QUICK=0 BUILD=1 OUT="" SCENARIOS="density throughput latency handshakes"
while [ $# -gt 0 ]; do
    case $1 in
        --quick) QUICK=1 ;;
        --no-build) BUILD=0 ;;
        --out) OUT=$2; shift ;;
        --scenarios) SCENARIOS=$2; shift ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
for s in $SCENARIOS; do
    case $s in density|throughput|latency|handshakes) ;; *) echo "run.sh: unknown scenario $s" >&2; exit 2 ;; esac
done
has() { [[ " $SCENARIOS " == *" $1 "* ]]; }

# Settings. Full: ~9 minutes; quick: under 2.
if [ $QUICK = 1 ]; then
    COUNTS="500 2000" SECS=2 WARMUP=0.5 ROUNDS=1 LAT_SECS=2 LAT_ROUNDS=1 HS_SECS=2 HS_WARMUP=0.5 HS_ROUNDS=1
else
    COUNTS="1000 5000 9500" SECS=5 WARMUP=1 ROUNDS=3 LAT_SECS=3 LAT_ROUNDS=5 HS_SECS=3 HS_WARMUP=1 HS_ROUNDS=3
fi
FLOOD_CONNS=64 WINDOW=16 SIZES="64 4096"       # throughput: M connections, W messages in flight each
LAT_CONNS=1000 LAT_RATE=20000 LAT_SIZE=64      # latency: R round trips/s offered over M connections
HS_CONC=16                                     # handshakes: upgrades in progress at once
PER_PROC=4000                                  # density: most connections per hold process
HIGH=60000                                     # the count limits, raised out of reach (nginx takes < 65536)
CLIENT_ID=demo-client-id
HEADER="X-IBM-Client-Id: $CLIENT_ID"

# --- What the run needs: nginx and HAProxy from Debian, matplotlib in a venv under bench/. ------
if ! command -v nginx >/dev/null || ! command -v haproxy >/dev/null; then
    log "installing nginx and haproxy (apt-get)"
    apt-get install -y --no-install-recommends nginx haproxy >/dev/null 2>&1 ||
        { apt-get update >/dev/null && apt-get install -y --no-install-recommends nginx haproxy >/dev/null; } ||
        { log "could not install nginx and haproxy"; exit 1; }
fi
need nginx haproxy openssl curl python3 strip
VENV=$BENCH/.venv
if ! "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null; then
    log "installing matplotlib into bench/.venv"
    python3 -m venv "$VENV" && "$VENV/bin/pip" install -q matplotlib >&2 ||
        log "matplotlib could not be installed: the report will have no plots"
fi
PY=python3
[ -x "$VENV/bin/python" ] && PY=$VENV/bin/python

bench_build "$WSGATE" "$LG"

DATE=$(date +%Y-%m-%d-%H%M%S)
if [ -z "$OUT" ]; then
    if [ $QUICK = 1 ]; then OUT=$BENCH/results/tmp/run-quick-$DATE; else OUT=$BENCH/results/run-$DATE; fi
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
RAW=$OUT/raw.jsonl; : >"$RAW"

# --- Processes: every one started here is recorded and stopped by its PID. ----------------------
bench_tmp run

# Runs the load generator in the background and waits, so SIGTERM to this script is handled at
# once and cleanup can stop it. Its JSON line goes to $TMP/lg.json and is printed by `res`; a run
# that printed nothing gives null (the report shows it as missing).
lg() {
    "$LG" "$@" >"$TMP/lg.json" 2>>"$TMP/loadgen.err" &
    local pid=$!
    PIDS+=("$pid")
    wait "$pid" || log "load generator failed: $* (see $TMP/loadgen.err)"
    unset_pid "$pid"
}
res() { if [ -s "$TMP/lg.json" ]; then cat "$TMP/lg.json"; else echo null; fi; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_http() { # port, pid: until something answers HTTP there
    for _ in $(seq 100); do
        curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/" && return 0
        kill -0 "$2" 2>/dev/null || break
        sleep 0.1
    done
    log "nothing answers on port $1"; return 1
}
meminfo_kb() { awk -v k="$1:" '$1 == k { print $2 }' /proc/meminfo; }
rss_kb() { awk -v k="${2:-VmRSS}:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# --- Shared pieces: certificate, echo backends, configs. ----------------------------------------
make_cert
cat "$TMP/cert.pem" "$TMP/key.pem" >"$TMP/cert+key.pem"   # HAProxy wants both in one file

# One echo backend for every proxy; a TLS one only for the direct wss handshake ceiling.
start_echo
"$LG" echo --listen 127.0.0.1:0 --tls-cert "$TMP/cert.pem" --tls-key "$TMP/key.pem" 2>"$TMP/echo-tls.err" &
ECHO_TLS_PID=$!; PIDS+=("$ECHO_TLS_PID")
ECHO_TLS_ADDR=$(wait_addr "$TMP/echo-tls.err" "echo tls" "$ECHO_TLS_PID")

# wsgate configs. "on": the seed API unchanged and the seed product with its limit values raised
# out of reach (count limit 2 -> HIGH; message rate limits 3 and 5 a minute and the plan's 100 an
# hour -> 10^9 per period), so the count limit and both message limits run on every connection and
# message. "seed": the seed product unchanged (for the checks). "off": the keyless API of
# bench/conf without any limit.
wsgate_yaml() { # product file, applications block, listeners block
    cat <<EOF
listeners:
$3
admin: 127.0.0.1:0
products: [$1]
catalog:
  name: sandbox
  properties:
    target-url: ws://$ECHO_ADDR/
$2
bounds:
  max-connections: 20000
  # The load comes from a few loopback addresses, and the peers cap nothing per address.
  max-pending-per-address: 20000
EOF
}
APPS="applications:
  - {name: demo-app, client-id: $CLIENT_ID, product: test-yahel-websocket-product, plan: default-plan}"
LISTEN_BOTH="  - address: 127.0.0.1:0
    tls-offloaded: true
  - address: 127.0.0.1:0
    tls:
      certificates:
        - {cert: $TMP/cert.pem, key: $TMP/key.pem}"
for c in on seed off; do mkdir -p "$TMP/wsgate-$c"; done
cp "$ROOT/conf/test-yahel-websocket-api_1.0.0.yaml" "$TMP/wsgate-on/"
cp "$ROOT"/conf/test-yahel-websocket-{api,product}_1.0.0.yaml "$TMP/wsgate-seed/"
sed -e 's#value: 100/1hour#value: 1000000000/1hour#' \
    -e 's#value: 3/1minute#value: 1000000000/1minute#' \
    -e 's#value: 5/1minute#value: 1000000000/1minute#' \
    -e "s#value: 2\$#value: $HIGH#" \
    "$ROOT/conf/test-yahel-websocket-product_1.0.0.yaml" >"$TMP/wsgate-on/test-yahel-websocket-product_1.0.0.yaml"
# The edit must have hit all four values; a changed seed should fail here, not bench silently.
[ "$(diff "$ROOT/conf/test-yahel-websocket-product_1.0.0.yaml" "$TMP/wsgate-on/test-yahel-websocket-product_1.0.0.yaml" | grep -c '^>')" = 4 ] ||
    { log "the seed product changed: could not raise exactly its four limit values"; exit 1; }
wsgate_yaml test-yahel-websocket-product_1.0.0.yaml "$APPS" "$LISTEN_BOTH" >"$TMP/wsgate-on/gateway.yaml"
wsgate_yaml test-yahel-websocket-product_1.0.0.yaml "$APPS" "$LISTEN_BOTH" >"$TMP/wsgate-seed/gateway.yaml"
cp "$BENCH/conf/no-limits-api_1.0.0.yaml" "$BENCH/conf/no-limits-product_1.0.0.yaml" "$TMP/wsgate-off/"
wsgate_yaml no-limits-product_1.0.0.yaml "applications: []" "  - address: 127.0.0.1:0" >"$TMP/wsgate-off/gateway.yaml"
for c in on seed off; do
    "$WSGATE" check --config "$TMP/wsgate-$c/gateway.yaml" >"$TMP/wsgate-$c/check.txt" 2>&1 ||
        { log "wsgate check failed for $c:"; cat "$TMP/wsgate-$c/check.txt" >&2; exit 1; }
done

# Starts one proxy. Sets P_PID (the process that does the work: measured for RSS and CPU),
# P_STOP (the PIDs to stop, in order), P_EXTRA (other processes of it, e.g. nginx's master),
# P_WS and P_WSS (base URLs; P_WSS empty if none).
#   start_proxy KIND NAME [LIMIT]    KIND: wsgate-on wsgate-off wsgate-seed nginx haproxy
start_proxy() {
    local kind=$1 name=$2 limit=${3:-$HIGH} dir=$TMP/$2 plain tls
    mkdir -p "$dir"
    P_EXTRA="" P_WSS=""
    case $kind in
        wsgate-*)
            local c=${kind#wsgate-}
            "$WSGATE" --config "$TMP/wsgate-$c/gateway.yaml" >"$dir/activity.log" 2>"$dir/stderr" &
            P_PID=$!; PIDS+=("$P_PID"); P_STOP=$P_PID
            wait_addr "$dir/stderr" admin "$P_PID" >/dev/null
            plain=$(grep -oE "listening on [^ ]+ \(plain\)" "$dir/stderr" | head -1 | cut -d' ' -f3)
            tls=$(grep -oE "listening on [^ ]+ \(tls\)" "$dir/stderr" | head -1 | cut -d' ' -f3 || true)
            if [ "$c" = off ]; then
                P_WS="ws://$plain/bench-no-limits-api/"
            else
                P_WS="ws://$plain/test-yahel-websocket-api/"
                P_WSS="wss://$tls/test-yahel-websocket-api/"
            fi
            ;;
        nginx|haproxy)
            plain=$(free_port); tls=$(free_port)
            local tmpl=$BENCH/peers/nginx.conf.tmpl conf=$dir/nginx.conf
            [ $kind = haproxy ] && tmpl=$BENCH/peers/haproxy.cfg.tmpl conf=$dir/haproxy.cfg
            sed -e "s#@DIR@#$dir#g" -e "s#@ECHO@#$ECHO_ADDR#g" -e "s#@PLAIN_PORT@#$plain#g" \
                -e "s#@TLS_PORT@#$tls#g" -e "s#@CERT@#$TMP/cert.pem#g" -e "s#@KEY@#$TMP/key.pem#g" \
                -e "s#@PEM@#$TMP/cert+key.pem#g" -e "s#@LIMIT@#$limit#g" "$tmpl" >"$conf"
            if [ $kind = nginx ]; then
                nginx -p "$dir" -c nginx.conf 2>"$dir/stderr" &
            else
                haproxy -db -f "$conf" 2>"$dir/stderr" &
            fi
            P_PID=$!; PIDS+=("$P_PID"); P_STOP=$P_PID
            wait_http "$plain" "$P_PID" || { cat "$dir"/stderr "$dir"/error.log >&2 2>/dev/null; exit 1; }
            if [ $kind = nginx ]; then
                # The master forks one worker, which does the work; both are stopped by PID.
                local w=""
                for _ in $(seq 50); do
                    w=$(cat "/proc/$P_PID/task/$P_PID/children" 2>/dev/null | awk '{ print $1 }')
                    [ -n "$w" ] && break
                    sleep 0.1
                done
                [ -n "$w" ] || { log "nginx started no worker"; exit 1; }
                PIDS+=("$w"); P_EXTRA=$P_PID; P_STOP="$P_PID $w"; P_PID=$w
            fi
            P_WS="ws://127.0.0.1:$plain/ws/"
            P_WSS="wss://127.0.0.1:$tls/ws/"
            ;;
    esac
}
stop_proxy() { local p; for p in $P_STOP; do stop_pid "$p" 10; done; }

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
T_START=$(date +%s.%N)
TLS_OPTS=(--insecure --sni localhost)
now() { date +%s.%N; }
phase_time() { printf '{"kind":"phase","phase":"%s","secs":%s,"load":"%s"}\n' "$1" \
    "$(python3 -c "print(round($(now) - $2, 1))")" "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RAW"; }

# --- Checks: every proxy really runs its count limit and requires the client id. ----------------
# With the limit at 2 (the seed product's own value), a client's third connection is refused with
# 429, and an upgrade without X-IBM-Client-Id with 401. For wsgate also: one connection flooding
# the seed product unchanged is closed after 3 messages (its 3/minute limit), and the same flood
# against the raised limits is not, so the "limits on" gateway counts every message.
t0=$(now)
log "checks: count limits at 2, client id required, message limits"
for k in wsgate-seed nginx haproxy; do
    start_proxy $k check-$k 2
    for scheme in ws wss; do
        if [ $scheme = ws ]; then url=$P_WS tls=(); else url=$P_WSS tls=("${TLS_OPTS[@]}"); fi
        lg hold --url "$url" "${tls[@]}" --conns 3 --concurrency 1 --hold-secs 0.3 --header "$HEADER"; three=$(res)
        lg hold --url "$url" "${tls[@]}" --conns 1 --hold-secs 0; noid=$(res)
        printf '{"kind":"check","proxy":"%s","scheme":"%s","limit2_three":%s,"no_id":%s}\n' \
            "${k%-seed}" $scheme "$three" "$noid" >>"$RAW"
    done
    if [ $k = wsgate-seed ]; then
        flood1=(flood --conns 1 --window 1 --secs 1 --warmup 0 --header "$HEADER")
        lg "${flood1[@]}" --url "$P_WS"; seedflood=$(res)
    fi
    stop_proxy
done
start_proxy wsgate-on check-wsgate-on
lg "${flood1[@]}" --url "$P_WS"; onflood=$(res)
stop_proxy
printf '{"kind":"check_messages","seed":%s,"on":%s}\n' "$seedflood" "$onflood" >>"$RAW"
phase_time checks "$t0"

# --- 1. Density. ---------------------------------------------------------------------------------
# For each scheme and proxy, a freshly started proxy (no shared heap history): for each count N,
# hold processes open N idle proxied WebSockets, then the proxy's RSS and the kernel's memory are
# read, then the holders close them before the next N.
density_sample() { # pid -> JSON
    local tcp
    tcp=$(awk '$1 == "sockets:" { printf "\"sockets_used\":%s,", $3 } $1 == "TCP:" { printf "\"tcp_inuse\":%s,\"tcp_tw\":%s,\"tcp_alloc\":%s,\"tcp_mem_pages\":%s", $3, $7, $9, $11 }' /proc/net/sockstat)
    printf '{"rss_kb":%s,"rss_anon_kb":%s,"slab_kb":%s,"sunreclaim_kb":%s,%s}' \
        "$(rss_kb "$1")" "$(rss_kb "$1" RssAnon)" "$(meminfo_kb Slab)" "$(meminfo_kb SUnreclaim)" "$tcp"
}
# Waits (at most 5 s) until the machine's TCP sockets in use stop changing, so that sockets of
# the previous count or proxy still closing do not end up in a "before" figure.
settle_tcp() {
    local prev=-1 cur
    for _ in $(seq 25); do
        cur=$(awk '$1 == "TCP:" { print $3 }' /proc/net/sockstat)
        [ $prev -ge 0 ] && [ $((cur - prev)) -le 20 ] && [ $((prev - cur)) -le 20 ] && return 0
        prev=$cur
        sleep 0.2
    done
}
if has density; then
    t0=$(now)
    pno=0
    for scheme in ws wss; do
        for proxy in wsgate nginx haproxy; do
            pno=$((pno + 1))
            k=$proxy; [ $proxy = wsgate ] && k=wsgate-on
            start_proxy $k density-$proxy-$scheme
            if [ $scheme = ws ]; then url=$P_WS tls=(); else url=$P_WSS tls=("${TLS_OPTS[@]}"); fi
            log "density: $proxy $scheme (pid $P_PID)"
            sleep 0.3
            settle_tcp
            extra=0; [ -n "$P_EXTRA" ] && extra=$(rss_kb "$P_EXTRA")
            printf '{"kind":"density","proxy":"%s","scheme":"%s","n":0,"at":%s,"extra_rss_kb":%s}\n' \
                $proxy $scheme "$(density_sample "$P_PID")" "$extra" >>"$RAW"
            round=0
            for n in $COUNTS; do
                round=$((round + 1))
                procs=$(((n + PER_PROC - 1) / PER_PROC))
                settle_tcp
                before=$(density_sample "$P_PID")
                t1=$(now)
                hpids=()
                for j in $(seq "$procs"); do
                    cnt=$((n / procs + (j <= n % procs ? 1 : 0)))
                    # Own source addresses per proxy, count and holder: no port or TIME_WAIT clash.
                    src="127.$((10 + pno)).$round.$((2 * j - 1)),127.$((10 + pno)).$round.$((2 * j))"
                    "$LG" hold --url "$url" "${tls[@]}" --conns "$cnt" --sources "$src" --hold-secs 3600 \
                        --timeout 30 --concurrency $((100 / procs)) --header "$HEADER" \
                        --label "$proxy-$scheme-$n-$j" >"$TMP/hold-$pno-$n-$j.out" 2>"$TMP/hold-$pno-$n-$j.err" &
                    hpids+=($!); PIDS+=($!)
                done
                wait_holders "hold-$pno-$n" "$procs" "$proxy $scheme $n"
                ready_secs=$(python3 -c "print(round($(now) - $t1, 2))")
                opened=0
                for j in $(seq "$procs"); do
                    opened=$((opened + $(grep -m1 '^ready:' "$TMP/hold-$pno-$n-$j.err" | awk '{ print $2 }')))
                done
                sleep 0.5
                at=$(density_sample "$P_PID")
                extra=0; [ -n "$P_EXTRA" ] && extra=$(rss_kb "$P_EXTRA")
                holder_rss=0
                for p in "${hpids[@]}"; do holder_rss=$((holder_rss + $(rss_kb "$p"))); done
                log "density: $proxy $scheme $opened of $n open in ${ready_secs} s, RSS $(rss_kb "$P_PID") kB"
                for p in "${hpids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
                for p in "${hpids[@]}"; do stop_pid "$p" 10; done
                sleep 0.3
                after=$(density_sample "$P_PID")
                holds=$(cat "$TMP"/hold-$pno-$n-*.out | paste -sd, -)
                printf '{"kind":"density","proxy":"%s","scheme":"%s","n":%s,"opened":%s,"ready_secs":%s,"holder_rss_kb":%s,"echo_rss_kb":%s,"extra_rss_kb":%s,"before":%s,"at":%s,"after_close":%s,"holds":[%s]}\n' \
                    $proxy $scheme "$n" "$opened" "$ready_secs" "$holder_rss" "$(rss_kb "$ECHO_PID")" \
                    "$extra" "$before" "$at" "$after" "$holds" >>"$RAW"
            done
            kill -0 "$P_PID" 2>/dev/null || { log "$proxy exited during the density run"; exit 1; }
            stop_proxy
        done
    done
    phase_time density "$t0"
fi

# --- 2-4. Throughput, latency, handshakes: one long-lived instance of each proxy. ---------------
# wsgate runs twice: "wsgate" with the seed's limits on (raised out of reach), the row compared
# with the peers, and "wsgate-off" without limits (scenario 5, the cost of the limits).
declare -A URL_WS URL_WSS PID_OF
URL_WS[direct]="ws://$ECHO_ADDR/ws/"; URL_WSS[direct]="wss://$ECHO_TLS_ADDR/ws/"
if has throughput || has latency || has handshakes; then
    for t in wsgate wsgate-off nginx haproxy; do
        k=$t; [ $t = wsgate ] && k=wsgate-on
        start_proxy $k $t
        URL_WS[$t]=$P_WS; URL_WSS[$t]=$P_WSS; PID_OF[$t]=$P_PID
    done
fi
cpu_args() { # target -> --cpu-pid options
    [ "$1" = direct ] || echo "--cpu-pid proxy=${PID_OF[$1]}"
    echo "--cpu-pid echo=$ECHO_PID"
}
# Rotates the order of the targets each round so none always runs first or last, and reverses it
# every other round so no two are always neighbours (disturbances from other work on the machine
# last several seconds and would otherwise hit the same neighbours each round).
rotated() { # round, targets...
    local r=$1; shift
    local a=("$@") n=$# i
    if [ $((r % 2)) = 1 ]; then
        for i in $(seq 0 $((n - 1))); do echo "${a[$(((i + r - 1) % n))]}"; done
    else
        for i in $(seq $((n - 1)) -1 0); do echo "${a[$(((i + r - 1) % n))]}"; done
    fi
}
MSG_TARGETS=(direct wsgate wsgate-off nginx haproxy)

if has throughput; then
    t0=$(now)
    for r in $(seq "$ROUNDS"); do
        for size in $SIZES; do
            for t in $(rotated "$r" "${MSG_TARGETS[@]}"); do
                log "throughput: round $r/$ROUNDS, $size B, $t"
                # shellcheck disable=SC2046
                lg flood --url "${URL_WS[$t]}" --conns $FLOOD_CONNS --size "$size" --window $WINDOW \
                    --secs $SECS --warmup $WARMUP --header "$HEADER" --label "$t" $(cpu_args "$t")
                printf '{"kind":"throughput","target":"%s","round":%s,"result":%s}\n' "$t" "$r" "$(res)" >>"$RAW"
            done
        done
    done
    phase_time throughput "$t0"
fi

if has latency; then
    t0=$(now)
    for r in $(seq "$LAT_ROUNDS"); do
        for t in $(rotated "$r" "${MSG_TARGETS[@]}"); do
            log "latency: round $r/$LAT_ROUNDS, $LAT_RATE/s over $LAT_CONNS connections, $t"
            # shellcheck disable=SC2046
            lg latency --url "${URL_WS[$t]}" --conns $LAT_CONNS --rate $LAT_RATE --size $LAT_SIZE \
                --secs $LAT_SECS --warmup $WARMUP --header "$HEADER" --label "$t" $(cpu_args "$t")
            printf '{"kind":"latency","target":"%s","round":%s,"result":%s}\n' "$t" "$r" "$(res)" >>"$RAW"
        done
    done
    phase_time latency "$t0"
fi

if has handshakes; then
    t0=$(now)
    hs=0
    for r in $(seq "$HS_ROUNDS"); do
        for scheme in ws wss; do
            for t in $(rotated "$r" direct wsgate nginx haproxy); do
                hs=$((hs + 1))
                if [ $scheme = ws ]; then url=${URL_WS[$t]} tls=(); else url=${URL_WSS[$t]} tls=("${TLS_OPTS[@]}"); fi
                cpu=(--cpu-pid "echo=$ECHO_PID")
                [ $t = direct ] && [ $scheme = wss ] && cpu=(--cpu-pid "echo=$ECHO_TLS_PID")
                [ $t = direct ] || cpu+=(--cpu-pid "proxy=${PID_OF[$t]}")
                # Fresh source addresses per run: tens of thousands of closed connections each.
                src=$(seq -s, -f "127.200.$hs.%g" 1 4)
                log "handshakes: round $r/$HS_ROUNDS, $scheme, $t"
                lg handshakes --url "$url" "${tls[@]}" --concurrency $HS_CONC --secs $HS_SECS \
                    --warmup $HS_WARMUP --sources "$src" --header "$HEADER" --label "$t" "${cpu[@]}"
                printf '{"kind":"handshakes","target":"%s","scheme":"%s","round":%s,"result":%s}\n' \
                    "$t" $scheme "$r" "$(res)" >>"$RAW"
            done
        done
    done
    phase_time handshakes "$t0"
fi

for t in "${!PID_OF[@]}"; do
    kill -0 "${PID_OF[$t]}" 2>/dev/null || { log "$t exited during the run"; exit 1; }
done
T_END=$(date +%s.%N)
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --- Binaries, versions, machine. ---------------------------------------------------------------
strip -o "$TMP/wsgate.stripped" "$WSGATE"
size_of() { stat -c %s "$1"; }
# Shared libraries a binary loads beyond the C runtime (libc, libm, the loader, libgcc_s).
libs_of() {
    ldd "$1" 2>/dev/null | awk '$3 ~ /^\// { print $1 "=" $3 }' |
        grep -vE '^(libc|libm|libgcc_s|ld-linux|libpthread|libdl|librt)[.-]' |
        while IFS== read -r name path; do printf '%s:%s ' "$name" "$(stat -L -c %s "$path")"; done
}
NGINX_BIN=$(command -v nginx) HAPROXY_BIN=$(command -v haproxy)
export OUT RAW ARGS QUICK DATE LOAD_BEFORE LOAD_AFTER T_START T_END COUNTS SECS WARMUP ROUNDS LAT_SECS LAT_ROUNDS HS_SECS HS_WARMUP \
    HS_ROUNDS FLOOD_CONNS WINDOW SIZES LAT_CONNS LAT_RATE LAT_SIZE HS_CONC PER_PROC HIGH SCENARIOS
export CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') \
    NPROC=$(nproc) KERNEL=$(uname -sr) MEM_TOTAL_KB=$(meminfo_kb MemTotal) NOFILE=$(ulimit -n) \
    DEBIAN=$(cat /etc/debian_version 2>/dev/null || echo unknown) \
    COMMIT=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown) \
    DIRTY=$(cd "$ROOT" && git status --porcelain -- src Cargo.toml Cargo.lock bench ':!bench/results' 2>/dev/null | head -3 | tr '\n' ' ') \
    RUSTC=$(rustc --version) WSGATE_V=$("$WSGATE" --version) \
    RUSTLS_V=$(awk '/^name = "rustls"$/ { getline; gsub(/"/, "", $3); print $3; exit }' "$ROOT/Cargo.lock") \
    NGINX_V=$(nginx -v 2>&1 | head -1) HAPROXY_V=$(haproxy -v | head -1) OPENSSL_V=$(openssl version) \
    WSGATE_SIZE=$(size_of "$WSGATE") WSGATE_STRIPPED=$(size_of "$TMP/wsgate.stripped") \
    NGINX_BIN NGINX_SIZE=$(size_of "$NGINX_BIN") HAPROXY_BIN HAPROXY_SIZE=$(size_of "$HAPROXY_BIN") \
    WSGATE_LIBS=$(libs_of "$WSGATE") NGINX_LIBS=$(libs_of "$NGINX_BIN") HAPROXY_LIBS=$(libs_of "$HAPROXY_BIN") \
    NGINX_FILE=$(file -b "$NGINX_BIN" 2>/dev/null | grep -oE '(not )?stripped' || echo '?') \
    HAPROXY_FILE=$(file -b "$HAPROXY_BIN" 2>/dev/null | grep -oE '(not )?stripped' || echo '?') \
    CMDLINE="bench/run.sh${ARGS:+ $ARGS}"
python3 - >"$OUT/meta.json" <<'EOF'
import json, os
keys = """ARGS QUICK DATE LOAD_BEFORE LOAD_AFTER T_START T_END COUNTS SECS WARMUP ROUNDS LAT_SECS LAT_ROUNDS HS_SECS HS_WARMUP HS_ROUNDS
FLOOD_CONNS WINDOW SIZES LAT_CONNS LAT_RATE LAT_SIZE HS_CONC PER_PROC HIGH SCENARIOS CPU_MODEL NPROC
KERNEL MEM_TOTAL_KB NOFILE DEBIAN COMMIT DIRTY RUSTC WSGATE_V RUSTLS_V NGINX_V HAPROXY_V OPENSSL_V
WSGATE_SIZE WSGATE_STRIPPED NGINX_BIN NGINX_SIZE HAPROXY_BIN HAPROXY_SIZE WSGATE_LIBS NGINX_LIBS
HAPROXY_LIBS NGINX_FILE HAPROXY_FILE CMDLINE""".split()
json.dump({k: os.environ.get(k, "") for k in keys}, __import__("sys").stdout, indent=1)
EOF
"$PY" "$BENCH/run_report.py" "$OUT"
log "wrote ${OUT#"$ROOT"/}/report.md ($(python3 -c "print(round($T_END - $T_START))") s of measurements)"
