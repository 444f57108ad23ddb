#!/usr/bin/env bash
# Installs what a fresh Debian machine with the Rust toolchain needs to build Sluice and run all
# of its tests: Debian packages only when something is missing (python3 venv support, Node.js and
# npm, gcc, openssl, chromium), the pynsq client into ./.venv, nsqjs into tests/compat/node_modules
# and playwright-core into tests/browser/node_modules.
# Idempotent and non-interactive: a second run changes nothing and takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*"; }
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  sudo_cmd=(sudo -n)
fi

command -v cargo >/dev/null || { say "cargo not found: install the Rust toolchain (rustup) first" >&2; exit 1; }

# --- Debian packages, only for what is missing ---------------------------------------------------
packages=()
command -v python3 >/dev/null || packages+=(python3)
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  packages+=(python3-venv)
fi
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)
command -v cc >/dev/null || packages+=(gcc)
# The TLS compatibility suites make their certificates with the openssl command line.
command -v openssl >/dev/null || packages+=(openssl)
# The browser test of sluice-admin (tests/browser) drives Debian's headless Chromium.
command -v chromium >/dev/null || packages+=(chromium)
if [ "${#packages[@]}" -gt 0 ]; then
  say "installing Debian packages: ${packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
else
  say "Debian packages: nothing missing"
fi

# --- pynsq in ./.venv ----------------------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  python3 -m venv .venv
fi
if .venv/bin/python -m pip freeze 2>/dev/null | sort | diff -q - <(grep -E '^[A-Za-z]' tests/compat/requirements.txt | sort) >/dev/null; then
  say "python clients: up to date ($(grep -c '==' tests/compat/requirements.txt) pinned packages)"
else
  say "installing python clients (tests/compat/requirements.txt)"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/compat/requirements.txt
fi
.venv/bin/python -c 'import nsq, pytest, tornado' || { say "pynsq import failed after install" >&2; exit 1; }

# --- nsqjs in tests/compat/node_modules ----------------------------------------------------------
if [ -f tests/compat/node_modules/nsqjs/package.json ] &&
   [ tests/compat/node_modules/.package-lock.json -nt tests/compat/package-lock.json ]; then
  say "node clients: up to date"
else
  say "installing node clients (npm ci in tests/compat)"
  (cd tests/compat && npm ci --no-audit --no-fund --loglevel=error)
fi
node -e 'require("./tests/compat/node_modules/nsqjs")' || { say "nsqjs require failed after install" >&2; exit 1; }

# --- playwright-core in tests/browser/node_modules (never downloads a browser) ---------------------
if [ -f tests/browser/node_modules/playwright-core/package.json ] &&
   [ tests/browser/node_modules/.package-lock.json -nt tests/browser/package-lock.json ]; then
  say "browser test driver: up to date"
else
  say "installing the browser test driver (npm ci in tests/browser)"
  (cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi
node -e 'require("./tests/browser/node_modules/playwright-core")' || { say "playwright-core require failed after install" >&2; exit 1; }

say "done (python $(.venv/bin/python -c 'import sys; print(sys.version.split()[0])'), node $(node --version), $(cargo --version))"
