#!/usr/bin/env bash
# Record an access log from a live lbproxy (tools/record-trace.py: three
# example backends of different speeds, 16 client addresses) and replay it
# through every policy with `policy-lab replay`, into a new dated folder
# measurements/policy-lab-replay/STAMP/ (access.csv, replay.csv, report.md,
# plots); `latest` points at it. Takes seconds.
#   bash tools/policy-lab-replay.sh [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
SEED=${1:-1}
cargo build --release --quiet --bin lbproxy --bin policy-lab --bin plot --example http_backend
dir=$(python3 tools/provenance.py --run-dir measurements/policy-lab-replay)
mkdir -p "$dir"
python3 tools/record-trace.py "$dir/access.csv"
target/release/policy-lab replay --trace "$dir/access.csv" --seed "$SEED" --out "$dir"
python3 tools/provenance.py --publish "$dir"
