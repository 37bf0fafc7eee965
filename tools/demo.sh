#!/usr/bin/env bash
# One-command demo: builds lbproxy, starts three example HTTP backends and
# lbproxy in front of them on 127.0.0.1:9000, shows round-robin answers,
# then keeps running for your own `curl http://127.0.0.1:9000/` until Ctrl-C.
#   bash tools/demo.sh              # interactive
#   bash tools/demo.sh --once       # show the answers and exit
#   POLICY=ip_hash PORT=9500 bash tools/demo.sh
#   BASE_PORT=18101 bash tools/demo.sh  # backends on 18101-18103 instead of 18001-18003
# A port already taken fails the demo at once (exit 1, naming the port).
set -euo pipefail
cd "$(dirname "$0")/.."
POLICY=${POLICY:-round_robin}
PORT=${PORT:-9000}
BASE=${BASE_PORT:-18001}

# Fail loudly, before building anything, when a port is taken: otherwise the
# demo could show another server's answers, or wait and fail without saying why.
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$PORT" "$BASE" "$((BASE + 1))" "$((BASE + 2))"; do
  if port_taken "$p"; then
    what="the proxy port (PORT)"
    if [[ "$p" != "$PORT" ]]; then what="a backend port (BASE_PORT to BASE_PORT+2)"; fi
    echo "error: port $p on 127.0.0.1 is taken (something already listens there), and the demo needs it as $what." >&2
    echo "       Stop what listens there, or pick other ports: PORT=9500 BASE_PORT=18101 bash tools/demo.sh" >&2
    exit 1
  fi
done

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
lb=$!
pids+=("$lb")

# Wait for readiness: the proxy answers once it and a backend are up. A proxy
# that exited (a port taken since the check) or never answers fails the demo.
ready=no
for _ in $(seq 100); do
  if curl -fs "http://127.0.0.1:$PORT/" >/dev/null 2>&1; then ready=yes; break; fi
  if ! kill -0 "$lb" 2>/dev/null; then
    echo "error: lbproxy exited before serving on 127.0.0.1:$PORT (its error is above)" >&2
    exit 1
  fi
  sleep 0.1
done
if [[ $ready == no ]]; then
  echo "error: lbproxy did not answer on http://127.0.0.1:$PORT/ within 10 s" >&2
  exit 1
fi

echo "--- six requests through lbproxy ($POLICY), each a new connection:"
for _ in $(seq 6); do
  printf '  %s\n' "$(curl -fsS "http://127.0.0.1:$PORT/")"
done
if [[ "${1:-}" == "--once" ]]; then exit 0; fi
echo "--- lbproxy is serving on http://127.0.0.1:$PORT/ (Ctrl-C stops everything)"
wait "${pids[-1]}"
