#!/usr/bin/env bash
# One-command demo: builds lbproxy, starts three example HTTP backends and
# lbproxy in front of them on 127.0.0.1:9000, shows round-robin answers,
# then keeps running for your own `curl http://127.0.0.1:9000/` until Ctrl-C.
#   bash tools/demo.sh              # interactive
#   bash tools/demo.sh --once       # show the answers and exit
#   POLICY=ip_hash PORT=9500 bash tools/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
POLICY=${POLICY:-round_robin}
PORT=${PORT:-9000}
BASE=${BASE_PORT:-18001}

if ! command -v curl >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl
fi
cargo build --release --quiet --bin lbproxy --example http_backend
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

backends=()
for i in 1 2 3; do
  port=$((BASE + i - 1))
  target/release/examples/http_backend --port "$port" --id "$i" >/dev/null &
  pids+=($!)
  backends+=(--backend "127.0.0.1:$port")
done
target/release/lbproxy --bind 127.0.0.1 --port "$PORT" --policy "$POLICY" "${backends[@]}" &
pids+=($!)

# Wait for readiness: the proxy answers once it and a backend are up.
for _ in $(seq 100); do
  if curl -fs "http://127.0.0.1:$PORT/" >/dev/null 2>&1; then break; fi
  sleep 0.1
done

echo "--- six requests through lbproxy ($POLICY), each a new connection:"
for _ in $(seq 6); do
  printf '  %s\n' "$(curl -fsS "http://127.0.0.1:$PORT/")"
done
if [[ "${1:-}" == "--once" ]]; then exit 0; fi
echo "--- lbproxy is serving on http://127.0.0.1:$PORT/ (Ctrl-C stops everything)"
wait "${pids[-1]}"
