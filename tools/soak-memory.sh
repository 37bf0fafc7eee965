#!/usr/bin/env bash
# Memory soak of HTTP mode: full-rate keep-alive load for DURATION with a long
# --backend-timeout, RSS sampled every 10 s by tools/cpu-sampler. Flat RSS
# means nothing is kept per request (issue 16: one timer per request grew RSS
# by ~1.3 MiB/s at 39k req/s). OLD_BIN=path also runs that build for
# OLD_DURATION for comparison, in the same run.
#
#   bash tools/soak-memory.sh                      # 300 s, writes measurements/memory-soak/<YYYY-MM-DD-HHMM>/
#   DURATION=30s OLD_BIN=/tmp/old/target/release/lbproxy OLD_DURATION=60s bash tools/soak-memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-300s}
OLD_DURATION=${OLD_DURATION:-60s}
# A new dated folder per run (measurements/NAME/YYYY-MM-DD-HHMM/, `latest` points at
# the newest) unless OUT names one.
OUT=${OUT:-$(python3 tools/provenance.py --run-dir measurements/memory-soak)}
LOAD_CPU=${LOAD_CPU:-0}
PROXY_CPU=${PROXY_CPU:-1}
work=$(mktemp -d)
source tools/bench-lib.sh
install_missing wrk
mkdir -p "$OUT"
cargo build --release --quiet --bin lbproxy --bin cpu-sampler --example http_backend

backend_port=$(free_port)
start "$LOAD_CPU" target/release/examples/http_backend --port "$backend_port" --id 1
wait_port "$backend_port"

echo "build,seconds,requests_per_s,rss_start_kib,rss_end_kib,rss_max_kib" >"$OUT/summary.csv"
echo "build,elapsed_s,rss_kib" >"$OUT/rss.csv"

# soak NAME BIN DURATION: one run, RSS samples appended to rss.csv.
soak() {
  local name=$1 bin=$2 duration=$3 port
  port=$(free_port)
  start "$PROXY_CPU" "$bin" --mode http --bind 127.0.0.1 --port "$port" --backend "127.0.0.1:$backend_port" \
    --backend-timeout 600s --stats-interval 0
  local proxy=$LAST_PID
  wait_port "$port"
  target/release/cpu-sampler --interval 10s --pid "$proxy" --output "$work/$name.cpu" &
  local sampler=$!
  taskset -c "$LOAD_CPU" wrk -t2 -c50 -d"$duration" "http://127.0.0.1:$port/" >"$work/$name.wrk"
  kill -INT "$sampler"; wait "$sampler" || true
  kill "$proxy"; wait "$proxy" 2>/dev/null || true
  cp "$work/$name.cpu" "$OUT/cpu_usage_$name.txt"
  python3 - "$name" "$work/$name.cpu" "$work/$name.wrk" "$duration" >>"$OUT/summary.csv" 3>>"$OUT/rss.csv" <<'PY'
import csv, os, re, sys
name, cpu, wrk, duration = sys.argv[1:5]
rows = list(csv.DictReader(open(cpu)))
rss_col = next(c for c in rows[0] if c.endswith("_rss_kib"))
t0 = float(rows[0]["timestamp"])
samples = [(float(r["timestamp"]) - t0, int(r[rss_col])) for r in rows if r[rss_col]]
with os.fdopen(3, "w") as out:
    for t, kib in samples:
        out.write(f"{name},{t:.0f},{kib}\n")
rps = re.search(r"Requests/sec:\s+([\d.]+)", open(wrk).read()).group(1)
print(f"{name},{duration.rstrip('s')},{rps},{samples[0][1]},{samples[-1][1]},{max(k for _, k in samples)}")
PY
}

soak new target/release/lbproxy "$DURATION"
if [[ -n "${OLD_BIN:-}" ]]; then soak old "$OLD_BIN" "$OLD_DURATION"; fi

{
  echo "# Memory soak, HTTP mode"
  echo
  echo "wrk -t2 -c50 keep-alive GET / through lbproxy --mode http --backend-timeout 600s to one example"
  echo "http_backend; RSS of the proxy sampled every 10 s by tools/cpu-sampler. Proxy on CPU $PROXY_CPU,"
  echo "load and backend on CPU $LOAD_CPU. Command: \`DURATION=$DURATION ${OLD_BIN:+OLD_BIN=$OLD_BIN OLD_DURATION=$OLD_DURATION }bash tools/soak-memory.sh\`"
  echo
  echo "| build | seconds | req/s | RSS first sample KiB | RSS last KiB | RSS max KiB |"
  echo "|---|---|---|---|---|---|"
  tail -n +2 "$OUT/summary.csv" | awk -F, '{printf "| %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6}'
  echo
  echo "Samples: [rss.csv](rss.csv); sampler output: cpu_usage_*.txt."
  echo
  python3 tools/provenance.py
} >"$OUT/report.md"
cat "$OUT/report.md"
python3 tools/provenance.py --publish "$OUT"
