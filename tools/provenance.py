#!/usr/bin/env python3
"""Where a measurement came from, for every report under measurements/.

  python3 tools/provenance.py [--note TEXT]...   # a "## Provenance" markdown section
  python3 tools/provenance.py --stamp            # YYYY-MM-DD-HHMM (UTC), a run folder's name
  python3 tools/provenance.py --run-dir BASE     # BASE/YYYY-MM-DD-HHMM, a folder no earlier run used
  python3 tools/provenance.py --publish DIR      # point DIR/../latest at DIR, when DIR is a dated run folder
  python3 tools/provenance.py --check REPORT.md  # exit 1 naming what the report lacks

Re-running a benchmark writes a new dated folder (measurements/NAME/STAMP/)
instead of overwriting the last report; `latest` beside it points at the
newest. A script given OUT=DIR writes exactly there and moves no pointer.

The section names the commit (and whether the tree had changes), the date,
the machine (CPU model, cores, kernel) and the versions of the tools the
reports use (rustc, wrk, HAProxy, nginx; oha and wrk2 when installed), so a
number can be traced to what produced it. Other tools import `section()`.
"""
import datetime
import os
import platform
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What --check requires, as the section writes it.
FIELDS = ["- commit: ", "- date: ", "- machine: ", "- kernel: ", "- rustc: ", "- wrk: ", "- haproxy: ", "- nginx: "]


def run(cmd):
    """First line of a command's output (stdout, else stderr), or why there is none."""
    if not shutil.which(cmd[0]):
        return "not installed"
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, cwd=ROOT)
        lines = (out.stdout.strip() or out.stderr.strip()).splitlines()
        return lines[0].strip() if lines else "no version output"
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unknown ({e})"


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def commit():
    sha = run(["git", "rev-parse", "HEAD"])
    subject = run(["git", "log", "-1", "--format=%s"])
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                           text=True, cwd=ROOT).stdout.strip()
    return f"{sha[:12]} ({subject[:70]})" + (", with uncommitted changes" if dirty else "")


def section(notes=()):
    now = datetime.datetime.now(datetime.timezone.utc)
    lines = [
        "## Provenance",
        "",
        f"- commit: {commit()}",
        f"- date: {now.strftime('%Y-%m-%d %H:%M')} UTC",
        f"- machine: {cpu_model()}, {os.cpu_count()} cores, {platform.machine()}",
        f"- kernel: {platform.system()} {platform.release()}",
        f"- rustc: {run(['rustc', '-V'])}",
        f"- wrk: {run(['wrk', '-v'])[:60]}",
        f"- haproxy: {run(['haproxy', '-v'])}",
        f"- nginx: {run(['nginx', '-v'])}",
    ]
    for tool in ("oha", "wrk2"):
        if shutil.which(tool):
            lines.append(f"- {tool}: {run([tool, '--version'])}")
    lines += [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}-\d{4}(-\d+)?$")


def stamp():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d-%H%M")


def run_dir(base):
    d, n = os.path.join(base, stamp()), 2
    while os.path.exists(d):  # two runs in one minute: the second gets -2
        d, n = os.path.join(base, f"{stamp()}-{n}"), n + 1
    return d


def publish(d):
    d = os.path.normpath(d)
    name = os.path.basename(d)
    if not STAMP.match(name):
        return None
    link = os.path.join(os.path.dirname(d), "latest")
    tmp = link + ".new"
    if os.path.lexists(tmp):
        os.remove(tmp)
    os.symlink(name, tmp)
    os.replace(tmp, link)  # atomic: readers never see the pointer missing
    return link


def check(path):
    text = open(path).read() if os.path.exists(path) else ""
    missing = [f.strip("- :") for f in FIELDS if f not in text]
    if "## Provenance" not in text:
        missing.insert(0, "the Provenance section")
    return missing


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--stamp"]:
        print(stamp())
    elif args[:1] == ["--run-dir"]:
        print(run_dir(args[1]))
    elif args[:1] == ["--publish"]:
        link = publish(args[1])
        if link:
            print(f"{link} -> {os.path.basename(os.path.normpath(args[1]))}")
    elif args[:1] == ["--check"]:
        missing = check(args[1])
        if missing:
            sys.exit(f"{args[1]}: no {', '.join(missing)}")
    else:
        notes = [args[i + 1] for i, a in enumerate(args) if a == "--note"]
        sys.stdout.write(section(notes))
