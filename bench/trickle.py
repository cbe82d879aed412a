#!/usr/bin/env python3
"""Clients trickling their request heads one byte per packet, for bench/floods.sh.

N clients connect, then send a head of SIZE bytes one byte at a time, round robin (TCP_NODELAY,
so each byte is its own packet unless the gateway falls behind), and read the answer. Prints one
JSON line: the gateway's CPU seconds (user + system, from /proc/PID/stat) from the first connect
to the last answer, the wall time, and the answers' status lines.

    trickle.py --addr 127.0.0.1:8080 --pid 1234 [--clients 200] [--size 16000] [--path /p/]
"""

import argparse
import json
import os
import socket
import time


def cpu_secs(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of stat(5); fields[0] here is field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def head(size, path):
    start = f"GET {path} HTTP/1.1\r\nHost: bench\r\n".encode()
    lines = []
    left = size - len(start) - 2
    i = 0
    while left > 0:
        # Header lines of about 1000 bytes, the last one cut to fit the size exactly.
        name = f"X-Pad-{i}: ".encode()
        n = min(1000, left)
        if n < len(name) + 3:
            lines[-1] = lines[-1][:-2] + b"a" * n + b"\r\n"
            break
        lines.append(name + b"a" * (n - len(name) - 2) + b"\r\n")
        left -= n
        i += 1
    out = start + b"".join(lines) + b"\r\n"
    assert len(out) == size, (len(out), size)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--size", type=int, default=16000)
    ap.add_argument("--path", default="/")
    ap.add_argument("--label", default="")
    o = ap.parse_args()
    host, port = o.addr.rsplit(":", 1)
    data = head(o.size, o.path)
    cpu0, t0 = cpu_secs(o.pid), time.monotonic()
    socks = []
    for _ in range(o.clients):
        s = socket.create_connection((host, int(port)))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        socks.append(s)
    for i in range(len(data)):
        b = data[i : i + 1]
        for s in socks:
            s.sendall(b)
    answers = {}
    for s in socks:
        s.settimeout(120)
        got = b""
        while b"\r\n" not in got:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        line = got.split(b"\r\n", 1)[0].decode(errors="replace") or "(closed)"
        answers[line] = answers.get(line, 0) + 1
        s.close()
    cpu1, t1 = cpu_secs(o.pid), time.monotonic()
    print(json.dumps({
        "mode": "trickle",
        "label": o.label,
        "clients": o.clients,
        "head_bytes": o.size,
        "secs": round(t1 - t0, 3),
        "gateway_cpu_secs": round(cpu1 - cpu0, 2),
        "answers": answers,
    }))


if __name__ == "__main__":
    main()
