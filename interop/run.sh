#!/usr/bin/env bash
# Runs the independent Python implementation's tests: every spec/vectors case, the spec's worked examples, and
# live cross-tests against a relay and a provider from the Swift build.
#
#   interop/run.sh [pytest arguments]
#
# Environment: PYTHON (default python3) makes the virtual environment; CURBSIDE_BIN is the Swift binary
# (default .build/debug/curbside); CURBSIDE_REQUIRE_LIVE=1 fails instead of skipping the live tests when that
# binary is missing. Exits non-zero on any failure, and when no vector case ran.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
PY="$HERE/python"
VENV="$PY/.venv"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "interop: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
# Install only when requirements.txt changed since the last successful install.
want="$(sha256sum "$PY/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null || true)" != "$want" ]; then
  echo "interop: installing $PY/requirements.txt"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$PY/requirements.txt"
  echo "$want" > "$VENV/.requirements.sha256"
fi

export CURBSIDE_BIN="${CURBSIDE_BIN:-$ROOT/.build/debug/curbside}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

cd "$PY"
set +e
"$VENV/bin/python" -m pytest -p no:cacheprovider -rfEs tests "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e

line="$(grep -E '^vector cases: [0-9]+ ran' "$log" | tail -1 || true)"
if [ -z "$line" ]; then
  echo "interop: no vector case count reported" >&2
  [ "$rc" -ne 0 ] || rc=1
else
  ran="$(echo "$line" | sed -E 's/^vector cases: ([0-9]+) ran.*/\1/')"
  if [ "$ran" -eq 0 ] && [ $# -eq 0 ]; then
    echo "interop: no vector case ran" >&2
    [ "$rc" -ne 0 ] || rc=1
  fi
fi
exit "$rc"
