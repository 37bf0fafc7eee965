#!/usr/bin/env bash
# splice(2) in TCP mode (issue 10): one iperf3 stream and a 1 GiB transfer
# (upload + download, sha256-checked by file_client), each through
#   direct     no proxy
#   buffered   lbproxy --splice off (user-space buffers, the old data path)
#   splice     lbproxy --splice auto (64 KiB pipes, the kernel's default)
#   splice_1m  lbproxy --splice auto --pipe-size 1MiB (F_SETPIPE_SZ)
#   haproxy    HAProxy mode tcp, nbthread 1, option splice-auto
# Proxies pinned to PROXY_CPU, iperf3 / file_client / backends to LOAD_CPU.
# Rounds are interleaved (every target once, then again) and the report gives
# the median of the rounds with their spread, plus the proxy's CPU seconds per
# GiB moved (from /proc/PID/stat), where splice should show most.
# Target: iperf3 through splice at least 0.9x the direct connection.
#
#   bash tools/bench-splice.sh                         # full run (3 rounds, about 5 minutes)
#   ROUNDS=1 IPERF_SECONDS=1 BIG=16MiB OUT=/tmp/s bash tools/bench-splice.sh   # a check that it works
# Writes measurements/splice/<YYYY-MM-DD-HHMM>/{report.md,results.csv,rounds.csv}, a new
# folder per run with measurements/splice/latest pointing at it (OUT=DIR writes exactly there).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
IPERF_SECONDS=${IPERF_SECONDS:-10}
BIG=${BIG:-1GiB}
PROXY_CPU=${PROXY_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
OUT=${OUT:-$(python3 tools/provenance.py --run-dir measurements/splice)}

work=$(mktemp -d)
mkdir -p "$OUT"
# shellcheck source=tools/bench-lib.sh
source tools/bench-lib.sh
install_missing haproxy iperf3 python3
ulimit -n "$(ulimit -Hn)"
cargo build --release --quiet --bin lbproxy --examples
rel=target/release

S1=$(free_port); IP=$(free_port)
start "$LOAD_CPU" $rel/examples/stream_backend --port "$S1" --id 1
start "$LOAD_CPU" iperf3 -s -p "$IP"
wait_port "$S1"; wait_port "$IP"

# lbproxy buffered and spliced, HAProxy spliced, each with a frontend per
# backend (stream_backend, iperf3). Idle proxies cost nothing, so all run at once.
BUF_S=$(free_port); BUF_I=$(free_port); SPL_S=$(free_port); SPL_I=$(free_port)
M_S=$(free_port); M_I=$(free_port); HA_S=$(free_port); HA_I=$(free_port); ADMIN=$(free_port)
lb_config() { # lb_config MODE PORT_STREAM PORT_IPERF [ADMIN_LINE]
  cat <<TOML
[global]
stats_interval = "0"
${4:-}
[[frontend]]
name = "stream"
bind = "127.0.0.1:$2"
pool = "stream"
splice = "$1"
[[frontend]]
name = "iperf"
bind = "127.0.0.1:$3"
pool = "iperf"
splice = "$1"
[[pool]]
name = "stream"
servers = ["127.0.0.1:$S1"]
[[pool]]
name = "iperf"
servers = ["127.0.0.1:$IP"]
TOML
}
lb_config off "$BUF_S" "$BUF_I" >"$work/buffered.toml"
lb_config auto "$SPL_S" "$SPL_I" "admin = \"127.0.0.1:$ADMIN\"" >"$work/splice.toml"
lb_config auto "$M_S" "$M_I" 'pipe_size = "1MiB"' >"$work/splice_1m.toml"
taskset -c "$PROXY_CPU" $rel/lbproxy --config "$work/buffered.toml" >"$work/buffered.log" 2>&1 &
BUF_PID=$!; pids+=($BUF_PID)
taskset -c "$PROXY_CPU" $rel/lbproxy --config "$work/splice.toml" >"$work/splice.log" 2>&1 &
SPL_PID=$!; pids+=($SPL_PID)
taskset -c "$PROXY_CPU" $rel/lbproxy --config "$work/splice_1m.toml" >"$work/splice_1m.log" 2>&1 &
M_PID=$!; pids+=($M_PID)
cat >"$work/haproxy.cfg" <<CFG
global
  nbthread 1
  maxconn 1000
defaults
  mode tcp
  option splice-auto
  timeout connect 2s
  timeout client 120s
  timeout server 120s
listen stream
  bind 127.0.0.1:$HA_S
  server s1 127.0.0.1:$S1
listen iperf
  bind 127.0.0.1:$HA_I
  server i1 127.0.0.1:$IP
CFG
taskset -c "$PROXY_CPU" haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
HA_PID=$!; pids+=($HA_PID)
for p in $BUF_S $BUF_I $SPL_S $SPL_I $M_S $M_I $HA_S $HA_I; do wait_port "$p"; done

# port_of KIND TARGET, pid_of TARGET (empty for direct)
port_of() {
  case $2 in
    direct) [[ $1 == stream ]] && echo "$S1" || echo "$IP" ;;
    buffered) [[ $1 == stream ]] && echo "$BUF_S" || echo "$BUF_I" ;;
    splice) [[ $1 == stream ]] && echo "$SPL_S" || echo "$SPL_I" ;;
    splice_1m) [[ $1 == stream ]] && echo "$M_S" || echo "$M_I" ;;
    haproxy) [[ $1 == stream ]] && echo "$HA_S" || echo "$HA_I" ;;
  esac
}
pid_of() { case $1 in buffered) echo "$BUF_PID" ;; splice) echo "$SPL_PID" ;; splice_1m) echo "$M_PID" ;; haproxy) echo "$HA_PID" ;; *) echo "" ;; esac; }
# CPU seconds (user + system) the process has used.
cpu_s() { if [[ -n $1 ]]; then awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$1/stat"; else echo 0; fi; }
# per_gib CPU_BEFORE CPU_AFTER BYTES: CPU seconds per GiB moved.
per_gib() { python3 -c "import sys; c0, c1, b = map(float, sys.argv[1:]); print(round((c1 - c0) / (b / 2**30), 3) if b else 0)" "$@"; }

# iperf3 one stream: prints "GBIT_PER_S BYTES"
ip3() {
  taskset -c "$LOAD_CPU" iperf3 -c 127.0.0.1 -p "$1" -t "$IPERF_SECONDS" -J >"$work/iperf.json"
  python3 - "$work/iperf.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["end"]["sum_received"]
print(round(r["bits_per_second"] / 1e9, 2), int(r["bytes"]))
PY
}
# file_client upload + download of $BIG: prints "UP_MB_S DOWN_MB_S"
fc() {
  taskset -c "$LOAD_CPU" $rel/examples/file_client --lb "127.0.0.1:$1" --size "$BIG" --parallel 1 >"$work/fc.out"
  grep -q "verified both ways: OK" "$work/fc.out" || { cat "$work/fc.out" >&2; exit 1; }
  sed -E 's/.*upload ([0-9.]+) MB\/s, download ([0-9.]+) MB\/s.*/\1 \2/' "$work/fc.out"
}
big_bytes=$(python3 -c "
import re, sys
m = re.fullmatch(r'(\d+)\s*([KMG]?)(i?B)?', sys.argv[1].strip(), re.I)
print(int(m.group(1)) * {'': 1, 'K': 2**10, 'M': 2**20, 'G': 2**30}[m.group(2).upper()] * 2)" "$BIG")

targets=(direct buffered splice splice_1m haproxy)
for r in $(seq "$ROUNDS"); do
  echo "== round $r of $ROUNDS"
  for t in "${targets[@]}"; do
    pid=$(pid_of "$t")
    c0=$(cpu_s "$pid")
    read -r gbit bytes < <(ip3 "$(port_of iperf "$t")")
    c1=$(cpu_s "$pid")
    raw_add iperf3 "$t" "$gbit" Gbit/s
    if [[ -n $pid ]]; then raw_add iperf3_cpu_per_gib "$t" "$(per_gib "$c0" "$c1" "$bytes")" "CPU s/GiB (lower is better)"; fi
    c0=$(cpu_s "$pid")
    read -r up down < <(fc "$(port_of stream "$t")")
    c1=$(cpu_s "$pid")
    raw_add "transfer_${BIG}_upload" "$t" "$up" MB/s
    raw_add "transfer_${BIG}_download" "$t" "$down" MB/s
    if [[ -n $pid ]]; then raw_add transfer_cpu_per_gib "$t" "$(per_gib "$c0" "$c1" "$big_bytes")" "CPU s/GiB (lower is better)"; fi
  done
done
init_results
record_medians

# What the spliced lbproxy did: bytes through pipes, fallbacks to buffers, pipes left.
stats=$(python3 - "$ADMIN" <<'PY'
import json, sys, urllib.request
v = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/stats", timeout=5))
print(f"bytes_spliced {v['bytes_spliced']}, splice_fallbacks {v['splice_fallbacks']}, "
      f"pipes_in_use {v['pipes_in_use']} after the run")
PY
)
verdict=$(python3 - "$OUT/results.csv" <<'PY'
import csv, sys
v = {(r["test"], r["target"]): float(r["value"]) for r in csv.DictReader(open(sys.argv[1]))}
direct = v[("iperf3", "direct")]
said = []
for t in ("splice", "splice_1m"):
    ratio = v[("iperf3", t)] / direct
    said.append(f"iperf3 through {t} is {ratio:.2f}x the direct connection (target 0.9x: "
                + ("met)" if ratio >= 0.9 else "NOT met)"))
print("; ".join(said) + ".")
PY
)
echo "$verdict"

cat >"$work/commands.md" <<MD
## Commands

- \`iperf3 -c 127.0.0.1 -p PORT -t $IPERF_SECONDS\` (one stream) to one \`iperf3 -s\`, directly and through each proxy.
- \`file_client --size $BIG --parallel 1\` against one \`stream_backend\`: upload then download, sha256 checked on both.
- lbproxy: one process with \`splice = "off"\` (buffered: 64 KiB buffers), one with \`splice = "auto"\`
  (64 KiB kernel pipes), one with \`splice = "auto"\` and \`pipe_size = "1MiB"\` (splice_1m), each a TCP
  frontend per backend; HAProxy 1 thread, \`mode tcp\`, \`option splice-auto\` (its default pipe size).
- Proxies on CPU $PROXY_CPU, load and backends on CPU $LOAD_CPU; $ROUNDS interleaved rounds, medians (min-max).
- CPU s/GiB: the proxy's user + system time during the run over the bytes it moved (iperf3's received bytes;
  for the transfer, upload + download); /proc counts CPU time in 10 ms ticks, so short runs read coarse.

## Result

- $verdict
- Spliced lbproxy: $stats.
MD
python3 tools/bench_report.py "$OUT/results.csv" "splice(2) in TCP mode: direct vs buffered vs splice vs HAProxy splice-auto (bash tools/bench-splice.sh)" \
  "$work/commands.md" splice/direct splice_1m/direct buffered/direct splice/buffered splice/haproxy >"$OUT/report.md"
echo "wrote $OUT/report.md"
python3 tools/provenance.py --publish "$OUT"
