#!/usr/bin/env python3
"""Record an access log to replay with `policy-lab replay`: three example
HTTP backends of different speeds behind lbproxy (round robin), and a few
client addresses sending requests for a few seconds.

  python3 tools/record-trace.py OUT.csv [--requests N] [--threads T]

Needs a release build: cargo build --release --bin lbproxy --example http_backend.
Backends answer after 2, 8 and 30 ms plus up to 4 ms of jitter; clients are
127.0.0.1 .. 127.0.0.16 (a thread per address, keep-alive), each asking for
one of 50 query strings (`/?item=N`). The log is lbproxy's own CSV access log, flushed at exit.
"""
import argparse
import http.client
import os
import re
import signal
import subprocess
import sys
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")


def start(cmd, pattern):
    """Start `cmd`, wait for the line matching `pattern` on stdout or stderr, return (proc, match)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for _ in range(200):
        line = p.stdout.readline()
        if not line:
            break
        m = re.search(pattern, line)
        if m:
            threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
            return p, m
    p.kill()
    sys.exit(f"error: {cmd[0]} did not say {pattern!r}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--requests", type=int, default=1600)
    ap.add_argument("--threads", type=int, default=16)
    a = ap.parse_args()
    if os.path.exists(a.out):
        os.remove(a.out)
    procs = []
    try:
        backends = []
        for i, delay in enumerate([2, 8, 30], start=1):
            cmd = [os.path.join(BIN, "examples", "http_backend"), "--port", "0", "--id", str(i),
                   "--delay-ms", str(delay), "--jitter-ms", "4"]
            p, m = start(cmd, r"listening on (\S+)")
            procs.append(p)
            backends.append(m.group(1))
        cmd = [os.path.join(BIN, "lbproxy"), "--mode", "http", "--bind", "127.0.0.1", "--port", "0",
               "--policy", "round_robin", "--access-log", a.out, "--stats-interval", "0"]
        for b in backends:
            cmd += ["--backend", b]
        lb, m = start(cmd, r"listening on (\S+)|on 127\.0\.0\.1:(\d+)")
        procs.append(lb)
        port = int(re.search(r":(\d+)", m.group(0)).group(1))
        per = a.requests // a.threads
        errors = []

        def client(k):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=20, source_address=(f"127.0.0.{k + 1}", 0))
            for j in range(per):
                c.request("GET", f"/?item={(k * 7 + j) % 50}")
                r = c.getresponse()
                r.read()
                if r.status != 200:
                    errors.append(f"GET /?item=..: status {r.status}")
                    return

        threads = [threading.Thread(target=client, args=(k,)) for k in range(a.threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            sys.exit(f"error: {errors[0]} ({len(errors)} clients failed)")
        lb.send_signal(signal.SIGTERM)
        lb.wait(timeout=20)
        print(f"{per * a.threads} requests recorded in {a.out}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


if __name__ == "__main__":
    main()
