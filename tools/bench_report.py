#!/usr/bin/env python3
"""Turn tools/bench-tcp.sh's results.csv into report.md (tables with ratios)."""
import csv
import platform
import subprocess
import sys
from collections import defaultdict

csv_path, duration, idle_conns, big = sys.argv[1:5]
rows = defaultdict(dict)
units = {}
for r in csv.DictReader(open(csv_path)):
    rows[r["test"]][r["target"]] = float(r["value"])
    units[r["test"]] = r["unit"]


def version(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).splitlines()[0].strip()
    except Exception as e:  # noqa: BLE001 - report whatever went wrong
        return f"unknown ({e})"


def ratio(a, b):
    return f"{a / b:.2f}" if b else "n/a"


print("# TCP pass-through: direct vs lbproxy vs HAProxy\n")
print("Made by `bash tools/bench-tcp.sh` (re-run it to reproduce). Same run, same machine;")
print("proxies pinned to CPU 1, load generators and backends to CPU 0 with `taskset`.\n")
print("## Results\n")
print("| test | unit | direct | lbproxy | haproxy | lbproxy/direct | haproxy/direct | lbproxy/haproxy |")
print("|---|---|---|---|---|---|---|---|")
for test, t in rows.items():
    d, l, h = t.get("direct"), t.get("lbproxy"), t.get("haproxy")
    cell = lambda v: "" if v is None else f"{v:g}"  # noqa: E731
    lower_is_better = test.startswith("idle_kib")
    lh = ratio(l, h) if l is not None and h is not None else ""
    print(
        f"| {test} | {units[test]}{' (lower is better)' if lower_is_better else ''} | {cell(d)} | {cell(l)} | {cell(h)} "
        f"| {ratio(l, d) if d and l else ''} | {ratio(h, d) if d and h else ''} | {lh} |"
    )
print("\n## Commands\n")
print(f"- `wrk -t2 -c100 -d{duration} --latency http://127.0.0.1:PORT/` (keep-alive) and the same with `-H 'Connection: close'`;")
print("  backends: two `http_backend` examples; lbproxy `--policy round_robin`; HAProxy `mode tcp`, `balance roundrobin`, `nbthread 1`.")
print(f"- `file_client --size {big} --parallel 1` against two `stream_backend`s: upload and download, sha256 checked.")
print("- `iperf3 -c 127.0.0.1 -p PORT -t 5` through each proxy to one `iperf3 -s` (and lbproxy with 16 KiB and 256 KiB buffers).")
print(f"- {idle_conns} connections opened through each proxy, one round trip each to prove they reach a backend, then held idle;")
print("  (VmRSS after - VmRSS before) / connections.")
print("\n## Machine\n")
print(f"- {platform.machine()}, {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores, kernel {platform.release()}")
print(f"- {version(['haproxy', '-v'])}")
print(f"- {version(['wrk', '-v'])}")
print(f"- {version(['iperf3', '-v'])}")
print(f"- {version(['rustc', '-V'])}")
