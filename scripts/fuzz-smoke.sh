#!/usr/bin/env bash
# Smoke-runs every fuzz target of the sluice-fuzz crate for a few seconds each.
#
# Usage: scripts/fuzz-smoke.sh [SECONDS]   (default 5, or $FUZZ_SECONDS)
#
# Builds the targets on stable (`cargo build -p sluice-fuzz --release`, no coverage
# instrumentation: this proves the harness runs and catches shallow crashes; coverage-guided
# fuzzing is `RUSTC_BOOTSTRAP=1 cargo fuzz run <target>`), then runs each binary directly with
# libFuzzer's -max_total_time. The `canary` target must crash (it is given its trigger word as
# a dictionary entry): if it survives the harness is broken. Every other target must survive.
# Crash inputs and logs go to a temporary directory, printed on failure; nothing is left in
# the work tree.
set -uo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-${FUZZ_SECONDS:-5}}"
targets=(v2_decode identify_json lookup_decode segment_record)

if ! cargo build -p sluice-fuzz --release; then
  echo "fuzz-smoke: the fuzz crate does not build"
  exit 1
fi
bin_dir="${CARGO_TARGET_DIR:-target}/release"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

passed=0
failed=0

# "Done 123 runs in 5 second(s)" -> "123 runs in 5 s"
runs() { sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1 runs in \2 s/p' "$1" | tail -1; }

printf 'kw="CANARY"\n' >"$work/canary.dict"
if "$bin_dir/canary" -max_total_time="$seconds" -dict="$work/canary.dict" \
  -artifact_prefix="$work/canary-" >"$work/canary.log" 2>&1; then
  echo "FAIL canary: survived ${seconds}s; the fuzzing harness does not report crashes"
  failed=$((failed + 1))
elif grep -q "canary found" "$work/canary.log"; then
  echo "ok   canary: crashed as it must"
  passed=$((passed + 1))
else
  echo "FAIL canary: failed without finding its input:"
  tail -20 "$work/canary.log"
  failed=$((failed + 1))
fi

for target in "${targets[@]}"; do
  log="$work/$target.log"
  if "$bin_dir/$target" -max_total_time="$seconds" -artifact_prefix="$work/$target-" \
    >"$log" 2>&1; then
    echo "ok   $target: $(runs "$log")"
    passed=$((passed + 1))
  else
    echo "FAIL $target:"
    tail -40 "$log"
    for crash in "$work/$target-"*; do
      [ -e "$crash" ] && echo "crash input (base64): $(base64 -w0 "$crash")"
    done
    failed=$((failed + 1))
  fi
done

echo "fuzz-smoke: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
