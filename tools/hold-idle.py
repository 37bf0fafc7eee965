"""Hold N idle proxied connections and print what they cost the proxy.

    python3 tools/hold-idle.py PORT PID N [WAIT_S]

Opens N connections to 127.0.0.1:PORT (a TCP-mode proxy in front of
examples/stream_backend), sends WHO on each and checks the backend's answer
(every connection proxied), then reads the proxy's (PID) resident memory at
once and again after WAIT_S seconds (default 3), with its descriptors.
Prints: KiB per connection after the wait, KiB per connection at open,
descriptors added. Used by tools/bench-idle.sh and tools/bench-tcp.sh.
"""
import os
import socket
import sys
import time

port, pid, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
wait = float(sys.argv[4]) if len(sys.argv) > 4 else 3.0


def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])


def fds():
    return len(os.listdir(f"/proc/{pid}/fd"))


before, fds_before = rss(), fds()
socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(n)]
# Prove every connection reaches a backend: one round trip each, then idle.
for s in socks:
    s.sendall(b"WHO\n")
for i, s in enumerate(socks):
    got = s.recv(200)
    if b"server=" not in got:
        sys.exit(f"connection {i} of {n} not proxied: {got!r}")
at_open = rss()
# Held: past lbproxy's 2 s connect timeout (by default), so no setup deadline is left.
time.sleep(wait)
after, fds_after = rss(), fds()
print(round((after - before) / n, 3), round((at_open - before) / n, 3), fds_after - fds_before)
