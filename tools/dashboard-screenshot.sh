#!/usr/bin/env bash
# Regenerate docs/dashboard.png: three example backends (one fast, one
# 5 ms slower, one that is not running) behind lbproxy in HTTP mode with
# health checks, the ewma policy and traffic with some 404s; the dashboard
# is shot after SECONDS of real time so its charts have history.
#   bash tools/dashboard-screenshot.sh                 # writes docs/dashboard.png
#   SECONDS_RUN=20 OUT=/tmp/d.png bash tools/dashboard-screenshot.sh
# Needs chromium and python3's websockets (installed by .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${SECONDS_RUN:-75}
OUT=${OUT:-docs/dashboard.png}
BASE=${BASE_PORT:-18301}

# A debug build is enough for a picture, and is what `cargo test` leaves.
cargo build --quiet --bin lbproxy --example http_backend
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

target/debug/examples/http_backend --port "$BASE" --id 1 >/dev/null &
pids+=($!)
target/debug/examples/http_backend --port "$((BASE + 1))" --id 2 --delay-ms 5 >/dev/null &
pids+=($!)
log=$(mktemp)
target/debug/lbproxy --mode http --bind 127.0.0.1 --port 0 --admin 127.0.0.1:0 --policy ewma \
  --health-check http:/heartbeat --stats-interval 0 \
  --backend "127.0.0.1:$BASE" --backend "127.0.0.1:$((BASE + 1))" --backend "127.0.0.1:$((BASE + 2))" 2>"$log" &
pids+=($!)
# Wait (bounded) for both addresses in the log instead of sleeping.
for _ in $(seq 100); do
  grep -q "admin API on" "$log" && grep -q "listening on" "$log" && break
  sleep 0.1
done
proxy=$(grep -o 'listening on [0-9.:]*' "$log" | head -1 | cut -d' ' -f3)
admin=$(grep -o 'admin API on http://[0-9.:]*' "$log" | head -1 | sed 's|.*http://||')
[[ -n "$proxy" && -n "$admin" ]] || { cat "$log" >&2; echo "error: lbproxy did not start" >&2; exit 1; }

# Traffic in waves so the rate chart moves: mostly GET /, every fifth a 404.
(
  end=$((SECONDS + RUN + 5))
  while ((SECONDS < end)); do
    for _ in 1 2 3 4; do curl -s -o /dev/null "http://$proxy/"; done
    curl -s -o /dev/null "http://$proxy/status/404"
    if (((SECONDS / 10) % 2)); then sleep 0.01; fi
  done
) &
pids+=($!)
python3 tools/cdp_screenshot.py "http://$admin/" "$OUT" --seconds "$RUN" --width 1400 --height 900
