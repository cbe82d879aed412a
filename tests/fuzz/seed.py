#!/usr/bin/env python3
"""Writes the starting corpus of each fuzz target into tests/fuzz/corpus/<target>/ from the
project's own inputs: the config fixtures and conf/, the conditions in conf/, tests/ and the
condition unit tests, real request and response heads, bodies and frames. File names are the
SHA-1 of the content, as libFuzzer names them. Run from anywhere; then fuzz and `cargo fuzz
cmin` the result."""

import hashlib
import os
import re
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")


def put(target, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def with_reads(stream, sizes=()):
    """The read-size prefix the checks expect (src/fuzz_checks/mod.rs), then the stream."""
    return bytes([len(sizes)]) + bytes(s - 1 for s in sizes) + stream


# Heads: a browser-like upgrade, the 101, plain requests and responses with each framing,
# and the refused forms (folding, bare LF, CL with TE).
UPGRADE = (b"GET /chat/room?client_id=abc&a=1 HTTP/1.1\r\nHost: example.com:8080\r\n"
           b"Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
           b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
           b"X-IBM-Client-Id: seed-client-id\r\n\r\n")
HEADS = [
    UPGRADE,
    UPGRADE + b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x05hello",
    b"POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n",
    b"POST /api/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
    b"5\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n",
    b"POST / HTTP/1.0\r\nContent-Length: 3, 3\r\n\r\nabc",
    b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET http://h:1/a/b?q=1#frag HTTP/1.1\r\n\r\n",
    b"\r\nGET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nX-A: 1\r\n\r\nhello world!",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n\r\nuntil close",
    b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
    b"HTTP/1.0 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
    b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic\r\n\r\n",
    UPGRADE.replace(b"\r\n\r\n", b"\r\nSec-WebSocket-Protocol: chat, superchat\r\n\r\n"),
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=10\r\n\r\n",
    b"HTTP/1.1 302 Found\r\nLocation: ws://other:8080/chat\r\nContent-Length: 0\r\n\r\n",
]
for h in HEADS:
    put("http_head", with_reads(h))
    put("http_head", with_reads(h, (1, 7, 20)))

# Bodies: the pick byte after the read sizes chooses None (0), until close (1), a two-byte
# length (2) or chunked (4).
CHUNKED = [
    b"0\r\n\r\n",
    b"5\r\nhello\r\n0\r\n\r\n",
    b"3;name=value\r\nabc\r\n00004 \t;q=\"a;b\"\t\r\n\r\n\r\n\r\n0;last\r\nExpires: never\r\nX-Sum:\r\n\r\n",
    b"a\r\n0\r\n\r\n0\r\n\r\n\r\n0\r\n\r\n",
    b"2\r\n\xff\x00\r\n000\r\n\r\n",
    b"ffffffffffffffff0\r\n",
    b"5\r\nhello\n",
    b"5\r\nhello\r\n0\r\n folded: x\r\n\r\n",
]
NEXT = b"GET /next HTTP/1.1\r\n\r\n"
for c in CHUNKED:
    put("http_body", with_reads(b"\x04" + c + NEXT))
    put("http_body", with_reads(b"\x04" + c, (1, 3)))
put("http_body", with_reads(b"\x02\x00\x05hello" + NEXT, (2,)))
put("http_body", with_reads(b"\x01anything at all"))
put("http_body", with_reads(b"\x00" + NEXT))


# Frames: client streams masked, server streams unmasked; the pick byte's bit 0 is the role
# (0 client), bits 1-3 the allowed RSV bits, bits 4-7 the message limit (0: none).
def frame(b0, payload, mask=None, form=None):
    n = len(payload)
    m = 0x80 if mask else 0
    if (form is None and n < 126):
        out = bytes([b0, m | n])
    elif form == "short" or (form is None and n < 65536):
        out = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        out = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if mask:
        out += bytes(mask) + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    else:
        out += payload
    return out


def stream(masked):
    keys = [(0x37, 0xfa, 0x21, 0x3d), (0, 0xff, 0x5a, 0xa5), (1, 2, 3, 4)]
    parts = [(0x01, b"Hel"), (0x89, b"p"), (0x00, b"lo "), (0x8A, b""), (0x80, b"world"),
             (0x82, b""), (0x82, bytes([7]) * 300), (0xC1, b"deflated"),
             (0x88, struct.pack(">H", 1000) + b"bye"), (0x81, b"late")]
    return b"".join(frame(b0, p, keys[i % 3] if masked else None) for i, (b0, p) in enumerate(parts))


for masked, role in ((True, 0), (False, 1)):
    key = (9, 8, 7, 6) if masked else None
    put("ws_frame", with_reads(bytes([role | 0b1000]) + stream(masked)))
    put("ws_frame", with_reads(bytes([role | 0b1000 | 0x40]) + stream(masked), (1, 2, 13)))
    put("ws_frame", with_reads(bytes([role]) + frame(0x82, b"x" * 200, key, "long")))
    put("ws_frame", with_reads(bytes([role | 0x20]) + frame(0x81, b"too big", key)))
    put("ws_frame", with_reads(bytes([role]) + frame(0x88, b"\x03\xe9going away", key), (3,)))
    put("ws_frame", with_reads(bytes([role]) + frame(0x09, b"fragmented ping", key)))
    put("ws_frame", with_reads(bytes([role]) + frame(0x88, b"", key) + frame(0x81, b"after", key)))

# Config: the gateway config first, then NUL, file name, newline, file text for each other
# file of the same directory.


def config_set(d, gateway="gateway.yaml"):
    out = open(os.path.join(d, gateway), "rb").read()
    for name in sorted(os.listdir(d)):
        if name != gateway and name.endswith(".yaml"):
            out += b"\0" + name.encode() + b"\n" + open(os.path.join(d, name), "rb").read()
    return out


put("config", config_set(os.path.join(ROOT, "conf")))
fixtures = os.path.join(ROOT, "tests", "fixtures", "config")
for name in sorted(os.listdir(fixtures)):
    put("config", config_set(os.path.join(fixtures, name)))

# Conditions: those of conf/ and tests/, and the string literals of the condition unit tests.
conditions = set()
for base in ("conf", "tests"):
    for dirpath, dirs, files in os.walk(os.path.join(ROOT, base)):
        # The fuzz crate's own corpus and build are not sources of conditions.
        dirs[:] = [d for d in dirs if os.path.join(dirpath, d) != HERE]
        for f in files:
            if f.endswith((".yaml", ".rs")):
                text = open(os.path.join(dirpath, f), encoding="utf-8", errors="replace").read()
                conditions.update(m.strip() for m in re.findall(r"condition: (.+)", text))
src = open(os.path.join(ROOT, "src", "policy", "condition.rs"), encoding="utf-8").read()
tests = src[src.index("#[cfg(test)]"):]
for lit in re.findall(r'\(\s*"((?:[^"\\]|\\.)*)"', tests):
    conditions.add(bytes(lit, "utf-8").decode("unicode_escape").encode("latin-1").decode("utf-8", "replace"))
for c in sorted(conditions):
    if c:
        put("condition", c.encode())

# JSON messages: the first byte picks the schema (low 7 bits) and the bounds (top bit: the
# small ones of src/fuzz_checks/json.rs); then the message.
MESSAGES = [
    b'{"action":"subscribe","symbol":"IBM"}',
    b'{"action":"subscribe","symbol":"ibm","extra":1}',
    b'[1,"2026-12-02T15:04:05Z",1,1.5,"x",[1,{"a":null}],{"k":[true]}]',
    b'[-5,"",9007199254740993]',
    b'{"id":3,"x-a":"123e4567-e89b-12d3-a456-426614174000","m1":"a@b.c"}',
    b'[[[[[[]]]]]]',
    b'[[[[[[0]]]]]]',
    b'{"a":{"b":{"c":[1,2,{"d":"\\u00e9\\ud83d\\ude00"}]}}}',
    b'{"a":1,"a":2}',
    b'[1,1.0,10e-1]',
    b'{"a": tru}',
    b'"\\ud800"',
    b' -0.0e+00 ',
    b'[' * 600,
]
for i, m in enumerate(MESSAGES):
    for pick in (i % 5, 0x80 | (i % 5)):
        put("json", bytes([pick]) + m)
