#!/usr/bin/env bash
# The segment log's cost, measured on this machine: PUB msgs/s of the bench_writer shape
# (200-byte messages, MPUB 200) into sluiced --cores 1 (pinned to CPU 0, sluice-perf on CPU 1)
# for: a pure in-memory topic (#ephemeral, never written), the default (--mem-queue-size 10000),
# --mem-queue-size 0, and --sync-mode=always (fdatasync before every OK, group commit). Each
# figure is also given as a ratio to the in-memory one from the same run, and the strict run's
# fsyncs per second. Usage: scripts/bench-storage.sh [SECONDS] (default 10).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
cargo build --release -q -p sluice-broker -p sluice-perf --bins
bin=target/release
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

run() { # name topic sluiced-flags...
  local name=$1 topic=$2
  shift 2
  local data="$work/$name"
  taskset -c 0 "$bin/sluiced" --cores=1 --tcp-address=127.0.0.1:0 --http-address=127.0.0.1:0 \
    --data-path="$data" "$@" 2>"$work/$name.log" &
  local pid=$!
  local addr=""
  for _ in $(seq 100); do
    addr=$(sed -n 's/.*TCP: listening on \([^ ]*\).*/\1/p' "$work/$name.log" | head -n1)
    [ -n "$addr" ] && break
    sleep 0.1
  done
  local rate
  rate=$("$bin/sluice-perf" pub --scenario bench --nsqd-tcp-address "$addr" --topic "$topic" \
    --duration "${secs}s" --warmup 2s --cpus 1 --quiet --json |
    python3 -c 'import json,sys; r=json.load(sys.stdin); print(int(r["publish"]["msgs_per_s"]))')
  kill -TERM "$pid"
  wait "$pid" || true
  local fsyncs
  fsyncs=$(sed -n 's/.*STORAGE: shard 0: .* \([0-9]*\) fsyncs.*/\1/p' "$work/$name.log")
  echo "$name $rate ${fsyncs:-0}"
}

results=$(
  run in-memory 'bench#ephemeral'
  run default bench
  run mem-queue-0 bench --mem-queue-size=0
  run strict bench --sync-mode=always
)
base=$(echo "$results" | awk '$1=="in-memory"{print $2}')
printf '%-12s %12s %8s %12s\n' run msgs/s ratio fsyncs/s
echo "$results" | while read -r name rate fsyncs; do
  awk -v n="$name" -v r="$rate" -v b="$base" -v f="$fsyncs" -v s="$((secs + 2))" \
    'BEGIN { printf "%-12s %12d %8.2f %12.0f\n", n, r, r / b, f / s }'
done
