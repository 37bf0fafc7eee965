#!/usr/bin/env python3
"""A WebSocket echo server on the `websockets` package (PyPI), for tests/websocket.rs.

Run: python3 tests/ws_echo.py [--port 0]
Prints `listening on 127.0.0.1:PORT` once it accepts connections, then one
line per connection that ends: `closed PATH CODE`. Both go to stderr, unbuffered,
as lbproxy's log does, so tests/util reads them the same way.

Paths: `/close-me` closes right after the handshake with code 4000 and reason
"bye"; any other path echoes every message back as it came (text as text,
binary as binary). Frames up to 64 MiB, no compression, no pings.
"""

import argparse
import asyncio
import sys

import websockets

try:  # websockets >= 13
    from websockets.asyncio.server import serve

    def path_of(ws):
        return ws.request.path

except ImportError:  # older releases (Debian's python3-websockets)
    serve = websockets.serve

    def path_of(ws):
        return ws.path


async def handler(ws, *_legacy_path):
    path = path_of(ws)
    if path == "/close-me":
        await ws.close(4000, "bye")
    else:
        try:
            async for message in ws:
                await ws.send(message)
        except websockets.ConnectionClosed:
            pass
    await ws.wait_closed()
    print(f"closed {path} {ws.close_code}", file=sys.stderr, flush=True)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    async with serve(
        handler, "127.0.0.1", args.port, max_size=64 << 20, compression=None, ping_interval=None
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"listening on 127.0.0.1:{port}", file=sys.stderr, flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
