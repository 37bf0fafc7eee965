#!/usr/bin/env python3
"""Reports for tools/experiments.sh: parse raw outputs, write CSVs and report.md, check a run.

  experiments_report.py sessions DIR RAW SESSIONS MESSAGES MACHINE
  experiments_report.py files DIR RAW SIZES MACHINE
  experiments_report.py latency DIR RAW RATE DURATION MACHINE
  experiments_report.py append-plots DIR SVG...
  experiments_report.py pivot RESULTS_CSV TEST OUT_CSV
  experiments_report.py check ROOT DIR...
MACHINE is the Provenance section of tools/provenance.py (commit, date,
machine, tool versions), written into the report as it is.
"""
import csv
import json
import os
import re
import sys

from provenance import check as provenance_missing


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def plots_md(names):
    return "\n## Plots\n\n" + "\n".join(f"![{n}]({n})" for n in names) + "\n"


def sessions(d, raw, n_sessions, n_messages, machine):
    policy, cpu = None, {}
    per = {}  # (policy, host, server) -> sessions
    lat = []
    ok = {}
    for line in open(raw):
        m = re.match(r"POLICY (\S+) CPU (\S+)", line)
        if m:
            policy = m.group(1)
            cpu[policy] = float(m.group(2))
            continue
        m = re.match(r"HOST (\d) +server (\d+): (\d+) sessions", line)
        if m:
            per[(policy, m.group(1), m.group(2))] = int(m.group(3))
            continue
        m = re.match(r"HOST (\d) latency us: p50=(\d+) p90=(\d+) p99=(\d+) p99\.9=(\d+) max=(\d+)", line)
        if m:
            lat.append([f"{policy} host{m.group(1)}", *m.groups()[1:]])
            continue
        m = re.match(r"HOST (\d) all sessions stayed on one backend: OK", line)
        if m:
            ok[(policy, m.group(1))] = True
    policies = list(dict.fromkeys(p for p, _, _ in per))
    write_csv(os.path.join(d, "sessions.csv"), ["policy", "host", "server", "sessions"],
              [[p, h, s, n] for (p, h, s), n in per.items()])
    share_rows = [[p] + [per.get((p, h, s), 0) for h in "12" for s in "12"] for p in policies]
    write_csv(os.path.join(d, "share.csv"),
              ["policy", "host1_server1", "host1_server2", "host2_server1", "host2_server2"], share_rows)
    write_csv(os.path.join(d, "latency.csv"), ["policy_host", "p50_us", "p90_us", "p99_us", "p999_us", "max_us"], lat)
    with open(os.path.join(d, "report.md"), "w") as f:
        f.write("# Stateful sessions from two client hosts\n\n")
        f.write(f"Made by `bash tools/experiments.sh sessions`. Two `stream_backend`s behind lbproxy (TCP mode); "
                f"the `client` example on each of two hosts at once, {n_sessions} sessions x {n_messages} messages each, "
                "checking that every reply of a session names the same server and session id.\n\n")
        f.write("| policy | host 1: server 1 / 2 | host 2: server 1 / 2 | continuity | lbproxy CPU s |\n|---|---|---|---|---|\n")
        for p, h1s1, h1s2, h2s1, h2s2 in share_rows:
            cont = "OK" if ok.get((p, "1")) and ok.get((p, "2")) else "BROKEN"
            f.write(f"| {p} | {h1s1} / {h1s2} | {h2s1} / {h2s2} | {cont} | {cpu.get(p, 0):.2f} |\n")
        f.write("\n| policy, host | p50 us | p90 us | p99 us | p99.9 us | max us |\n|---|---|---|---|---|---|\n")
        for row in lat:
            f.write("| " + " | ".join(row) + " |\n")
        f.write("\nip_hash keys on the client address, so each host's sessions all reach one backend.\n")
        f.write("\n## Commands\n\n```\n"
                "# balancer host\n"
                "stream_backend --bind ADDR --port B1 --id 1; stream_backend --bind ADDR --port B2 --id 2\n"
                "lbproxy --bind 0.0.0.0 --port P --policy POLICY --stats-interval 0 --backend 127.0.0.1:B1,127.0.0.1:B2\n"
                "# each client host, at the same time\n"
                f"client --lb LB:P --sessions {n_sessions} --messages {n_messages}\n"
                "cpu-sampler --interval 1s --output cpu_usage.txt   # for the whole experiment\n```\n")
        f.write("\n" + machine + "\n")
        f.write(plots_md(["share.svg", "latency.svg", "cpu.svg"]))


def files(d, raw, sizes, machine):
    rows = []
    for line in open(raw):
        m = re.match(r"RESULT (\S+) (\S+) (\d) upload ([0-9.]+) MB/s, download ([0-9.]+) MB/s", line)
        if m:
            rows.append([m.group(1), m.group(2), m.group(3), float(m.group(4)), float(m.group(5))])
    write_csv(os.path.join(d, "transfers.csv"), ["policy", "size", "host", "upload_mbs", "download_mbs"], rows)
    agg = {}
    for p, s, _, up, down in rows:
        a = agg.setdefault(f"{p} {s}", [0.0, 0.0])
        a[0] += up
        a[1] += down
    write_csv(os.path.join(d, "throughput.csv"), ["case", "upload_mbs", "download_mbs"],
              [[k, f"{v[0]:.1f}", f"{v[1]:.1f}"] for k, v in agg.items()])
    with open(os.path.join(d, "report.md"), "w") as f:
        f.write("# File transfers from two client hosts\n\n")
        f.write("Made by `bash tools/experiments.sh files`. Two `stream_backend`s behind lbproxy (TCP mode); "
                f"`file_client --parallel 2` on each of two hosts at once, sizes {sizes}: each worker uploads "
                "and downloads, sha256 verified both ways (any mismatch fails the run).\n\n")
        f.write("| policy | size | host | upload MB/s | download MB/s |\n|---|---|---|---|---|\n")
        for p, s, h, up, down in rows:
            f.write(f"| {p} | {s} | {h} | {up:.1f} | {down:.1f} |\n")
        f.write("\nEvery transfer above was verified byte-exact.\n")
        f.write("\n## Commands\n\n```\n"
                "# balancer host\n"
                "stream_backend --bind ADDR --port B1 --id 1; stream_backend --bind ADDR --port B2 --id 2\n"
                "lbproxy --bind 0.0.0.0 --port P --policy POLICY --stats-interval 0 --backend 127.0.0.1:B1,127.0.0.1:B2\n"
                "# each client host, at the same time, for each SIZE in " + sizes + "\n"
                "file_client --lb LB:P --size SIZE --parallel 2 [--seed 43 on host 2]\n```\n")
        f.write("\n" + machine + "\n")
        f.write(plots_md(["throughput.svg", "cpu.svg"]))


def parse_load(lines):
    """p50, p90, p99, p99.9, max in microseconds and requests/s from wrk/wrk2 (with wrk-report.lua) or oha JSON."""
    text = "".join(lines)
    m = re.search(r"LATENCY mean=\S+ p50=(\d+) p90=(\d+) p99=(\d+) p999=(\d+) max=(\d+)", text)
    if m:
        rps = re.search(r"Requests/sec:\s+([0-9.]+)", text)
        return [int(x) for x in m.groups()] + [float(rps.group(1)) if rps else 0.0]
    j = json.loads(text[text.index("{"):])
    p = j["latencyPercentiles"]
    us = lambda v: int(round((v or 0) * 1e6))  # noqa: E731
    return [us(p["p50"]), us(p["p90"]), us(p["p99"]), us(p["p99.9"]), us(j["summary"]["slowest"]),
            float(j["summary"]["requestsPerSec"])]


def latency(d, raw, rate, duration, machine):
    rows, tool, block, target = [], "", [], None
    for line in open(raw):
        m = re.match(r"TARGET (\S+) TOOL (\S+)", line)
        if m:
            target, tool, block = m.group(1), m.group(2), []
        elif line.strip().endswith("END"):
            block.append(line.strip()[:-3])
            rows.append([target] + parse_load(block))
        else:
            block.append(line)
    write_csv(os.path.join(d, "latency.csv"), ["target", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "rps"], rows)
    corrected = tool in ("wrk2", "oha")
    with open(os.path.join(d, "report.md"), "w") as f:
        f.write("# Latency at a fixed request rate\n\n")
        f.write(f"Made by `bash tools/experiments.sh latency`. Two `http_backend`s; lbproxy `--mode http` with each "
                f"policy, and a direct connection to one backend as the baseline. Load from one client host: {tool}, "
                f"100 connections, {rate} requests/s, {duration}.\n\n")
        if not corrected:
            f.write("**Smoke run:** neither wrk2 nor oha was present, so this used plain wrk (closed loop, no "
                    "coordinated-omission correction, no fixed rate). These figures check the pipeline only.\n\n")
        else:
            f.write("Open-loop load with coordinated-omission correction: latency is measured from when each "
                    "request was due, so a stall shows in the tail instead of slowing the load.\n\n")
        f.write("| target | p50 us | p90 us | p99 us | p99.9 us | max us | requests/s |\n|---|---|---|---|---|---|---|\n")
        for r in rows:
            f.write(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} | {r[5]} | {r[6]:.0f} |\n")
        load = {
            "oha": f"oha -z {duration} -q {rate} -c 100 --latency-correction --no-tui --output-format json URL",
            "wrk2": f"wrk2 -t2 -c100 -d{duration} -R{rate} --latency -s tools/wrk-report.lua URL",
            "wrk": f"wrk -t2 -c100 -d{duration} --latency -s tools/wrk-report.lua URL",
        }.get(tool, tool)
        f.write("\n## Commands\n\n```\n"
                "# balancer host\n"
                "http_backend --bind ADDR --port B1 --id 1; http_backend --bind ADDR --port B2 --id 2\n"
                "lbproxy --mode http --bind 0.0.0.0 --port P --policy POLICY --stats-interval 0 --backend 127.0.0.1:B1,127.0.0.1:B2\n"
                "# client host 1; URL is http://LB:B1/ for direct, http://LB:P/ through lbproxy\n"
                f"{load}\n```\n")
        f.write("\n" + machine + "\n")
        f.write(plots_md(["latency.svg", "cpu.svg"]))


def append_plots(d, names):
    path = os.path.join(d, "report.md")
    text = open(path).read()
    text = text.split("\n## Plots\n")[0].rstrip() + "\n"
    open(path, "w").write(text + plots_md(names))


def pivot(results, test, out):
    """target,value (the median) and the lowest and highest round from rounds.csv beside RESULTS_CSV."""
    per = {}
    rounds = os.path.join(os.path.dirname(results), "rounds.csv")
    if os.path.exists(rounds):
        for row in csv.reader(open(rounds)):
            if len(row) >= 3 and row[0] == test:
                try:
                    per.setdefault(row[1], []).append(float(row[2]))
                except ValueError:
                    pass
    rows = []
    for r in csv.DictReader(open(results)):
        if r["test"] == test:
            v = per.get(r["target"]) or [float(r["value"])]
            rows.append([r["target"], r["value"], f"{min(v):g}", f"{max(v):g}"])
    write_csv(out, ["target", "value", "min", "max"], rows)


def check(root, dirs):
    passed, failed = 0, 0
    for name in dirs:
        d = os.path.join(root, name)
        problems = []
        report = os.path.join(d, "report.md")
        if not os.path.exists(report) or os.path.getsize(report) < 200:
            problems.append("report.md missing or nearly empty")
        missing = provenance_missing(report)
        if missing:
            problems.append("report.md does not say " + ", ".join(missing))
        svgs = [f for f in os.listdir(d) if f.endswith(".svg")] if os.path.isdir(d) else []
        if not svgs:
            problems.append("no plots")
        for s in svgs:
            body = open(os.path.join(d, s)).read()
            if "<svg" not in body or len(body) < 1000:
                problems.append(f"{s} is not a drawn SVG")
            raw = re.search(r">\s*([a-z0-9]+_(?:us|pct|mbs|kib|\d+ms))\s*<", body)
            if raw:
                problems.append(f"{s} shows the raw CSV column name {raw.group(1)!r}, not a label with units")
            if os.path.exists(report) and s not in open(report).read():
                problems.append(f"{s} not linked from report.md")
        cpu = os.path.join(d, "cpu_usage.txt")
        lines = open(cpu).read().splitlines() if os.path.exists(cpu) else []
        if len(lines) < 2 or not lines[0].startswith("timestamp,total_pct"):
            problems.append("cpu_usage.txt missing samples")
        for f in (os.listdir(d) if os.path.isdir(d) else []):
            if f.endswith(".csv"):
                rows = list(csv.reader(open(os.path.join(d, f))))
                if len(rows) < 2:
                    problems.append(f"{f} has no rows")
                for row in rows[1:]:
                    for cell in row[1:]:
                        if cell == "" or cell.lower() in ("nan", "inf"):
                            problems.append(f"{f}: empty or non-finite value in {row}")
                            break
        for line in lines[1:]:
            for cell in line.split(",")[:2]:
                try:
                    float(cell)
                except ValueError:
                    problems.append(f"cpu_usage.txt: bad number {cell!r}")
        if problems:
            failed += 1
            print(f"FAIL {name}: " + "; ".join(sorted(set(problems))[:6]))
        else:
            passed += 1
            print(f"ok   {name}: report, {len(svgs)} plots, {len(lines) - 1} CPU samples")
    print(f"smoke: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "sessions":
        sessions(*args)
    elif cmd == "files":
        files(*args)
    elif cmd == "latency":
        latency(*args)
    elif cmd == "append-plots":
        append_plots(args[0], args[1:])
    elif cmd == "pivot":
        pivot(*args)
    elif cmd == "check":
        check(args[0], args[1:])
    else:
        sys.exit(f"unknown command {cmd!r}")
