#!/usr/bin/env python3
"""Turns the flood results of bench/limits.sh (JSON lines, one per run) into the markdown
report. Reads its inputs from the environment that limits.sh exports."""

import json
import os
import statistics

env = os.environ
runs = [json.loads(l) for l in open(env["RUNS"]) if l.strip()]
lat = [json.loads(l) for l in open(env["LAT"]) if l.strip()]
sizes = [int(s) for s in env["SIZES"].split()]
targets = ["direct", "no-limits", "limits-on"]


def per_million(run, proc):
    cpu = run.get("cpu_secs", {}).get(proc)
    n = run["msgs"] if "msgs" in run else run["received"]
    return None if cpu is None or not n else cpu / n * 1e6


def cores(run, proc):
    cpu = run.get("cpu_secs", {}).get(proc)
    return None if cpu is None or not run["secs"] else cpu / run["secs"]


def series(size, target, f, data=None):
    """Values of f over the rounds, in run order."""
    data = runs if data is None else data
    return [f(r) for r in data if r["size"] == size and r.get("label") == target]


def fmt(vals, prec, thousands=False):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "–"
    spec = f",.{prec}f" if thousands else f".{prec}f"
    med = format(statistics.median(vals), spec)
    if len(vals) == 1:
        return med
    return f"{med} ({format(min(vals), spec)}–{format(max(vals), spec)})"


def ratios(size, num, den, f, data=None):
    """Per-round ratios: runs of one round are adjacent in time, so drift cancels best."""
    a, b = series(size, num, f, data), series(size, den, f, data)
    return [x / y for x, y in zip(a, b) if x is not None and y]


rounds = int(env["ROUNDS"])
out = []
w = out.append
w(f"# Cost of the limits: wsgate with the seed's limits raised out of reach vs. no limits")
w("")
w(f"- Date: {env['DATE']} (local time); command: `{env['CMDLINE']}`"
  + (" (quick mode: short runs, one round; indicative only)" if env["QUICK"] == "1" else ""))
w(f"- Machine: {env['NPROC']} CPUs, {env['CPU_MODEL']}; {env['KERNEL']}")
w(f"- Load average (1/5/15 min) before: {env['LOAD_BEFORE']}, after: {env['LOAD_AFTER']}"
  " (the machine is shared with other builds and tests)")
w(f"- {env['WSGATE_V']} at commit {env['COMMIT']}"
  + (" with uncommitted changes under src/" if env["DIRTY"] else "")
  + f"; {env['RUSTC']}; release builds")
w(f"- Load generator: bench/loadgen, binary messages of {env['SIZES']} bytes, {rounds} round(s);"
  " in each round the three targets run back to back, order rotated each round")
w("- Backend: bench/loadgen `echo` (Rust, mio, one thread); everything on this one machine,"
  " over loopback")
w(f"- Wall time of the runs: {int(env['T_END']) - int(env['T_START'])} s")
w("")
w("Targets:")
w("- **direct**: the load generator talks to the echo backend itself (the ceiling).")
w("- **no-limits**: wsgate serving a keyless API (only `websocket-upgrade`, `security: []`)"
  " in a product without limits.")
w("- **limits-on**: wsgate serving the seed API unchanged and the seed product with only the"
  " limit values raised out of reach (rate limits 3/1minute and 5/1minute and the plan's"
  " 100/1hour → 1000000000 per period; count limit 2 → 100000); application `demo-app`,"
  " clients send `X-IBM-Client-Id: demo-client-id`. Every message is still counted against"
  " both rate limits.")
seed, on, noid = (json.loads(env[k]) for k in ("SANITY_SEED", "SANITY_ON", "SANITY_NOID"))


def kinds(d, none):
    """Counters by kind as text, e.g. "closed by peer 1008 (1)"."""
    return ", ".join(f"{k} ({n})" for k, n in d.items()) if d else none


w("- Check that limits-on runs the seed's policies on every message: one connection flooding"
  f" for 1 s got {seed['msgs']} echoes and then {kinds(seed['lost_conns'], 'no close (!)')}"
  " from a gateway with the seed product unchanged (3 messages a minute);"
  f" {on['msgs']} echoes and {kinds(on['lost_conns'], 'no close')} from limits-on. An upgrade"
  f" to limits-on without the client id got {kinds(noid['failures'], 'no refusal (!)')}.")
w("")
w("A *round trip* is one message to the echo backend and its echo back, so wsgate relays two"
  " messages per round trip. Figures are medians over the rounds, with (min–max) when there"
  " is more than one.")
w("")
w("## Flood: as many round trips as the setup carries")
w("")
w(f"bench/loadgen `flood`: {env['CONNS']} connections, each keeping {env['WINDOW']} messages in"
  f" flight, {env['WARMUP']} s warmup then {env['SECS']} s measured.")
w("")
w("| size | target | round trips/s | wsgate CPU s per 1M round trips | wsgate cores busy"
  " | echo CPU s per 1M | loadgen CPU s per 1M |")
w("|---:|---|---:|---:|---:|---:|---:|")
for s in sizes:
    for t in targets:
        w(f"| {s} B | {t} | {fmt(series(s, t, lambda r: r['msgs_per_sec']), 0, True)}"
          f" | {fmt(series(s, t, lambda r: per_million(r, 'wsgate')), 2)}"
          f" | {fmt(series(s, t, lambda r: cores(r, 'wsgate')), 2)}"
          f" | {fmt(series(s, t, lambda r: per_million(r, 'echo')), 2)}"
          f" | {fmt(series(s, t, lambda r: per_million(r, 'loadgen')), 2)} |")
w("")
w("Ratios (per round, then the median):")
w("")
w("| size | limits-on / no-limits, round trips/s | limits-on / no-limits, wsgate CPU per"
  " round trip | no-limits / direct, round trips/s |")
w("|---:|---:|---:|---:|")
for s in sizes:
    rate = lambda r: r["msgs_per_sec"]
    w(f"| {s} B | {fmt(ratios(s, 'limits-on', 'no-limits', rate), 3)}"
      f" | {fmt(ratios(s, 'limits-on', 'no-limits', lambda r: per_million(r, 'wsgate')), 3)}"
      f" | {fmt(ratios(s, 'no-limits', 'direct', rate), 3)} |")
w("")
w(f"## At a fixed offered rate: {int(env['RATE']):,} round trips/s")
w("")
w(f"bench/loadgen `latency`: the same {env['CONNS']} connections, messages sent on an open-loop"
  f" schedule (round robin), {env['WARMUP']} s warmup then {env['LAT_SECS']} s measured. The"
  " round trip time runs from when a message is queued to when its echo is read; messages"
  " leave in small bursts at least 100 µs apart (see bench/README.md).")
w("")
w("| size | target | achieved round trips/s | wsgate CPU s per 1M | wsgate cores busy"
  " | p50 µs | p99 µs | p99.9 µs | max µs |")
w("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
for s in sizes:
    for t in targets:
        g = lambda f: series(s, t, f, lat)
        w(f"| {s} B | {t} | {fmt(g(lambda r: r['received'] / r['secs'] if r['secs'] else None), 0, True)}"
          f" | {fmt(g(lambda r: per_million(r, 'wsgate')), 2)}"
          f" | {fmt(g(lambda r: cores(r, 'wsgate')), 2)}"
          f" | {fmt(g(lambda r: r['p50_us']), 0)} | {fmt(g(lambda r: r['p99_us']), 0)}"
          f" | {fmt(g(lambda r: r['p999_us']), 0)} | {fmt(g(lambda r: r['max_us']), 0)} |")
w("")
w("| size | limits-on / no-limits, wsgate CPU per round trip | limits-on / no-limits, p50"
  " | limits-on / no-limits, p99 |")
w("|---:|---:|---:|---:|")
for s in sizes:
    w(f"| {s} B | {fmt(ratios(s, 'limits-on', 'no-limits', lambda r: per_million(r, 'wsgate'), lat), 3)}"
      f" | {fmt(ratios(s, 'limits-on', 'no-limits', lambda r: r['p50_us'], lat), 3)}"
      f" | {fmt(ratios(s, 'limits-on', 'no-limits', lambda r: r['p99_us'], lat), 3)} |")
w("")
failed = [r for r in runs + lat if r.get("failures") or r.get("lost_conns") or r["opened"] != r["conns"]]
if failed:
    w(f"**Warning:** {len(failed)} run(s) had failed or lost connections; see the raw results.")
    w("")
w("How to read it: all processes share the same CPUs, so round trips/s is bounded by whichever"
  " of load generator, gateway and backend runs out of CPU first; wsgate's CPU seconds per"
  " round trip is the cost of the gateway itself and the figure to compare for the limits.")
w("")
w("<details><summary>Raw results (one JSON line per run)</summary>")
w("")
w("```")
for r in runs + lat:
    w(json.dumps(r, separators=(",", ":")))
w("```")
w("</details>")
print("\n".join(out))
