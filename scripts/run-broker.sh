#!/usr/bin/env bash
# Builds sluiced in release mode and runs it with its embedded defaults (nsqd's: TCP 0.0.0.0:4150,
# HTTP 0.0.0.0:4151). Data goes to ./data unless SLUICE_DATA_PATH says otherwise. Extra arguments
# are passed to sluiced, e.g. `bash scripts/run-broker.sh --tcp-address=127.0.0.1:4150`.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --bin sluiced
data_path=${SLUICE_DATA_PATH:-./data}
mkdir -p "$data_path"
exec "${CARGO_TARGET_DIR:-target}/release/sluiced" --data-path="$data_path" "$@"
