#!/usr/bin/env python3
"""Write a benchmark report (markdown) from a results CSV.

usage: bench_report.py RESULTS_CSV TITLE COMMANDS_MD RATIO...
  RATIO is "a/b": a column with target a's value divided by target b's.
Targets become columns in the order they first appear in the CSV.
"""
import csv
import platform
import subprocess
import sys
from collections import OrderedDict

csv_path, title, commands_path, *ratios = sys.argv[1:]
rows = OrderedDict()
units = {}
targets = []
for r in csv.DictReader(open(csv_path)):
    rows.setdefault(r["test"], {})[r["target"]] = float(r["value"])
    units[r["test"]] = r["unit"]
    if r["target"] not in targets:
        targets.append(r["target"])


def version(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).splitlines()[0].strip()
    except (OSError, IndexError, subprocess.TimeoutExpired) as e:
        return f"{cmd[0]}: unknown ({e})"


print(f"# {title}\n")
print("Made by the script named below; re-run it to reproduce. One run, one machine:")
print("proxies pinned to CPU 1, load generator and backends to CPU 0 with `taskset`.\n")
print("## Results\n")
print("| test | unit | " + " | ".join(targets) + " | " + " | ".join(ratios) + " |")
print("|---|---|" + "---|" * (len(targets) + len(ratios)))
for test, vals in rows.items():
    cells = [f"{vals[t]:g}" if t in vals else "" for t in targets]
    rcells = []
    for spec in ratios:
        a, b = spec.split("/")
        rcells.append(f"{vals[a] / vals[b]:.2f}" if vals.get(a) and vals.get(b) else "")
    print(f"| {test} | {units[test]} | " + " | ".join(cells) + " | " + " | ".join(rcells) + " |")
print()
print(open(commands_path).read().strip())
print("\n## Machine\n")
nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
print(f"- {platform.machine()}, {nproc} cores, kernel {platform.release()}")
for cmd in (["haproxy", "-v"], ["nginx", "-v"], ["wrk", "-v"], ["iperf3", "-v"], ["rustc", "-V"]):
    print(f"- {version(cmd)}")
