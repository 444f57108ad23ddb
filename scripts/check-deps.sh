#!/usr/bin/env bash
# Dependency rule of ../shared/STYLE.md section 2: `proto` is IO-free and runtime-free, so its
# normal (non-dev) dependency tree must not contain an async runtime, an HTTP stack or raw
# socket/io_uring crates. Fails, naming the offenders and the path to them, if it does.
set -euo pipefail
cd "$(dirname "$0")/.."

forbidden='glommio|tokio|hyper|socket2|io-uring|mio'

if ! tree=$(cargo tree -p sluice-proto -e normal --prefix none 2>&1); then
  echo "check-deps: 'cargo tree -p sluice-proto' failed:" >&2
  echo "$tree" >&2
  exit 1
fi
if ! grep -q '^sluice-proto v' <<<"$tree"; then
  echo "check-deps: unexpected 'cargo tree' output (no sluice-proto root):" >&2
  echo "$tree" >&2
  exit 1
fi

# Crate names are matched whole, plus their companion crates (tokio-util, hyper-util, ...).
offenders=$(grep -E "^(${forbidden})(-[A-Za-z0-9_-]+)? v" <<<"$tree" | sort -u || true)
if [ -n "$offenders" ]; then
  echo "check-deps: sluice-proto must not depend on ${forbidden//|/, } (STYLE.md section 2); found:" >&2
  echo "$offenders" | sed 's/^/  /' >&2
  for crate in $(awk '{print $1}' <<<"$offenders"); do
    echo "  path to $crate:" >&2
    cargo tree -p sluice-proto -e normal -i "$crate" 2>/dev/null | sed 's/^/    /' >&2 || true
  done
  exit 1
fi
count=$(sort -u <<<"$tree" | grep -c ' v' || true)
echo "check-deps: ok (sluice-proto has $count normal dependencies, none of ${forbidden//|/, })"
