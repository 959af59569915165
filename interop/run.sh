#!/usr/bin/env bash
# Runs the Python and Node interop tests against the broker binary in
# $JUNCTION_BIN (make interop builds it). Each test starts its own broker.
set -euo pipefail
cd "$(dirname "$0")"

: "${JUNCTION_BIN:?set JUNCTION_BIN to the broker binary (make interop does)}"
export JUNCTION_BIN
PYTHON=${PYTHON:-/usr/bin/python3}

shopt -s nullglob
py=(python/test_*.py)
if ((${#py[@]})); then
	echo "interop: python (${#py[@]} files)"
	"$PYTHON" -m unittest discover -s python -p 'test_*.py' -v
else
	echo "interop: python: no tests"
fi

js=(node/test/*.test.mjs)
if ((${#js[@]})); then
	echo "interop: node (${#js[@]} files)"
	(cd node && node --test --test-timeout=120000 test/)
else
	echo "interop: node: no tests"
fi
