#!/usr/bin/env bash
# The test command of the README. Builds the binaries, runs the real-client compatibility suites
# (pynsq, nsqjs; installed by scripts/setup.sh), the browser test of sluice-admin (headless
# Chromium; skipped outside CI when not installed), then every Rust test in the workspace (with
# cargo-nextest when it is installed, else cargo test). Every stage runs even if an earlier one
# failed; the exit status is non-zero if any failed. The runners' own summaries are printed.
set -uo pipefail
cd "$(dirname "$0")/.."

failures=()
section() { printf '\n==== %s ====\n' "$*"; }
stage() {
  local name=$1
  shift
  if "$@"; then
    echo "---- $name: ok"
  else
    echo "---- $name: FAILED (exit $?)"
    failures+=("$name")
  fi
}

section "build: cargo build --bins"
if ! cargo build --bins; then
  echo "test.sh: the build failed; nothing was tested"
  exit 1
fi
sluiced="$(pwd)/${CARGO_TARGET_DIR:-target}/debug/sluiced"
case "${CARGO_TARGET_DIR:-}" in /*) sluiced="$CARGO_TARGET_DIR/debug/sluiced" ;; esac

section "pynsq compatibility suite (tests/compat/python)"
if .venv/bin/python -c 'import nsq, pytest' >/dev/null 2>&1; then
  stage "pynsq" env SLUICED="$sluiced" .venv/bin/python -m pytest -q -p no:cacheprovider tests/compat/python
else
  echo "pynsq is not installed in .venv: run 'bash scripts/setup.sh' first"
  failures+=("pynsq (client not installed)")
fi

section "nsqjs compatibility suite (tests/compat/node)"
if [ -f tests/compat/node_modules/nsqjs/package.json ] && command -v node >/dev/null; then
  stage "nsqjs" env SLUICED="$sluiced" node --test tests/compat/node/nsqjs.test.js
else
  echo "nsqjs is not installed in tests/compat/node_modules: run 'bash scripts/setup.sh' first"
  failures+=("nsqjs (client not installed)")
fi

section "sluice-admin in headless Chromium (tests/browser)"
if [ -f tests/browser/node_modules/playwright-core/package.json ] && command -v chromium >/dev/null &&
   command -v node >/dev/null; then
  stage "browser" env SLUICE_BIN_DIR="$(dirname "$sluiced")" CHROMIUM="$(command -v chromium)" \
    node --test tests/browser/admin.test.js
elif [ "${CI:-}" = true ]; then
  echo "chromium or playwright-core (tests/browser/node_modules) is missing: run 'bash scripts/setup.sh' first"
  failures+=("browser (chromium or playwright-core not installed)")
else
  echo "skipped: chromium or playwright-core (tests/browser/node_modules) is missing; 'bash scripts/setup.sh' installs them"
fi

# The compat suites just ran; the Rust wrapper (tests/tests/compat.rs) must not run them again.
export SLUICE_COMPAT_BY_SCRIPT=1
if cargo nextest --version >/dev/null 2>&1; then
  section "Rust tests: cargo nextest run --workspace"
  stage "cargo nextest" cargo nextest run --workspace --no-fail-fast
  section "Rust doctests: cargo test --workspace --doc"
  stage "doctests" cargo test --workspace --doc
else
  section "Rust tests: cargo test --workspace (cargo-nextest not installed)"
  stage "cargo test" cargo test --workspace --no-fail-fast
fi

section "test.sh summary"
if [ "${#failures[@]}" -gt 0 ]; then
  echo "test.sh: FAILED stages: ${failures[*]}"
  exit 1
fi
echo "test.sh: every stage passed"
