"""One-shot client on Python `websockets`, an independent client peer for wsgate tests.

Connects to URL with the given headers, sends messages of the given sizes (alternating text and
binary unless --kind says otherwise), checks that each one comes back unchanged, closes with the
given code and reason, and prints a JSON summary on stdout. Exit status: 0 all echoed and the
close handshake completed, 1 a mismatch or a protocol failure, 2 the connection was refused
(for example an HTTP status instead of 101; the summary then holds "status").
"""

import argparse
import json
import sys

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect


def payload(i, size, kind):
    if kind == "text":
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
        start = i % len(alphabet)
        s = (alphabet[start:] + alphabet[:start]) * (size // len(alphabet) + 1)
        return s[:size]
    return bytes((i * 31 + j) % 256 for j in range(size)) if size < 4096 else (bytes(range(256)) * (size // 256 + 1))[:size]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("-H", "--header", action="append", default=[], help="'Name: value', repeatable")
    ap.add_argument("--sizes", default="0,1,125,126,65535,65536,1000000",
                    help="comma separated message sizes in bytes")
    ap.add_argument("--repeat", type=int, default=1, help="send the list of sizes this many times")
    ap.add_argument("--kind", choices=["mixed", "text", "binary"], default="mixed")
    ap.add_argument("--pipeline", action="store_true", help="send everything before reading the echoes")
    ap.add_argument("--compression", choices=["none", "deflate"], default="none")
    ap.add_argument("--close-code", type=int, default=1000)
    ap.add_argument("--close-reason", default="done")
    ap.add_argument("--timeout", type=float, default=20.0, help="deadline guard for each step")
    args = ap.parse_args()

    headers = []
    for h in args.header:
        name, _, value = h.partition(":")
        headers.append((name.strip(), value.strip()))
    sizes = [int(s) for s in args.sizes.split(",") if s != ""] * args.repeat

    summary = {"url": args.url, "sent": 0, "echoed": 0, "mismatches": []}
    try:
        conn = connect(args.url, additional_headers=headers, max_size=None, proxy=None,
                     compression=None if args.compression == "none" else "deflate",
                     open_timeout=args.timeout, close_timeout=args.timeout, ping_interval=None)
    except InvalidStatus as e:
        summary["status"] = e.response.status_code
        summary["body"] = e.response.body.decode("utf-8", "replace") if e.response.body else ""
        print(json.dumps(summary))
        return 2
    except (OSError, TimeoutError) as e:
        summary["error"] = repr(e)
        print(json.dumps(summary))
        return 2

    with conn as ws:
        summary["response_headers"] = [[k, v] for k, v in ws.response.headers.raw_items()]
        summary["extensions"] = [type(e).__name__ for e in ws.protocol.extensions]

        def kind_of(i):
            if args.kind == "mixed":
                return "text" if i % 2 == 0 else "binary"
            return args.kind

        expected = [payload(i, size, kind_of(i)) for i, size in enumerate(sizes)]
        try:
            if args.pipeline:
                for m in expected:
                    ws.send(m)
                    summary["sent"] += 1
            for i, m in enumerate(expected):
                if not args.pipeline:
                    ws.send(m)
                    summary["sent"] += 1
                got = ws.recv(timeout=args.timeout)
                if got != m:
                    summary["mismatches"].append({"index": i, "size": len(m), "got_size": len(got),
                                                  "got_type": type(got).__name__})
                else:
                    summary["echoed"] += 1
            ws.close(args.close_code, args.close_reason)
        except (ConnectionClosed, TimeoutError) as e:
            summary["error"] = repr(e)
        summary["close_code"] = ws.close_code
        summary["close_reason"] = ws.close_reason

    ok = (not summary["mismatches"] and "error" not in summary and summary["echoed"] == len(expected)
          and summary["close_code"] == args.close_code)
    summary["ok"] = ok
    print(json.dumps(summary))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
