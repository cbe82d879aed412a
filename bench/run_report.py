"""Report of one bench/run.sh run: reads DIR/raw.jsonl and DIR/meta.json, writes DIR/report.md
(headline table, targets, every figure, wsgate's figures as ratios to each peer) and PNG plots
(memory.png, throughput.png, latency.png, handshakes.png). Plots need matplotlib; without it the
report says so and has none.

    python3 bench/run_report.py DIR
"""

import json
import os
import statistics
import sys

OUT = sys.argv[1]
META = json.load(open(os.path.join(OUT, "meta.json")))
ROWS = [json.loads(line) for line in open(os.path.join(OUT, "raw.jsonl")) if line.strip()]

PROXIES = ["wsgate", "nginx", "haproxy"]
PEERS = ["nginx", "haproxy"]
NAME = {
    "direct": "direct",
    "wsgate": "wsgate",
    "wsgate-off": "wsgate, no limits",
    "nginx": "nginx",
    "haproxy": "HAProxy",
}
MSG_TARGETS = ["direct", "wsgate", "wsgate-off", "nginx", "haproxy"]
HS_TARGETS = ["direct", "wsgate", "nginx", "haproxy"]
COLOR = {"direct": "#888888", "wsgate": "#1f77b4", "wsgate-off": "#9ecae9", "nginx": "#2ca02c",
         "haproxy": "#d62728"}


def of(kind):
    return [r for r in ROWS if r.get("kind") == kind]


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def n0(x, nd=0):
    """A number with thousands separators, or a dash."""
    if x is None:
        return "–"
    return f"{x:,.{nd}f}"


def ratio(a, b, nd=2):
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.{nd}f}"


def ms(us, nd=2):
    return "–" if us is None else f"{us / 1000:.{nd}f}"


out = []
w = out.append

# ---------------------------------------------------------------------------------------------
# Density.
dens = {}  # (proxy, scheme) -> {n: row}
for r in of("density"):
    dens.setdefault((r["proxy"], r["scheme"]), {})[r["n"]] = r


def counts(p, s):
    return sorted(n for n in dens.get((p, s), {}) if n > 0)


# Per connection figures divide by the connections that were open when sampled ("opened"), which
# can fall short of the count asked for (nginx's worker at 9,500).
def rss_slope(p, s):
    ns = counts(p, s)
    if len(ns) < 2:
        return None
    d = dens[(p, s)]
    a, b = d[ns[0]], d[ns[-1]]
    return (b["at"]["rss_kb"] - a["at"]["rss_kb"]) * 1024 / (b["opened"] - a["opened"])


def kernel_per_conn(p, s, n):
    r = dens[(p, s)][n]
    slab = (r["at"]["slab_kb"] - r["before"]["slab_kb"]) * 1024 / r["opened"]
    pages = (r["at"]["tcp_mem_pages"] - r["before"]["tcp_mem_pages"]) * 4096 / r["opened"]
    return slab, pages


def kernel_slope(p, s):
    ns = counts(p, s)
    if len(ns) < 2:
        return None
    d = dens[(p, s)]
    a, b = d[ns[0]], d[ns[-1]]
    da = a["at"]["slab_kb"] - a["before"]["slab_kb"]
    db = b["at"]["slab_kb"] - b["before"]["slab_kb"]
    return (db - da) * 1024 / (b["opened"] - a["opened"])


# ---------------------------------------------------------------------------------------------
# Throughput, latency, handshakes: medians over rounds.
def flood(t, size):
    rs = [r["result"] for r in of("throughput") if r["target"] == t and r["result"]
          and r["result"].get("size") == size]
    if not rs:
        return None
    cpu = [r["cpu_secs"].get("proxy") / r["msgs"] * 1e6 for r in rs
           if r.get("msgs") and "proxy" in r.get("cpu_secs", {})]
    busy = [r["cpu_secs"].get("proxy") / r["secs"] for r in rs
            if r.get("secs") and "proxy" in r.get("cpu_secs", {})]
    rates = [r["msgs_per_sec"] for r in rs]
    return {"rate": med(rates), "min": min(rates), "max": max(rates), "cpu": med(cpu),
            "busy": med(busy), "n": len(rs),
            "lost": sum(sum(r.get("lost_conns", {}).values()) for r in rs),
            "failed": sum(sum(r.get("failures", {}).values()) for r in rs)}


# A latency run in which the load generator itself fell behind its sending schedule (p99 of its
# lateness above this) measured the machine's scheduling more than the target: the medians use
# only the rounds without that, when there are any.
LATE_US = 1000


def latency(t):
    every = [r["result"] for r in of("latency") if r["target"] == t and r["result"]]
    if not every:
        return None
    calm = [r for r in every if r.get("send_late_p99_us", 0) <= LATE_US]
    rs = calm or every
    out = {k: med([r[k] for r in rs]) for k in
           ["p50_us", "p90_us", "p99_us", "p999_us", "max_us", "sent_per_sec", "send_late_p99_us"]}
    out["cpu"] = med([r["cpu_secs"]["proxy"] / r["received"] * 1e6 for r in rs
                      if r.get("received") and "proxy" in r.get("cpu_secs", {})])
    out["missing"] = sum(r.get("missing", 0) for r in rs)
    out["lost"] = sum(sum(r.get("lost_conns", {}).values()) for r in rs)
    out["failed"] = sum(sum(r.get("failures", {}).values()) for r in rs)
    out["n"] = len(rs)
    out["all"] = len(every)
    out["all_p99"] = [(r["p99_us"], r.get("send_late_p99_us", 0) > LATE_US) for r in every]
    return out


def handshakes(t, scheme):
    rs = [r["result"] for r in of("handshakes") if r["target"] == t and r["scheme"] == scheme
          and r["result"]]
    if not rs:
        return None
    rates = [r["upgrades_per_sec"] for r in rs]
    return {"rate": med(rates), "min": min(rates), "max": max(rates),
            "cpu_us": med([r["cpu_secs"]["proxy"] / r["upgrades"] * 1e6 for r in rs
                           if r.get("upgrades") and "proxy" in r.get("cpu_secs", {})]),
            "failed": sum(sum(r.get("failures", {}).values()) for r in rs),
            "unclean": sum(sum(r.get("unclean_closes", {}).values()) for r in rs),
            "n": len(rs)}


SIZES = [int(s) for s in META["SIZES"].split()]
FL = {(t, s): flood(t, s) for t in MSG_TARGETS for s in SIZES}
LAT = {t: latency(t) for t in MSG_TARGETS}
HS = {(t, s): handshakes(t, s) for t in HS_TARGETS for s in ["ws", "wss"]}
HAVE_DENS = bool(dens)
HAVE_FL = any(FL.values())
HAVE_LAT = any(LAT.values())
HAVE_HS = any(HS.values())


def get(d, *k):
    for x in k:
        if d is None:
            return None
        d = d.get(x) if isinstance(d, dict) else None
    return d


def size_name(s):
    return f"{s // 1024} KiB" if s % 1024 == 0 else f"{s} B"


# ---------------------------------------------------------------------------------------------
# Plots.
plots = []
try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9})

    def save(fig, name):
        fig.tight_layout()
        fig.savefig(os.path.join(OUT, name), dpi=90)
        plt.close(fig)
        plots.append(name)

    if HAVE_DENS:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
        for ax, s in zip(axes, ["ws", "wss"]):
            for p in PROXIES:
                d = dens.get((p, s))
                if not d:
                    continue
                ns = sorted(d)
                ax.plot([d[n].get("opened", 0) for n in ns], [d[n]["at"]["rss_kb"] / 1024 for n in ns],
                        "o-", color=COLOR[p],
                        label=NAME[p])
            ax.set_title(f"{s}: proxy RSS with N idle proxied connections")
            ax.set_xlabel("connections")
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("RSS, MiB")
        axes[0].legend()
        save(fig, "memory.png")

    if HAVE_FL:
        fig, axes = plt.subplots(2, len(SIZES), figsize=(9, 5.4))
        for i, s in enumerate(SIZES):
            ts = [t for t in MSG_TARGETS if FL[(t, s)]]
            ax = axes[0][i]
            v = [FL[(t, s)]["rate"] / 1000 for t in ts]
            lo = [v[j] - FL[(t, s)]["min"] / 1000 for j, t in enumerate(ts)]
            hi = [FL[(t, s)]["max"] / 1000 - v[j] for j, t in enumerate(ts)]
            ax.bar(range(len(ts)), v, yerr=[lo, hi], color=[COLOR[t] for t in ts], capsize=3)
            ax.set_xticks(range(len(ts)), [NAME[t].replace(", ", "\n") for t in ts])
            ax.set_title(f"flood, {size_name(s)}: thousand round trips/s")
            ax.grid(axis="y", alpha=0.3)
            ax = axes[1][i]
            ts2 = [t for t in ts if t != "direct"]
            ax.bar(range(len(ts2)), [FL[(t, s)]["cpu"] or 0 for t in ts2],
                   color=[COLOR[t] for t in ts2])
            ax.set_xticks(range(len(ts2)), [NAME[t].replace(", ", "\n") for t in ts2])
            ax.set_title(f"flood, {size_name(s)}: proxy CPU s per 1M round trips")
            ax.grid(axis="y", alpha=0.3)
        save(fig, "throughput.png")

    if HAVE_LAT:
        fig, ax = plt.subplots(figsize=(9, 3.6))
        ts = [t for t in MSG_TARGETS if LAT[t]]
        keys = [("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9")]
        width = 0.8 / len(ts)
        for j, t in enumerate(ts):
            ax.bar([i + j * width for i in range(len(keys))], [LAT[t][k] / 1000 for k, _ in keys],
                   width, color=COLOR[t], label=NAME[t])
        ax.set_xticks([i + width * (len(ts) - 1) / 2 for i in range(len(keys))],
                      [lbl for _, lbl in keys])
        ax.set_yscale("log")
        ax.set_ylabel("round trip, ms (log)")
        ax.set_title(f"latency at {int(META['LAT_RATE']):,} round trips/s over "
                     f"{int(META['LAT_CONNS']):,} connections, {META['LAT_SIZE']} B")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
        save(fig, "latency.png")

    if HAVE_HS:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
        for ax, s in zip(axes, ["ws", "wss"]):
            ts = [t for t in HS_TARGETS if HS[(t, s)]]
            ax.bar(range(len(ts)), [HS[(t, s)]["rate"] for t in ts], color=[COLOR[t] for t in ts])
            ax.set_xticks(range(len(ts)), [NAME[t] for t in ts])
            ax.set_title(f"{s}: upgrades/s ({META['HS_CONC']} at a time)")
            ax.grid(axis="y", alpha=0.3)
        save(fig, "handshakes.png")
    PLOT_NOTE = ""
except ImportError:
    PLOT_NOTE = "matplotlib was not available: no plots."

# ---------------------------------------------------------------------------------------------
# Header.
quick = META["QUICK"] == "1"
secs = float(META["T_END"]) - float(META["T_START"])
w(f"# wsgate against nginx and HAProxy{' (quick run: indicative only)' if quick else ''}")
w("")
w(f"- Date: {META['DATE']} (local time); command: `{META['CMDLINE']}`")
w(f"- Machine: {META['NPROC']} CPUs, {META['CPU_MODEL']}; {int(META['MEM_TOTAL_KB']) // 1024:,} MiB; "
  f"{META['KERNEL']}; Debian {META['DEBIAN']}; open-files limit {META['NOFILE']}")
w(f"- Load average (1/5/15 min) before: {META['LOAD_BEFORE']}, after: {META['LOAD_AFTER']} "
  "(the machine is shared with other work; the load generator, the proxies and the echo backend "
  "all share its cores)")
dirty = f" (uncommitted changes: {META['DIRTY'].strip()})" if META["DIRTY"].strip() else ""
w(f"- wsgate: {META['WSGATE_V']} at commit {META['COMMIT']}{dirty}; rustls {META['RUSTLS_V']} (ring); "
  f"{META['RUSTC']}; release build")
w(f"- Peers: {META['NGINX_V']}; {META['HAPROXY_V']}; both from Debian, on {META['OPENSSL_V']}")
phases = {r["phase"]: r for r in of("phase")}
w(f"- Wall time of the measurements: {secs:.0f} s ("
  + ", ".join(f"{p} {r['secs']:.0f} s" for p, r in phases.items()) + ")")
w(f"- Load average after each part: "
  + "; ".join(f"{p} {r['load']}" for p, r in phases.items()))
w("")
w("Setup: one echo backend (bench/loadgen `echo`) behind every proxy; 'direct' is the load "
  "generator against that backend (the ceiling). nginx runs one worker, HAProxy one thread, wsgate "
  "is one thread. All three limit the open connections per client, keyed on `X-IBM-Client-Id`, "
  f"with the limit raised out of reach ({int(META['HIGH']):,}), and refuse a client without the "
  "header (401); TLS (wss) is terminated by the proxy with the same self-signed ECDSA P-256 "
  "certificate, and the proxy talks plain ws to the backend. The wsgate row is the seed API with "
  "its count limit and both message rate limits in force, their values raised out of reach "
  "(every message is still counted); 'wsgate, no limits' is the keyless API of bench/conf. "
  "Configs: bench/peers/nginx.conf.tmpl, bench/peers/haproxy.cfg.tmpl; wsgate's are generated "
  "by bench/run.sh. Clients send `X-IBM-Client-Id` and, for wss, make a full TLS handshake per "
  "connection (no resumption; certificate accepted, signatures verified).")
w("")

# ---------------------------------------------------------------------------------------------
# Headline.
w("## Headline")
w("")
w("Medians over rounds; ratios are wsgate's figure over the peer's.")
w("")
w("| | direct | wsgate | nginx | HAProxy | wsgate / nginx | wsgate / HAProxy |")
w("|---|---:|---:|---:|---:|---:|---:|")


def hrow(label, vals, fmt, direct=None):
    cells = [fmt(direct) if direct is not None else ""] + [fmt(vals.get(p)) for p in PROXIES]
    rs = [ratio(vals.get("wsgate"), vals.get(p)) for p in PEERS]
    w(f"| {label} | " + " | ".join(cells) + " | " + " | ".join(rs) + " |")


if HAVE_DENS:
    for s in ["ws", "wss"]:
        hrow(f"idle {s} connection: proxy RSS, B per connection",
             {p: rss_slope(p, s) for p in PROXIES}, n0)
    for s in ["ws", "wss"]:
        top = {p: (counts(p, s) or [None])[-1] for p in PROXIES}
        hrow(f"idle {s} connection: kernel slab, B per proxied connection (4 sockets), at the "
             f"largest N", {p: kernel_per_conn(p, s, top[p])[0] for p in PROXIES if top[p]}, n0)
if HAVE_FL:
    for s in SIZES:
        hrow(f"flood {size_name(s)}: round trips/s", {p: get(FL[(p, s)], "rate") for p in PROXIES},
             n0, get(FL[("direct", s)], "rate"))
    for s in SIZES:
        hrow(f"flood {size_name(s)}: proxy CPU s per 1M round trips",
             {p: get(FL[(p, s)], "cpu") for p in PROXIES}, lambda x: n0(x, 2))
if HAVE_LAT:
    for k, lbl in [("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9")]:
        hrow(f"latency {lbl}, ms", {p: get(LAT[p], k) for p in PROXIES}, ms, get(LAT["direct"], k))
if HAVE_HS:
    for s in ["ws", "wss"]:
        hrow(f"{s} upgrades/s", {p: get(HS[(p, s)], "rate") for p in PROXIES}, n0,
             get(HS[("direct", s)], "rate"))
sizes = {"wsgate": int(META["WSGATE_STRIPPED"]), "nginx": int(META["NGINX_SIZE"]),
         "haproxy": int(META["HAPROXY_SIZE"])}
hrow("binary, stripped, bytes", sizes, n0)
libsum = {p: sum(int(x.rsplit(":", 1)[1]) for x in META[k].split())
          for p, k in [("wsgate", "WSGATE_LIBS"), ("nginx", "NGINX_LIBS"), ("haproxy", "HAPROXY_LIBS")]}
hrow("binary + shared libraries beyond the C runtime, bytes",
     {p: sizes[p] + libsum[p] for p in PROXIES}, n0)
w("")
for p in plots:
    w(f"![{p[:-4]}]({p})")
    w("")
if PLOT_NOTE:
    w(PLOT_NOTE)
    w("")

# ---------------------------------------------------------------------------------------------
# Targets.
w("## Targets")
w("")
w("The issue's targets (goals, not test assertions), with how far each is from being met.")
w("")
if HAVE_DENS:
    for s in ["ws", "wss"]:
        g, n = rss_slope("wsgate", s), rss_slope("nginx", s)
        if g is not None and n:
            r = g / n
            ok = r <= 0.1
            how = (f"met: {r:.3f} of nginx's ({n0(g)} B against {n0(n)} B; the target allows "
                   f"{n0(n / 10)} B)") if ok else \
                  (f"missed: {r:.3f} of nginx's ({n0(g)} B against {n0(n)} B); the target allows "
                   f"{n0(n / 10)} B, so wsgate is {g / (n / 10):.1f} times over it, by {n0(g - n / 10)} B")
            w(f"- Idle proxied {s} connection, wsgate's RSS at most 1/10 of nginx's: {how}.")
if HAVE_FL:
    for s in SIZES:
        g = get(FL[("wsgate", s)], "rate")
        for p in PEERS:
            v = get(FL[(p, s)], "rate")
            if g is None or not v:
                continue
            r = g / v
            how = f"met, {r:.2f} times" if r >= 1 else f"missed by {(1 - r) * 100:.0f}% ({r:.2f} times)"
            w(f"- Flood {size_name(s)}, wsgate with the limits on at least {NAME[p]}'s round trips/s: "
              f"{how} ({n0(g)} against {n0(v)}).")
if HAVE_LAT and LAT["direct"]:
    d99 = LAT["direct"]["p99_us"]
    g, h = get(LAT["wsgate"], "p99_us"), get(LAT["haproxy"], "p99_us")
    if g is not None and h is not None:
        ga, ha = g - d99, h - d99
        how = "met" if ga <= ha else f"missed by {ms(ga - ha)} ms ({ga / ha:.2f} times HAProxy's)" \
            if ha > 0 else "missed"
        w(f"- Added p99 latency (over direct's {ms(d99)} ms) at most HAProxy's: {how}; wsgate adds "
          f"{ms(ga)} ms, HAProxy {ms(ha)} ms.")
w(f"- Binary size (no target, reported): wsgate {n0(sizes['wsgate'])} bytes stripped "
  f"({n0(int(META['WSGATE_SIZE']))} as built), nginx {n0(sizes['nginx'])}, HAProxy "
  f"{n0(sizes['haproxy'])}; see the binaries section for the shared libraries each loads.")
w("")

# ---------------------------------------------------------------------------------------------
# 1. Density.
if HAVE_DENS:
    w("## 1. Density: idle proxied connections")
    w("")
    w(f"For each scheme and proxy a freshly started proxy; for each N (smallest first, same "
      f"process), `hold` processes (at most {int(META['PER_PROC']):,} connections each, own source "
      "addresses, about 100 connects in flight in all) open N WebSockets through it and keep them "
      "idle; 0.5 s after all are upgraded the proxy's RSS and the kernel's figures are read; then "
      "the holders close them (close handshake). RSS is the process that relays (nginx's worker; "
      "its master is listed apart). The slope is the RSS difference between the smallest and the "
      "largest N divided by the difference in connections, so fixed costs drop out.")
    w("")
    w("| | " + " | ".join(f"{NAME[p]} {s}" for s in ["ws", "wss"] for p in PROXIES) + " |")
    w("|---|" + "---:|" * 6)
    w("| proxy RSS slope, B per connection | "
      + " | ".join(n0(rss_slope(p, s)) for s in ["ws", "wss"] for p in PROXIES) + " |")
    w("| wsgate / this | "
      + " | ".join(ratio(rss_slope("wsgate", s), rss_slope(p, s), 3) for s in ["ws", "wss"]
                   for p in PROXIES) + " |")
    w("| kernel slab slope, B per connection | "
      + " | ".join(n0(kernel_slope(p, s)) for s in ["ws", "wss"] for p in PROXIES) + " |")
    w("")
    w("By count. Kernel figures are machine-wide deltas from just before the holders started, per "
      "proxied connection, which is four sockets here (the client's, the proxy's two, the "
      "backend's): slab from /proc/meminfo, TCP buffer pages from /proc/net/sockstat.")
    w("")
    w("| proxy | scheme | N | opened | ready in s | RSS MiB | RSS over start, B/conn | "
      "slab Δ, B/conn | TCP pages Δ, B/conn | TCP sockets Δ | other RSS MiB |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in ["ws", "wss"]:
        for p in PROXIES:
            d = dens.get((p, s), {})
            for n in sorted(d):
                r = d[n]
                other = f"{r['extra_rss_kb'] / 1024:.1f}" if r.get("extra_rss_kb") else ""
                if n == 0:
                    w(f"| {NAME[p]} | {s} | 0 | | | {r['at']['rss_kb'] / 1024:.1f} | | | | | {other} |")
                    continue
                slab, pages = kernel_per_conn(p, s, n)
                over = (r["at"]["rss_kb"] - d[0]["at"]["rss_kb"]) * 1024 / r["opened"] if 0 in d else None
                w(f"| {NAME[p]} | {s} | {n:,} | {r['opened']:,} | {r['ready_secs']} | "
                  f"{r['at']['rss_kb'] / 1024:.1f} | {n0(over)} | {n0(slab)} | {n0(pages)} | "
                  f"{r['at']['tcp_inuse'] - r['before']['tcp_inuse']:,} | {other} |")
    w("")
    w("Other RSS: nginx's master process. The holders' RSS (the load generator) and the echo "
      "backend's are in raw.jsonl.")
    w("")

# ---------------------------------------------------------------------------------------------
# 2. Throughput.
if HAVE_FL:
    w("## 2. Throughput: flood")
    w("")
    w(f"{META['FLOOD_CONNS']} connections each keep {META['WINDOW']} messages in flight and send a "
      f"new one per echo; {META['SECS']} s measured after {META['WARMUP']} s of warm-up, "
      f"{META['ROUNDS']} round(s), the order of the targets rotated each round; medians (and the "
      "range) over rounds. A round trip is one message to the backend and its echo back, so a "
      "proxy relays two messages per round trip. Proxy CPU is user+system time of the relaying "
      "process in the measured window (/proc/PID/stat, 10 ms ticks).")
    w("")
    for s in SIZES:
        w(f"### {size_name(s)} messages")
        w("")
        w("| target | round trips/s | range | of direct | proxy CPU s per 1M | proxy cores busy | "
          "wsgate / this, round trips/s | wsgate / this, CPU per 1M |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|")
        g = FL[("wsgate", s)]
        for t in MSG_TARGETS:
            f = FL[(t, s)]
            if not f:
                continue
            lost = f" (lost connections: {f['lost']})" if f["lost"] else ""
            w(f"| {NAME[t]}{lost} | {n0(f['rate'])} | {n0(f['min'])}–{n0(f['max'])} | "
              f"{ratio(f['rate'], get(FL[('direct', s)], 'rate'))} | {n0(f['cpu'], 2)} | "
              f"{n0(f['busy'], 2)} | {'' if t == 'wsgate' else ratio(get(g, 'rate'), f['rate'])} | "
              f"{'' if t in ('wsgate', 'direct') else ratio(get(g, 'cpu'), f['cpu'])} |")
        w("")

# ---------------------------------------------------------------------------------------------
# 3. Latency.
if HAVE_LAT:
    w("## 3. Latency at a fixed rate")
    w("")
    w(f"{int(META['LAT_RATE']):,} round trips/s of {META['LAT_SIZE']} B offered over "
      f"{int(META['LAT_CONNS']):,} connections, round robin, open loop (late replies do not slow "
      f"the sender); {META['LAT_SECS']} s measured after {META['WARMUP']} s, {META['LAT_ROUNDS']} "
      "round(s), the order of the targets rotated and reversed every other round. Round trip from "
      "when a message is queued to when its echo is read (log-linear histogram, within 1.6%). "
      f"Medians over the rounds in which the load generator kept to its schedule (p99 of its own "
      f"lateness at most {LATE_US / 1000:g} ms; the others, marked * below, measured the shared "
      "machine's scheduling: every target run in such a window shows a p99 of several ms, direct "
      "included), or over all rounds when none did. Added = the target's figure minus direct's. "
      "Proxy CPU per 1M round trips compares the proxies at the same load.")
    w("")
    w("| target | rounds used | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | added p50 ms | "
      "added p99 ms | p99 of each round, ms | proxy CPU s per 1M | missing replies |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    d = LAT["direct"]
    for t in MSG_TARGETS:
        L = LAT[t]
        if not L:
            continue
        a50 = ms(L["p50_us"] - d["p50_us"]) if d and t != "direct" else ""
        a99 = ms(L["p99_us"] - d["p99_us"]) if d and t != "direct" else ""
        w(f"| {NAME[t]} | {L['n']} of {L['all']} | {ms(L['p50_us'])} | {ms(L['p90_us'])} | "
          f"{ms(L['p99_us'])} | {ms(L['p999_us'])} | {ms(L['max_us'])} | {a50} | {a99} | "
          f"{', '.join(ms(x) + ('*' if late else '') for x, late in L['all_p99'])} | "
          f"{n0(L['cpu'], 2)} | {L['missing']:,} |")
    w("")
    w("wsgate over each peer:")
    w("")
    w("| | p50 | p99 | p99.9 | added p99 | proxy CPU per 1M |")
    w("|---|---:|---:|---:|---:|---:|")
    g = LAT["wsgate"]
    for p in PEERS + ["wsgate-off"]:
        L = LAT[p]
        if not (g and L):
            continue
        add = ratio(g["p99_us"] - d["p99_us"], L["p99_us"] - d["p99_us"]) if d else "–"
        w(f"| wsgate / {NAME[p]} | {ratio(g['p50_us'], L['p50_us'])} | "
          f"{ratio(g['p99_us'], L['p99_us'])} | {ratio(g['p999_us'], L['p999_us'])} | {add} | "
          f"{ratio(g['cpu'], L['cpu'])} |")
    w("")
    lates = [(t, LAT[t]["send_late_p99_us"]) for t in MSG_TARGETS if LAT[t]]
    w("How late the sender itself was, p99, median over the rounds used (shown, not counted as "
      "latency): " + ", ".join(f"{NAME[t]} {ms(x)} ms" for t, x in lates) + ".")
    w("")

# ---------------------------------------------------------------------------------------------
# 4. Handshakes.
if HAVE_HS:
    w("## 4. Handshake rate")
    w("")
    w(f"{META['HS_CONC']} connections at a time, each opened, upgraded (through the proxy to the "
      f"backend) and closed with a close handshake, as fast as they go; {META['HS_SECS']} s "
      f"measured after {META['HS_WARMUP']} s, {META['HS_ROUNDS']} round(s), fresh source addresses per run. wss: a "
      "full TLS handshake per connection, terminated by the proxy; direct wss is the echo backend "
      "serving TLS itself.")
    w("")
    w("| target | ws upgrades/s | range | proxy CPU µs per upgrade | wss upgrades/s | range | "
      "proxy CPU µs per upgrade | failures | unclean closes |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for t in HS_TARGETS:
        a, b = HS[(t, "ws")], HS[(t, "wss")]
        cells = []
        for x in (a, b):
            cells += [n0(get(x, "rate")), f"{n0(get(x, 'min'))}–{n0(get(x, 'max'))}" if x else "–",
                      n0(get(x, "cpu_us"))]
        fails = sum(x["failed"] for x in (a, b) if x)
        unclean = sum(x["unclean"] for x in (a, b) if x)
        w(f"| {NAME[t]} | " + " | ".join(cells) + f" | {fails} | {unclean} |")
    w("")
    w("| | ws upgrades/s | ws CPU per upgrade | wss upgrades/s | wss CPU per upgrade |")
    w("|---|---:|---:|---:|---:|")
    for p in PEERS:
        w(f"| wsgate / {NAME[p]} | "
          + " | ".join(f"{ratio(get(HS[('wsgate', s)], 'rate'), get(HS[(p, s)], 'rate'))} | "
                       f"{ratio(get(HS[('wsgate', s)], 'cpu_us'), get(HS[(p, s)], 'cpu_us'))}"
                       for s in ["ws", "wss"]) + " |")
    w("")

# ---------------------------------------------------------------------------------------------
# 5. Limits on against off.
if HAVE_FL or HAVE_LAT:
    w("## 5. wsgate with the limits on against without")
    w("")
    w("The same runs as above: wsgate with the seed's count limit and both message rate limits in "
      "force (values out of reach) over wsgate with the keyless API and no limits. Above 1 means "
      "the limits cost that much more (CPU, latency) or carried that much more (round trips/s).")
    w("")
    w("| | on / off |")
    w("|---|---:|")
    for s in SIZES:
        on, off = FL[("wsgate", s)], FL[("wsgate-off", s)]
        if on and off:
            w(f"| flood {size_name(s)}: round trips/s | {ratio(on['rate'], off['rate'])} |")
            w(f"| flood {size_name(s)}: CPU per 1M round trips | {ratio(on['cpu'], off['cpu'])} |")
    on, off = LAT["wsgate"], LAT["wsgate-off"]
    if on and off:
        for k, lbl in [("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9")]:
            w(f"| fixed rate: {lbl} | {ratio(on[k], off[k])} |")
        w(f"| fixed rate: CPU per 1M round trips | {ratio(on['cpu'], off['cpu'])} |")
    w("")

# ---------------------------------------------------------------------------------------------
# Binaries.
w("## Binaries")
w("")


def libs(s):
    items = [x.rsplit(":", 1) for x in s.split()]
    total = sum(int(b) for _, b in items)
    return total, ", ".join(f"{n} ({int(b):,})" for n, b in items) or "none"


w("| | file | bytes | shared libraries beyond the C runtime, bytes | which |")
w("|---|---|---:|---:|---|")
t, l = libs(META["WSGATE_LIBS"])
w(f"| wsgate, release as built | target/release/wsgate | {n0(int(META['WSGATE_SIZE']))} | {n0(t)} | {l} |")
w(f"| wsgate, stripped (`strip -o`) | | {n0(int(META['WSGATE_STRIPPED']))} | | |")
t, l = libs(META["NGINX_LIBS"])
w(f"| nginx ({META['NGINX_FILE']}) | {META['NGINX_BIN']} | {n0(int(META['NGINX_SIZE']))} | {n0(t)} | {l} |")
t, l = libs(META["HAPROXY_LIBS"])
w(f"| HAProxy ({META['HAPROXY_FILE']}) | {META['HAPROXY_BIN']} | {n0(int(META['HAPROXY_SIZE']))} | {n0(t)} | {l} |")
w("")
w("wsgate links rustls and ring statically; nginx and HAProxy load OpenSSL and others as shared "
  "libraries, listed here with their sizes (the C runtime, libc, libm and libgcc_s, left out).")
w("")

# ---------------------------------------------------------------------------------------------
# Checks.
w("## Checks")
w("")
w("Before measuring, each proxy was started with its count limit at 2 (the seed product's own "
  "value): one client's three connections, and one connection without `X-IBM-Client-Id`.")
w("")
w("| proxy | scheme | of 3 with the limit at 2 | without the client id |")
w("|---|---|---|---|")
ok_all = True
for r in of("check"):
    three, noid = r["limit2_three"], r["no_id"]
    ok = bool(three and noid and three["opened"] == 2 and three["failures"] == {"status 429": 1}
              and noid["opened"] == 0 and noid["failures"] == {"status 401": 1})
    ok_all &= ok
    def refused(f):
        return ", ".join(f"{k} ({v})" for k, v in f.items()) or "none"

    f3 = f"{three['opened']} opened; refused: {refused(three['failures'])}" if three else "no result"
    fn = f"refused: {refused(noid['failures'])}" if noid else "no result"
    w(f"| {NAME[r['proxy']]} | {r['scheme']} | {f3} | {fn} |")
w("")
for r in of("check_messages"):
    seed, on = r["seed"], r["on"]
    w(f"wsgate's message limits: one connection flooding the seed product unchanged (3 messages a "
      f"minute) got {get(seed, 'msgs')} round trips in 1 s and was closed "
      f"({', '.join(get(seed, 'lost_conns') or {}) or 'not closed'}); against the raised limits "
      f"{n0(get(on, 'msgs'))} round trips "
      f"({', '.join(get(on, 'lost_conns') or {}) or 'not closed'}). So the wsgate row counts every "
      "message.")
    ok_all &= bool(seed and on and seed["msgs"] == 3 and not on.get("lost_conns"))
w("")
if not ok_all:
    w("**A check did not give the expected result: read the figures above with care.**")
    w("")

# Problems seen in the runs.
probs = []
for s in SIZES:
    for t in MSG_TARGETS:
        f = FL.get((t, s))
        if f and (f["lost"] or f["failed"]):
            probs.append(f"flood {size_name(s)} {NAME[t]}: {f['failed']} failed, {f['lost']} lost")
for t in MSG_TARGETS:
    L = LAT.get(t)
    if L and (L["missing"] or L["lost"] or L["failed"]):
        probs.append(f"latency {NAME[t]}: {L['missing']} missing, {L['lost']} lost, {L['failed']} failed")
for (p, s), d in dens.items():
    for n, r in d.items():
        if n and r["opened"] != n:
            fails = {}
            for h in r["holds"]:
                for k, v in h.get("failures", {}).items():
                    fails[k] = fails.get(k, 0) + v
            why = ", ".join(f"{k} {v}" for k, v in fails.items())
            probs.append(f"density {NAME[p]} {s} {n:,}: {r['opened']:,} opened ({why}); its "
                         "per-connection figures use the connections it held")
for (t, s), h in HS.items():
    if h and (h["failed"] or h["unclean"]):
        probs.append(f"handshakes {NAME[t]} {s}: {h['failed']} failed, {h['unclean']} unclean closes")
missing = [k for k, v in [("density", HAVE_DENS), ("throughput", HAVE_FL), ("latency", HAVE_LAT),
                          ("handshakes", HAVE_HS)] if not v]
if missing:
    probs.append("not run: " + ", ".join(missing))
w("Problems seen: " + ("; ".join(probs) if probs else "none (every connection opened, no "
                       "connection lost, no reply missing, no handshake failed)") + ".")
w("")

# ---------------------------------------------------------------------------------------------
w("## How to read it")
w("")
w("Everything runs on the same cores: under a flood the round trips/s are set by whichever "
  "process runs out of CPU first (the proxy, the echo backend or the load generator), so compare "
  "them together with the proxy's CPU per round trip, and with the fixed-rate CPU figure where "
  "every proxy carries the same load. The kernel figures are machine-wide; other work on the "
  "machine shows up in them, so read them as an order of magnitude. RSS includes each proxy's "
  "allocator overhead. A quick run is indicative only. Raw results: raw.jsonl (one JSON line per "
  "measurement); run metadata: meta.json.")

open(os.path.join(OUT, "report.md"), "w").write("\n".join(out) + "\n")
print(f"wrote {os.path.join(OUT, 'report.md')} and {len(plots)} plots", file=sys.stderr)
