"""HTTP/1.1 echo server on Python's http.server, an independent backend peer for wsgate's invoke
tests.

Prints the bound port alone on the first stdout line, then one JSON line per request it
answered, with what it received: method, path, query, headers (in order, names as sent), the
body (decoded from chunked encoding when the request was chunked) and, for a chunked request,
the raw bytes of the chunked body as they came. Every answer has the same JSON as its body
(with Content-Length), except for HEAD (head only) and the statuses below.

A path segment `status-NNN` makes the answer that status: 204 and 304 come without a body. A
query parameter `keep-location` becomes the answer's `Location` header (for redirects; `self`
names the request's own target). The
JSON says which client port the request came from (`peer`), so a test can tell whether
requests shared a connection; a path segment `drop-after` closes the connection after the
answer without announcing it, `say-close` answers with `Connection: close`, and `drop-next` keeps the connection but
closes it without an answer when the next request comes on it.
Connections are kept alive (HTTP/1.1) unless the client asks to close. Every answer carries
`X-Backend: http_echo`, two `X-Multi` lines and `Keep-Alive: timeout=30`, so a test can see
which response headers the gateway passes on. Exits on SIGTERM or SIGINT.
"""

import argparse
import base64
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LOCK = threading.Lock()


def emit(obj):
    with LOCK:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def text(data):
    """The body as text when it is UTF-8, otherwise base64 with a marker."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(data).decode("ascii")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "http_echo"
    sys_version = ""

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        sys.stderr.write("http_echo: " + (format % args) + "\n")

    def read_chunked(self):
        """Reads a chunked body; returns (decoded, raw)."""
        raw = bytearray()
        body = bytearray()
        while True:
            line = self.rfile.readline(65537)
            raw += line
            size = int(line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                break
            chunk = self.rfile.read(size + 2)
            raw += chunk
            body += chunk[:size]
        # Trailer lines up to the empty line.
        while True:
            line = self.rfile.readline(65537)
            raw += line
            if line in (b"\r\n", b"\n", b""):
                break
        return bytes(body), bytes(raw)

    def handle_any(self):
        url = urlsplit(self.path)
        if getattr(self, "drop_next", False):
            # The connection's previous request asked for this: close without answering, as a
            # backend does when its idle timeout fires just as a request arrives.
            sys.stderr.write("http_echo: dropped " + self.path + "\n")
            self.close_connection = True
            return
        te = self.headers.get("Transfer-Encoding", "")
        raw = None
        if "chunked" in te.lower():
            body, raw = self.read_chunked()
        else:
            n = int(self.headers.get("Content-Length", "0") or "0")
            body = self.rfile.read(n) if n > 0 else b""
        seen = {
            "method": self.command,
            "target": self.path,
            "path": url.path,
            "query": url.query,
            "version": self.request_version,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body": text(body),
            "peer": self.client_address[1],
        }
        if raw is not None:
            seen["raw_body"] = text(raw)
        emit(seen)

        status = 200
        for segment in url.path.split("/"):
            if segment.startswith("status-") and segment[7:].isdigit():
                status = int(segment[7:])
        payload = json.dumps(seen).encode("utf-8")
        self.send_response(status)
        self.send_header("X-Backend", "http_echo")
        self.send_header("X-Multi", "one")
        self.send_header("X-Multi", "two")
        self.send_header("Keep-Alive", "timeout=30")
        if "say-close" in url.path.split("/"):
            self.send_header("Connection", "close")
        location = parse_qs(url.query).get("keep-location")
        if location:
            # `self` redirects to this very request, for redirect loops.
            here = self.path if location[0] == "self" else location[0]
            self.send_header("Location", here)
        if status in (204, 304):
            self.end_headers()
            return
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        if "drop-next" in url.path.split("/"):
            self.drop_next = True
        if "drop-after" in url.path.split("/"):
            # Closes once answered without saying so, as a backend's idle timeout does.
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = handle_any


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sys.stdout.write("%d\n" % server.server_address[1])
    sys.stdout.flush()
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
