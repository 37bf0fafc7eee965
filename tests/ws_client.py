#!/usr/bin/env python3
"""A WebSocket client on the `websockets` package (PyPI), for tests/websocket.rs.

Run: python3 tests/ws_client.py ws://127.0.0.1:9000/echo [--messages 1000] [--big 5]
     python3 tests/ws_client.py ws://127.0.0.1:9000/close-me --expect-server-close 4000

Echo mode: sends `--messages` messages (text and binary of mixed sizes, `--big`
of them binary frames of exactly 1 MiB) while a second task receives the
echoes, checks each one (type, length and sha256) against what was sent, then
closes. Prints `echoed N messages, B bytes` and `closed by client: code C in Ss`;
exits 0 only if every echo matched and the close handshake completed (code
1000, the TCP close seen within 3 s).

Server-close mode: waits for the server to close; exits 0 only if the close
frame arrived with the expected code.
"""

import argparse
import asyncio
import hashlib
import inspect
import random
import sys
import time

import websockets

try:  # websockets >= 13
    from websockets.asyncio.client import connect
except ImportError:  # older releases (Debian's python3-websockets)
    connect = websockets.connect

MIB = 1 << 20


def open_ws(url):
    opts = dict(max_size=64 << 20, compression=None, ping_interval=None, close_timeout=10)
    # Never an HTTP proxy from the environment (releases without the option use none).
    if "proxy" in inspect.signature(connect).parameters:
        opts["proxy"] = None
    return connect(url, **opts)


def messages(count, big, seed):
    rng = random.Random(seed)
    big_at = {round(i * count / big) + count // (2 * big) for i in range(big)} if big else set()
    for i in range(count):
        if i in big_at:
            yield rng.randbytes(MIB)
        elif i % 2:
            yield "".join(rng.choice("abcdefghij ✓") for _ in range(rng.randrange(0, 3000)))
        else:
            # Up to just over one 64 KiB proxy buffer, so frames straddle buffers.
            yield rng.randbytes(rng.randrange(0, 70_000))


def digest(m):
    data = m.encode() if isinstance(m, str) else m
    return (type(m).__name__, len(data), hashlib.sha256(data).hexdigest())


async def echo(url, count, big, seed):
    async with open_ws(url) as ws:
        sent = asyncio.Queue()
        stats = {"matched": 0, "bytes": 0, "big": 0}

        async def sender():
            for m in messages(count, big, seed):
                await sent.put(digest(m))
                await ws.send(m)

        async def receiver():
            for i in range(count):
                got = digest(await ws.recv())
                want = await sent.get()
                if got != want:
                    print(f"message {i}: sent {want}, echo {got}", flush=True)
                    return
                stats["matched"] += 1
                stats["bytes"] += got[1]
                stats["big"] += got[1] == MIB

        await asyncio.gather(sender(), receiver())
        print(f"echoed {stats['matched']} messages, {stats['bytes']} bytes, {stats['big']} of 1 MiB", flush=True)
        t0 = time.monotonic()
        await ws.close()
        await ws.wait_closed()
        elapsed = time.monotonic() - t0
        print(f"closed by client: code {ws.close_code} in {elapsed:.2f}s", flush=True)
        return stats["matched"] == count and stats["big"] == big and ws.close_code == 1000 and elapsed < 3


async def server_close(url, code):
    async with open_ws(url) as ws:
        t0 = time.monotonic()
        try:
            message = await ws.recv()
            print(f"unexpected message {message!r}", flush=True)
            return False
        except websockets.ConnectionClosed:
            pass
        await ws.wait_closed()
        elapsed = time.monotonic() - t0
        print(f"closed by server: code {ws.close_code} reason {ws.close_reason} in {elapsed:.2f}s", flush=True)
        return ws.close_code == code and elapsed < 3


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--big", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--expect-server-close", type=int, metavar="CODE")
    args = parser.parse_args()
    if args.expect_server_close is not None:
        ok = asyncio.run(server_close(args.url, args.expect_server_close))
    else:
        ok = asyncio.run(echo(args.url, args.messages, args.big, args.seed))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
