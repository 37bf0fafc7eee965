#!/usr/bin/env python3
"""Screenshot a page after it ran for a while in real time (headless Chromium
over the DevTools protocol). `--virtual-time-budget` would fast-forward the
page's timers, and the dashboard's history would then cover a second or two
of the proxy's time, not minutes.

  python3 tools/cdp_screenshot.py URL OUT.png [--seconds 60] [--width 1400] [--height 1000]

Needs chromium and the websockets package (both installed by .ci/run).
"""
import argparse
import asyncio
import base64
import json
import re
import shutil
import subprocess
import tempfile
import urllib.request

import websockets


async def capture(ws_url, seconds, width, height):
    async with websockets.connect(ws_url, max_size=64 << 20) as ws:
        ids = iter(range(1, 1 << 30))

        async def call(method, **params):
            i = next(ids)
            await ws.send(json.dumps({"id": i, "method": method, "params": params}))
            while True:  # events arrive in between: skip them
                msg = json.loads(await ws.recv())
                if msg.get("id") == i:
                    if "error" in msg:
                        raise RuntimeError(f"{method}: {msg['error']}")
                    return msg["result"]

        await call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        await asyncio.sleep(seconds)
        shot = await call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        return base64.b64decode(shot["data"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("out")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=1000)
    args = ap.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit("error: chromium is not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="lbp-chromium-") as profile:
        browser = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
             f"--user-data-dir={profile}", "--remote-debugging-port=0", f"--window-size={args.width},{args.height}",
             args.url],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            port = None
            for line in browser.stderr:  # "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/..."
                m = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
                if m:
                    port = m.group(1)
                    break
            if not port:
                raise SystemExit("error: chromium did not say where DevTools listens")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=20) as r:
                pages = [t for t in json.load(r) if t["type"] == "page"]
            png = asyncio.run(asyncio.wait_for(
                capture(pages[0]["webSocketDebuggerUrl"], args.seconds, args.width, args.height), args.seconds + 60))
            with open(args.out, "wb") as f:
                f.write(png)
            print(f"wrote {args.out} ({len(png)} bytes)")
        finally:
            browser.terminate()
            browser.wait(timeout=20)


if __name__ == "__main__":
    main()
