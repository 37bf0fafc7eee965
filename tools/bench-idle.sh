#!/usr/bin/env bash
# Memory per idle proxied connection: IDLE_CONNS client connections opened
# through each proxy (TCP mode), each proven to reach a backend with one
# round trip, then held idle; the proxy's resident memory grows by so much.
# lbproxy with 1 and 2 workers, next to HAProxy (nbthread 1), same run.
# Writes measurements/idle-memory/<YYYY-MM-DD-HHMM>/{report.md,results.csv} (or OUT=DIR).
#   bash tools/bench-idle.sh                   # 9000 held, 3 rounds (about 2 minutes)
#   IDLE_CONNS=3000 ROUNDS=1 bash tools/bench-idle.sh
#   LBPROXY=/tmp/lbproxy-before bash tools/bench-idle.sh   # another build of lbproxy
set -euo pipefail
cd "$(dirname "$0")/.."

IDLE_CONNS=${IDLE_CONNS:-9000}
ROUNDS=${ROUNDS:-3}
OUT=${OUT:-$(python3 tools/provenance.py --run-dir measurements/idle-memory)}
work=$(mktemp -d)
mkdir -p "$OUT"
# shellcheck source=tools/bench-lib.sh
source tools/bench-lib.sh
unpinned
install_missing haproxy python3
ulimit -n "$(ulimit -Hn)"
# A held connection costs the proxy two descriptors: say so before the
# proxies refuse clients for want of them.
need=$((2 * IDLE_CONNS + 64))
if (($(ulimit -n) < need)); then
  echo "bench-idle: $IDLE_CONNS connections need $need descriptors, the limit is $(ulimit -n)" >&2
  exit 1
fi
cargo build --release --quiet --bin lbproxy --examples
rel=target/release
# LBPROXY=PATH measures another build (an earlier commit's binary, say) against the same peers.
LBPROXY=${LBPROXY:-$rel/lbproxy}

S1=$(free_port); S2=$(free_port)
start "$CPUS" $rel/examples/stream_backend --port "$S1" --id 1
start "$CPUS" $rel/examples/stream_backend --port "$S2" --id 2
wait_port "$S1"; wait_port "$S2"

declare -A port pid
lb() { # lb WORKERS
  local p; p=$(free_port)
  port[lbproxy_w$1]=$p
  "$LBPROXY" --bind 127.0.0.1 --port "$p" --stats-interval 0 --workers "$1" \
    --backlog 8192 --backend "127.0.0.1:$S1" --backend "127.0.0.1:$S2" >"$work/lbproxy$1.log" 2>&1 &
  pid[lbproxy_w$1]=$!; pids+=($!)
  wait_port "$p"
}
haproxy_t1() {
  local p; p=$(free_port)
  port[haproxy]=$p
  HAPROXY_MAXCONN=$((IDLE_CONNS + 100)) haproxy_conf "$work/haproxy.cfg" tcp 1 "$p" "127.0.0.1:$S1" "127.0.0.1:$S2"
  haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
  pid[haproxy]=$!; pids+=($!)
  wait_port "$p"
}
stop() { kill "${pid[$1]}" 2>/dev/null || true; wait "${pid[$1]}" 2>/dev/null || true; }


init_results
for r in $(seq "$ROUNDS"); do
  echo "== round $r of $ROUNDS"
  for t in lbproxy_w1 lbproxy_w2 haproxy; do
    case $t in lbproxy_w*) lb "${t#lbproxy_w}" ;; haproxy) haproxy_t1 ;; esac
    read -r kib kib_at_open held_fds < <(python3 tools/hold-idle.py "${port[$t]}" "${pid[$t]}" "$IDLE_CONNS")
    raw_add idle_kib_per_conn "$t" "$kib" "KiB (lower is better)"
    raw_add kib_per_conn_at_open "$t" "$kib_at_open" "KiB (lower is better)"
    raw_add descriptors_per_conn "$t" "$(python3 -c "print(round($held_fds / $IDLE_CONNS, 2))")" "fds (lower is better)"
    stop "$t"
  done
done
record_medians

cat >"$work/commands.md" <<MD
## Commands

- \`bash tools/bench-idle.sh\` with IDLE_CONNS=$IDLE_CONNS, ROUNDS=$ROUNDS; each figure is the median of the rounds (all rounds: rounds.csv).
- Every target starts fresh for its round. One Python process opens $IDLE_CONNS connections through it (TCP
  mode, round robin over two \`stream_backend\`s), sends \`WHO\\n\` on each and checks the backend's answer
  (so every connection is proxied), then reads the proxy's VmRSS (kib_per_conn_at_open), waits 3 s (past
  lbproxy's 2 s connect timeout: no setup deadline left) and reads VmRSS and the descriptor count again
  (idle_kib_per_conn, descriptors_per_conn); the growth over the value before is divided by $IDLE_CONNS.
- lbproxy: \`$LBPROXY\` (\`$("$LBPROXY" --version)\`), \`--workers 1|2 --backlog 8192\`, defaults otherwise (splice auto: an idle session holds no pipe).
- HAProxy: \`nbthread 1\`, \`mode tcp\`, \`maxconn $((IDLE_CONNS + 100))\`.
MD
PLACEMENT="nothing pinned." \
  python3 tools/bench_report.py "$OUT/results.csv" "Memory per idle proxied connection, $IDLE_CONNS held (bash tools/bench-idle.sh)" \
  "$work/commands.md" lbproxy_w1/haproxy lbproxy_w2/lbproxy_w1 >"$OUT/report.md"
echo "wrote $OUT/report.md"
python3 tools/provenance.py --publish "$OUT"
