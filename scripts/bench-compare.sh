#!/usr/bin/env bash
# Side-by-side benchmark of sluiced and upstream nsqd on this machine.
#
# Builds sluiced and sluice-perf in release mode, then runs `sluice-perf compare` with the same
# scenario against both servers, alternating A B A B, each server pinned to SERVER_CPUS and the
# load generator to LOAD_CPUS. Prints the ratios sluiced/nsqd of throughput, p99 and peak RSS.
#
# Usage: scripts/bench-compare.sh [SCENARIO] [extra sluice-perf flags...]
#   NSQD_BIN=/path/to/nsqd   upstream nsqd (default: `nsqd` from PATH)
#   RUNS=3                   runs of each server
#   SERVER_CPUS=0            CPUs for the server under test (taskset list)
#   LOAD_CPUS=1              CPUs for sluice-perf
#   SLUICED_CORES=1          --cores for sluiced (match the number of SERVER_CPUS)
#   DURATION=10s             measured publish time per phase
# Example: NSQD_BIN=~/nsq-1.3.0/bin/nsqd scripts/bench-compare.sh bench --json > compare.json
set -euo pipefail
cd "$(dirname "$0")/.."

scenario="${1:-bench}"
shift || true
runs="${RUNS:-3}"
server_cpus="${SERVER_CPUS:-0}"
load_cpus="${LOAD_CPUS:-1}"
sluiced_cores="${SLUICED_CORES:-1}"
duration="${DURATION:-10s}"

nsqd="${NSQD_BIN:-}"
if [ -z "$nsqd" ]; then
  nsqd="$(command -v nsqd || true)"
fi
if [ -z "$nsqd" ] || [ ! -x "$nsqd" ]; then
  echo "bench-compare: no upstream nsqd found: set NSQD_BIN=/path/to/nsqd or put nsqd on PATH" >&2
  echo "bench-compare: (install an NSQ release; v1.3.0 is the reference the golden files were recorded from)" >&2
  exit 2
fi
if ! command -v taskset >/dev/null; then
  echo "bench-compare: taskset (util-linux) is needed to pin the servers and the load" >&2
  exit 2
fi

cargo build --release -p sluice-broker -p sluice-perf --bins
perf=target/release/sluice-perf
sluiced=target/release/sluiced

echo "bench-compare: A = sluiced ($sluiced --cores $sluiced_cores), B = nsqd ($nsqd: $("$nsqd" --version 2>&1 | head -1))"
echo "bench-compare: scenario $scenario, $runs runs each, servers on CPUs $server_cpus, load on CPUs $load_cpus"
exec "$perf" compare \
  --a "$sluiced --tcp-address={tcp} --http-address={http} --data-path={data} --cores=$sluiced_cores {flags}" \
  --b "$nsqd --tcp-address={tcp} --http-address={http} --data-path={data} {flags}" \
  --scenario "$scenario" --runs "$runs" --duration "$duration" \
  --server-cpus "$server_cpus" --cpus "$load_cpus" "$@"
