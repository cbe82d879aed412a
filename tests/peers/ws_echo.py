"""Echo server on Python `websockets`, an independent backend peer for wsgate tests.

Prints the bound port alone on the first stdout line, then one JSON line per event
(connect with path and headers, close with code and reason) so a test can check what the
gateway forwarded. Exits on SIGTERM or SIGINT.
"""

import argparse
import asyncio
import json
import signal
import sys

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def echo(ws):
    req = ws.request
    emit({"event": "connect", "path": req.path, "headers": [[k, v] for k, v in req.headers.raw_items()]})
    count = 0
    try:
        async for message in ws:
            await ws.send(message)
            count += 1
    except ConnectionClosed:
        pass
    emit({"event": "close", "path": req.path, "echoed": count, "code": ws.close_code, "reason": ws.close_reason})


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()

    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))

    # No size limit and no keepalive pings: the backend must not add traffic or limits of its own
    # that a test would then attribute to the gateway.
    async with serve(echo, args.host, args.port, max_size=None, ping_interval=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        sys.stdout.write("%d\n" % port)
        sys.stdout.flush()
        await stop


if __name__ == "__main__":
    asyncio.run(main())
