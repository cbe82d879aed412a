#!/usr/bin/env python3
"""Turns the JSON lines of bench/density.sh (one per series and count) into its markdown report.
Reads its inputs from the environment that density.sh exports."""

import json
import os

env = os.environ
recs = [json.loads(l) for l in open(env["RUNS"]) if l.strip()]
SERIES = ["ws", "wss"]
KB = 1024


def rows(series):
    return [r for r in recs if r["series"] == series and r["n"] > 0]


def base(series):
    return next((r for r in recs if r["series"] == series and r["n"] == 0), None)


def failed(r):
    return sum(h.get("failed", 0) for h in r["holds"])


def failures(r):
    kinds = {}
    for h in r["holds"]:
        for k, v in h.get("failures", {}).items():
            kinds[k] = kinds.get(k, 0) + v
    return kinds


def dropped(r):
    return sum(sum(h.get("dropped_while_open", {}).values()) for h in r["holds"])


def st(sample, key):
    s = sample.get("stats") or {}
    return s.get(key)


def slope(series, f):
    """Bytes per connection between the smallest and the largest count that opened."""
    rs = [r for r in rows(series) if r["opened"] > 0]
    if len(rs) < 2:
        return None
    a, b = min(rs, key=lambda r: r["opened"]), max(rs, key=lambda r: r["opened"])
    if b["opened"] == a["opened"]:
        return None
    return (f(b) - f(a)) * KB / (b["opened"] - a["opened"])


def rss(r):
    return r["at"]["rss_kb"]


def slab_delta(r):
    return r["at"]["slab_kb"] - r["before"]["slab_kb"]


def unrecl_delta(r):
    return r["at"]["sunreclaim_kb"] - r["before"]["sunreclaim_kb"]


def pool_mib(sample):
    idle, size = st(sample, "buffers_idle"), st(sample, "buffer_size")
    return None if idle is None or size is None else idle * size / KB / KB


def fmt(v, prec=0, unit=""):
    if v is None:
        return "–"
    return f"{v:,.{prec}f}{unit}"


def ratio(a, b):
    return None if a is None or not b else a / b


out = []
w = out.append
w("# Density: memory per idle proxied WebSocket, plain ws vs. TLS wss")
w("")
quick = env["QUICK"] == "1"
w(f"- Date: {env['DATE']} (local time); command: `{env['CMDLINE']}`"
  + (" (quick mode: two small counts; indicative only)" if quick else ""))
w(f"- Machine: {env['NPROC']} CPUs, {env['CPU_MODEL']}; {int(env['MEM_TOTAL_KB']) // 1024:,} MiB;"
  f" {env['KERNEL']}; open-files limit {env['NOFILE']}")
w(f"- Load average (1/5/15 min) before: {env['LOAD_BEFORE']}, after: {env['LOAD_AFTER']}"
  " (the machine is shared with other builds and tests; the kernel figures are machine-wide)")
w(f"- {env['WSGATE_V']} at commit {env['COMMIT']}"
  + (" with uncommitted changes under src/" if env["DIRTY"] else "")
  + f"; rustls {env['RUSTLS_V'] or '?'} (ring); {env['RUSTC']}; release builds")
w(f"- Certificate: self-signed ECDSA P-256 made at run time ({env['OPENSSL_V']}); clients"
  " verify the handshake signatures but accept the certificate (`--insecure`), full handshakes,"
  " no resumption")
w(f"- Wall time of the measurements: {float(env['T_END']) - float(env['T_START']):.0f} s")
w("")
w("Setup: one echo backend (bench/loadgen `echo`) and, per series, a freshly started wsgate"
  " with a plain and a TLS listener serving the keyless API of bench/conf (`security: []`,"
  " schemes ws and wss, no limits) and `max-connections: 20000`. For each count N, bench/loadgen"
  f" `hold` processes (at most {int(env['PER_PROC']):,} connections each, each from its own"
  " source addresses) open N WebSockets through the gateway and keep them idle; once all report"
  " ready and the gateway's /stats shows them open, the figures are read; then the holders close"
  " them (close handshake) before the next N. Counts run smallest first in the same gateway"
  " process, so a later count reuses the heap of the earlier ones.")
w("")
w("Each proxied connection is two TCP connections (client–gateway, gateway–backend), so four"
  " sockets on this machine: the client's, the gateway's two and the backend's. The kernel"
  " figures count all four; the RSS figures are the gateway's alone.")
w("")

summary = {}
for s in SERIES:
    summary[s] = {
        "rss": slope(s, rss),
        "slab": slope(s, slab_delta),
        "unrecl": slope(s, unrecl_delta),
    }

w("## Per connection")
w("")
w("Slope between the smallest and the largest count, in bytes per proxied connection:")
w("")
w("| | ws | wss | wss / ws |")
w("|---|---:|---:|---:|")
for key, label in [
    ("rss", "wsgate RSS"),
    ("slab", "kernel slab (machine-wide)"),
    ("unrecl", "kernel slab, unreclaimable part"),
]:
    a, b = summary["ws"][key], summary["wss"][key]
    w(f"| {label} | {fmt(a)} | {fmt(b)} | {fmt(ratio(b, a), 2)} |")
w("")
unavailable = [r for r in recs if r.get("unavailable")]
for r in unavailable:
    w(f"**The {r['series']} series did not run:** {r['unavailable']}.")
    w("")

w("## By count")
w("")
w("RSS over the gateway's own at start, divided by the connections; slab delta from just before"
  " the holders started to while they are held, divided by the connections. The RSS over start"
  " includes the gateway's idle buffer pool (buffers kept for reuse after the handshakes; its"
  " size is in the next column), a fixed cost that the slope above leaves out.")
w("")
w("| series | N | opened | failed | ready in s | wsgate RSS MiB | RSS over start, B/conn"
  " | idle pool MiB | slab delta, B/conn | TCP sockets in use (Δ) | wsgate RSS after close MiB |")
w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for s in SERIES:
    b = base(s)
    if b is None or b.get("unavailable"):
        continue
    r0 = b["at"]["rss_kb"]
    w(f"| {s} | 0 | | | | {fmt(r0 / KB, 1)} | | | | | |")
    for r in rows(s):
        n = max(r["opened"], 1)
        w(f"| {s} | {r['n']:,} | {r['opened']:,} | {failed(r)} | {r['ready_secs']:.1f}"
          f" | {fmt(rss(r) / KB, 1)} | {fmt((rss(r) - r0) * KB / n)}"
          f" | {fmt(pool_mib(r['at']), 1)}"
          f" | {fmt(slab_delta(r) * KB / n)}"
          f" | {r['at']['tcp_inuse'] - r['before']['tcp_inuse']:,}"
          f" | {fmt(r['after_close']['rss_kb'] / KB, 1)} |")
w("")

w("The gateway's /stats while the connections are held (buffers come from a pool of"
  " fixed-size buffers; `buffered_bytes` is what they hold):")
w("")
w("| series | N | open | buffers in use | buffers idle | buffer size | buffered bytes"
  " | state bytes per connection |")
w("|---|---:|---:|---:|---:|---:|---:|---:|")
for s in SERIES:
    for r in rows(s):
        a = r["at"]
        w(f"| {s} | {r['n']:,} | {fmt(st(a, 'open'))} | {fmt(st(a, 'buffers_in_use'))}"
          f" | {fmt(st(a, 'buffers_idle'))} | {fmt(st(a, 'buffer_size'))}"
          f" | {fmt(st(a, 'buffered_bytes'))} | {fmt(st(a, 'connection_state_bytes'))} |")
w("")
w("Other processes while held (for context): the load generator's holders and the echo backend.")
w("")
w("| series | N | holders | holders' RSS, B/conn | echo RSS MiB |")
w("|---|---:|---:|---:|---:|")
for s in SERIES:
    for r in rows(s):
        n = max(r["opened"], 1)
        w(f"| {s} | {r['n']:,} | {r['holders']} | {fmt(r['holder_rss_kb'] * KB / n)}"
          f" | {fmt(r['echo_rss_kb'] / KB, 1)} |")
w("")
bad = [r for s in SERIES for r in rows(s) if failed(r) or dropped(r) or r["opened"] != r["n"]]
if bad:
    w("**Warning:** some connections failed or dropped:")
    for r in bad:
        w(f"- {r['series']} N={r['n']}: {failed(r)} failed {failures(r) or ''},"
          f" {dropped(r)} dropped while held")
    w("")
w("How to read it: RSS is what the gateway process has resident, heap and all, so its slope is"
  " the memory one more idle connection costs wsgate, allocator overhead included. The slab"
  " figures are the kernel's and machine-wide: other processes' activity shows up in them, so"
  " read them as an order of magnitude; TIME_WAIT sockets left by earlier counts (a few hundred"
  " bytes each, in `tcp_tw` of the raw results) expire meanwhile and lower them slightly. TLS adds the per-connection state of rustls (its record"
  " buffers and keys) on the gateway; the kernel's part should not change with TLS.")
w("")
w("<details><summary>Raw results (one JSON line per series and count)</summary>")
w("")
w("```")
for r in recs:
    w(json.dumps(r, separators=(",", ":")))
w("```")
w("</details>")
print("\n".join(out))
