#!/usr/bin/env bash
# Accept modes side by side: lbproxy --workers 2 with --accept exclusive (one
# listening socket per frontend, EPOLLEXCLUSIVE, at most 4 accepts a turn)
# and --accept reuseport (a SO_REUSEPORT socket per worker), with --workers 1
# for reference. HTTP mode, nothing pinned (proxy, wrk and origin share the
# cores, as in bench-workers). Besides requests/s, how evenly the two workers
# shared the work: per round and test, each worker's share of the
# connections accepted and of the requests served (from /stats `workers`).
# Writes measurements/accept/<YYYY-MM-DD-HHMM>/{report.md,results.csv,rounds.csv} (or OUT=DIR).
#   flock /tmp/bench.lock bash tools/bench-accept.sh             # 5 rounds of 5 s (about 3 minutes)
#   DURATION=2s ROUNDS=1 bash tools/bench-accept.sh              # quick look
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-5}
OUT=${OUT:-$(python3 tools/provenance.py --run-dir measurements/accept)}
work=$(mktemp -d)
mkdir -p "$OUT"
# shellcheck source=tools/bench-lib.sh
source tools/bench-lib.sh
unpinned
install_missing wrk nginx python3 curl
ulimit -n "$(ulimit -Hn)"
cargo build --release --quiet --bin lbproxy
rel=target/release

nginx_origin "$CPUS"

declare -A port admin
lb() { # lb NAME WORKERS ACCEPT
  port[$1]=$(free_port)
  admin[$1]=$(free_port)
  start "$CPUS" $rel/lbproxy --mode http --bind 127.0.0.1 --port "${port[$1]}" --stats-interval 0 \
    --workers "$2" --accept "$3" --admin "127.0.0.1:${admin[$1]}" \
    --backend "127.0.0.1:$H1" --backend "127.0.0.1:$H2"
}
lb w1 1 exclusive
lb exclusive 2 exclusive
lb reuseport 2 reuseport
targets=(w1 exclusive reuseport)
for t in "${targets[@]}"; do wait_port "${port[$t]}"; done

# Per worker "sessions requests" from /stats, one line each.
workers_now() {
  curl -s --max-time 5 "http://127.0.0.1:${admin[$1]}/stats" | python3 -c '
import json, sys
for w in json.load(sys.stdin)["workers"]:
    print(w["sessions"], w["requests"])'
}
# busier_share BEFORE AFTER FIELD: the busier worker's share (%) of what FIELD
# (1 sessions, 2 requests) grew by between two workers_now; 50 is even.
busier_share() {
  python3 - "$1" "$2" "$3" <<'PY'
import sys
before, after, field = sys.argv[1].split("\n"), sys.argv[2].split("\n"), int(sys.argv[3]) - 1
grew = [int(a.split()[field]) - int(b.split()[field]) for a, b in zip(after, before)]
print("%.1f" % (100 * max(grew) / (sum(grew) or 1)))
PY
}
# Workers publish their counters every half second: wait for the totals to
# reach what wrk reported, so a round's deltas are complete (bounded).
settle() {
  local t=$1 prev="" now
  for _ in $(seq 20); do
    sleep 0.6
    now=$(workers_now "$t")
    [[ $now == "$prev" ]] && break
    prev=$now
  done
  echo "$now"
}

init_results
: >"$work/raw.csv"
for round in $(seq "$ROUNDS"); do
  echo "== round $round of $ROUNDS ($DURATION each)"
  for t in "${targets[@]}"; do
    url="http://127.0.0.1:${port[$t]}/"
    before=$(settle "$t")
    raw_add new_conn_rps "$t" "$(wrk_run "$url" "Connection: close")" req/s
    raw_add new_conn_p99 "$t" "$(wrk_latency 99)" us
    after=$(settle "$t")
    [[ $t == w1 ]] || raw_add new_conn_busier_worker "$t" "$(busier_share "$before" "$after" 1)" "% of conns"
    raw_add keepalive_rps "$t" "$(wrk_run "$url")" req/s
    raw_add keepalive_p99 "$t" "$(wrk_latency 99)" us
    done_ka=$(settle "$t")
    if [[ $t != w1 ]]; then
      raw_add keepalive_busier_worker_conns "$t" "$(busier_share "$after" "$done_ka" 1)" "% of conns"
      raw_add keepalive_busier_worker_reqs "$t" "$(busier_share "$after" "$done_ka" 2)" "% of reqs"
    fi
  done
done
record_medians

# Over the whole run, per worker: connections accepted, requests served.
total_spread() {
  workers_now "$1" | awk '{ s[NR] = $1; r[NR] = $2; ts += $1; tr += $2 }
    END { for (i = 1; i <= NR; i++) printf "%sworker %d: %d conns (%.1f%%), %d reqs (%.1f%%)", (i > 1 ? "; " : ""), i - 1, s[i], 100 * s[i] / ts, r[i], 100 * r[i] / tr }'
}

cat >"$work/commands.md" <<MD
## Commands

- Each figure is the median of $ROUNDS rounds; in each round the targets run one after another (all rounds: rounds.csv).
- Nothing is pinned: the proxy, \`wrk\` and the origin share all $(nproc) cores.
- new_conn_rps, new_conn_p99: \`wrk -t2 -c100 -d$DURATION -H "Connection: close"\` (a new client connection per request).
- keepalive_rps, keepalive_p99: \`wrk -t2 -c100 -d$DURATION\` (100 keep-alive clients, opened at the start of each run).
- *_busier_worker*: of what the round's run added to /stats \`workers\` (connections accepted, requests served),
  the share of the busier of the two workers: 50 is an even spread, 100 all on one worker.
- Origin: one nginx (\`worker_processes 1\`, \`return 200\` with a short body) on two ports.
- lbproxy: \`--mode http --workers 1\` (w1), \`--workers 2 --accept exclusive\`, \`--workers 2 --accept reuseport\`; round_robin, persistent backend connections.
- Over the whole run, exclusive: $(total_spread exclusive).
- Over the whole run, reuseport: $(total_spread reuseport).
MD
PLACEMENT="nothing pinned: proxy, load generator and origin share every core." \
  python3 tools/bench_report.py "$OUT/results.csv" "Accept modes: --workers 2 with --accept exclusive vs reuseport (bash tools/bench-accept.sh)" \
  "$work/commands.md" reuseport/exclusive exclusive/w1 reuseport/w1 >"$OUT/report.md"
echo "wrote $OUT/report.md"
python3 tools/provenance.py --publish "$OUT"
