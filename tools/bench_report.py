#!/usr/bin/env python3
"""Write a benchmark report (markdown) from a results CSV.

usage: bench_report.py RESULTS_CSV TITLE COMMANDS_MD RATIO...
  RATIO is "a/b": a column with target a's value divided by target b's.
Targets become columns in the order they first appear in the CSV. When a
rounds.csv (every round) sits beside RESULTS_CSV, each cell also shows the
spread of the rounds: median (min-max).
"""
import csv
import os
import sys
from collections import OrderedDict

from provenance import section

csv_path, title, commands_path, *ratios = sys.argv[1:]
rows = OrderedDict()
units = {}
targets = []
for r in csv.DictReader(open(csv_path)):
    rows.setdefault(r["test"], {})[r["target"]] = float(r["value"])
    units[r["test"]] = r["unit"]
    if r["target"] not in targets:
        targets.append(r["target"])


rounds = {}
rounds_path = os.path.join(os.path.dirname(csv_path), "rounds.csv")
if os.path.exists(rounds_path):
    for row in csv.reader(open(rounds_path)):
        try:
            rounds.setdefault((row[0], row[1]), []).append(float(row[2]))
        except (IndexError, ValueError):
            continue  # a header line, or a round that produced no number
n_rounds = max((len(v) for v in rounds.values()), default=1)


def cell(test, target, v):
    r = rounds.get((test, target), [])
    return f"{v:g} ({min(r):g}–{max(r):g})" if len(r) > 1 else f"{v:g}"


print(f"# {title}\n")
print("Made by the script named below; re-run it to reproduce. One machine:")
print(os.environ.get("PLACEMENT", "proxies pinned to CPU 1, load generator and backends to CPU 0 with `taskset`."))
if n_rounds > 1:
    print(f"Each cell is the median of {n_rounds} interleaved rounds, with the lowest and highest "
          "round in brackets (every round: rounds.csv).\n")
else:
    print("One round per cell: no spread to show; run with ROUNDS=3 or more for one.\n")
print("## Results\n")
print("| test | unit | " + " | ".join(targets) + " | " + " | ".join(ratios) + " |")
print("|---|---|" + "---|" * (len(targets) + len(ratios)))
for test, vals in rows.items():
    cells = [cell(test, t, vals[t]) if t in vals else "" for t in targets]
    rcells = []
    for spec in ratios:
        a, b = spec.split("/")
        rcells.append(f"{vals[a] / vals[b]:.2f}" if vals.get(a) and vals.get(b) else "")
    print(f"| {test} | {units[test]} | " + " | ".join(cells) + " | " + " | ".join(rcells) + " |")
print()
print(open(commands_path).read().strip())
print()
print(section())
