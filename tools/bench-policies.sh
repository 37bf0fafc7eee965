#!/usr/bin/env bash
# Policy adaptivity: three http_backends answering after 1, 5 and 20 ms, lbproxy
# --mode http in front with each policy in turn, wrk -c30 closed-loop load.
# Writes measurements/policy-adaptivity/<YYYY-MM-DD-HHMM>/{report.md,results.csv} (or OUT=DIR).
#   bash tools/bench-policies.sh                    # all policies, 10 s each (about 3 minutes)
#   DURATION=3s POLICIES="round_robin ewma" bash tools/bench-policies.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNS=${CONNS:-30}
# A new dated folder per run (measurements/NAME/YYYY-MM-DD-HHMM/, `latest` points at
# the newest) unless OUT names one.
OUT=${OUT:-$(python3 tools/provenance.py --run-dir measurements/policy-adaptivity)}
PROXY_CPU=${PROXY_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
POLICIES=${POLICIES:-"round_robin fewest_connections ip_hash weighted_round_robin random weighted_random least_requests consistent_hash maglev sma ewma p2c_peak_ewma"}
DELAYS=(1 5 20)

work=$(mktemp -d)
mkdir -p "$OUT"
# shellcheck source=tools/bench-lib.sh
source tools/bench-lib.sh
install_missing wrk python3 curl
cargo build --release --quiet --bin lbproxy --examples
rel=target/release

backend_args=()
for i in 0 1 2; do
  port=$(free_port)
  start "$LOAD_CPU" $rel/examples/http_backend --port "$port" --id $((i + 1)) --delay-ms "${DELAYS[$i]}"
  wait_port "$port"
  backend_args+=(--backend "127.0.0.1:$port")
done

echo "policy,rps,mean_us,p50_us,p99_us,p999_us,errors,share_1ms,share_5ms,share_20ms" >"$OUT/results.csv"
for policy in $POLICIES; do
  port=$(free_port); admin=$(free_port)
  taskset -c "$PROXY_CPU" $rel/lbproxy --mode http --bind 127.0.0.1 --port "$port" --admin "$admin" \
    --stats-interval 0 --policy "$policy" "${backend_args[@]}" >"$work/lb.log" 2>&1 &
  lb=$!
  wait_port "$port"; wait_port "$admin"
  taskset -c "$LOAD_CPU" wrk -t2 -c"$CONNS" -d"$DURATION" -s tools/wrk-report.lua "http://127.0.0.1:$port/" >"$work/wrk.out"
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out")
  lat=$(grep '^LATENCY' "$work/wrk.out")
  field() { sed -E "s/.* $1=([0-9.]+).*/\1/" <<<"$lat"; }
  shares=$(curl -fsS "http://127.0.0.1:$admin/stats" | python3 -c '
import json, sys
s = json.load(sys.stdin)
req = [b["requests"] for b in s["backends"]]
total = sum(req) or 1
print(",".join(f"{r / total:.3f}" for r in req))')
  kill "$lb"; wait "$lb" 2>/dev/null || true
  line="$policy,$rps,$(field mean),$(field p50),$(field p99),$(field p999),$(field errors),$shares"
  echo "$line" >>"$OUT/results.csv"
  echo "  $line"
done

python3 - "$OUT/results.csv" "$DURATION" "$CONNS" >"$OUT/report.md" <<'PY'
import csv, sys
sys.path.insert(0, "tools")
from provenance import section
path, duration, conns = sys.argv[1:4]
rows = list(csv.DictReader(open(path)))
rr = next((r for r in rows if r["policy"] == "round_robin"), None)
print("# Policy adaptivity: backends answering in 1, 5 and 20 ms\n")
print("Made by `bash tools/bench-policies.sh`. Three `http_backend --delay-ms 1|5|20` behind "
      f"`lbproxy --mode http --policy P`; `wrk -t2 -c{conns} -d{duration} -s tools/wrk-report.lua` "
      "(closed loop). Shares are requests per backend from the admin `/stats`. Latency in microseconds.\n")
print("| policy | req/s | vs round_robin | mean | p50 | p99 | p99.9 | errors | share 1 ms | share 5 ms | share 20 ms |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    ratio = f"{float(r['rps']) / float(rr['rps']):.2f}" if rr else ""
    print(f"| {r['policy']} | {float(r['rps']):.0f} | {ratio} | {r['mean_us']} | {r['p50_us']} | {r['p99_us']} | "
          f"{r['p999_us']} | {r['errors']} | {r['share_1ms']} | {r['share_5ms']} | {r['share_20ms']} |")
print("\nOne run per policy (no rounds, so no spread).\n")
print(section())
PY
echo "wrote $OUT/report.md"
python3 tools/provenance.py --publish "$OUT"
