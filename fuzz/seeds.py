#!/usr/bin/env python3
"""Write the seed corpora in fuzz/corpus/<target>/ (inputs taken from the tests).

Run from anywhere: python3 fuzz/seeds.py. Files are named by content, so
running it again adds nothing new; files the fuzzer added are kept.
Layouts: see fuzz/src/lib.rs (byte 0 of request_head/response_head and
bytes 0-1 of chunked are selectors).
"""
import hashlib
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent
SMUGGLED = b"GET /SMUGGLED HTTP/1.1\r\nHost: x\r\n\r\n"

requests = [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /a/b?user=42&x=1 HTTP/1.1\r\nHost: h\r\nX-User: 42\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\tchunked\r\n\r\n",
    b"POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: Content-Length\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: Transfer-Encoding\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\nHost: x\n\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX: \xff\xfe\r\n\r\n",
    b"GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    b"GET /custom HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Custom\r\nX-Custom: secret\r\nX-Keep: 1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.0.0.1\r\nVia: 1.1 a\r\nX-Forwarded-Proto: https\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" + SMUGGLED,
    b"GET ",
    b"GET / HTTP/1.1\r\nHost: x\r\n" + b"A: b\r\n" * 130 + b"\r\n",
    b"SSH-2.0-OpenSSH\r\n\r\n",
]

responses = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Server: 1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nSMUGGLED!",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.0 200 OK\r\n\r\nbody until close",
    b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
    b"HTTP/1.1 304 Not Modified\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nConnection: close, Content-Length\r\nContent-Length: 3\r\n\r\n",
    b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200\r\n\r\n",
    b"SSH-2.0-OpenSSH\r\n\r\n",
]

chunked = [
    b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT",
    b"0\r\n\r\n",
    b"3\r\nabc\r\n0\r\n\r\nzz",
    b"zz\r\n",
    b"3\r\nabcX",
    b"ffffffffffffffffff\r\n",
    b"fffffffffffffff\r\n",
    b"\r\n",
    b"0;a\n\n" + SMUGGLED,
    b"0\r\n\n" + SMUGGLED,
    b"0\r\nX: y\n\r\n",
    b"5;ext\nhello\r\n0\r\n\r\n",
    b"5\nhello\r\n",
    b"0;a\x00\r\n\r\n",
    b"5 6\r\nhello\r\n0\r\n\r\n",
    b"5 ;name=\"v\"\t\r\nhello\r\n0 \r\nX: a\tb\r\n\r\n",
    b"1\r\nx\r\n0\r\n\r\n" + SMUGGLED,
]

def admin(method, path, body=b"", extra=b""):
    head = b"%s %s HTTP/1.1\r\nHost: admin\r\n" % (method, path)
    if body:
        head += b"Content-Length: %d\r\n" % len(body)
    return head + extra + b"\r\n" + body

admin_requests = [
    admin(b"GET", b"/rep"),
    admin(b"GET", b"/stats?x=1"),
    admin(b"GET", b"/metrics"),
    admin(b"GET", b"/"),
    admin(b"GET", b"/dashboard", extra=b"Authorization: Bearer s3cret\r\n"),
    admin(b"POST", b"/reload"),
    admin(b"POST", b"/add", b'{"n":2,"hostnames":["127.0.0.1:8004"]}'),
    admin(b"POST", b"/add", b'{"n":3,"hostnames":["127.0.0.1:8004","127.0.0.1:8004"]}'),
    admin(b"POST", b"/add", b'{"n":1,"hostnames":["127.0.0.1:1","127.0.0.1:2"]}'),
    admin(b"POST", b"/add", b'{"n":1,"hostnames":[]}'),
    admin(b"POST", b"/add", b"{nope"),
    admin(b"DELETE", b"/rm", b'{"n":1,"hostnames":["[::1]:9"]}'),
    admin(b"POST", b"/backends/127.0.0.1:8001/drain"),
    admin(b"POST", b"/backends/127.0.0.1:8001/enable"),
    admin(b"POST", b"/backends/127.0.0.1:8001/explode"),
    admin(b"PUT", b"/policy", b'{"policy":"source"}'),
    admin(b"PUT", b"/policy", b'{"policy":"fastest"}'),
    admin(b"GET", b"/add"),
    admin(b"GET", b"/nowhere"),
    b"POST /add HTTP/1.1\r\nHost: admin\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST /add HTTP/1.1\r\nContent-Length: 70000\r\n\r\nxx",
]

POOL = b'[[pool]]\nname = "app"\nservers = ["127.0.0.1:8001"]\n'
FRONT = b'[[frontend]]\nname = "web"\nbind = "127.0.0.1:8080"\npool = "app"\n'
configs = [p.read_bytes() for p in sorted((ROOT.parent / "examples/configs").glob("*.toml"))] + [
    POOL + FRONT,
    POOL + FRONT + b'mode = "redirect"\nhash_key = "path"\naccess_log = "a \\"b\\".csv"\n[global]\nseed = "18446744073709551615"\n',
    POOL + FRONT + b'[global]\nbind = "x"\n',
    POOL + FRONT + b'[global]\nbuffer_size = "12"\nmax_connections = 0\n',
    POOL + FRONT + b'[[frontend]]\nname = "api"\nbind = "[::]:8080"\npool = "app"\n',
    (POOL + FRONT).replace(b'["127.0.0.1:8001"]', b'[{ address = "127.0.0.1:1", weight = 0 }]'),
    (POOL + FRONT).replace(b'[[pool]]\nname = "app"', b"[pool.app]"),
    POOL + FRONT + b'[global]\nadmin = "0.0.0.0:9100"\nadmin_token = "t"\n',
    POOL + FRONT + b'policy = "maglev"\nmaglev_size = 7\nmode = "tcp"\nhealth_check = "tcp"\n',
    POOL,
    b"",
]

def write(target, inputs):
    d = ROOT / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    for data in inputs:
        (d / ("seed-" + hashlib.sha1(data).hexdigest()[:16])).write_bytes(data)

# Each request with one of the four hash keys in turn; the one with all three
# keyed values with each.
write("request_head", [bytes([i % 4]) + r for i, r in enumerate(requests)] + [bytes([k]) + requests[1] for k in range(4)])
write("response_head", [bytes([k]) + r for r in responses for k in (0, 1)])
write("chunked", [bytes([s, 0]) + c for c in chunked for s in (0, 3)])
write("admin_request", admin_requests)
write("config_file", configs)
