#!/usr/bin/env bash
# Runs every compiled *.test.js under dist/ with Node's built-in runner. --unit skips the
# namespace lab tests (test/netns), which need root and the kernel features listed in LAB.md.
set -euo pipefail
cd "$(dirname "$0")/.."
unit_only=0
[ "${1:-}" = "--unit" ] && { unit_only=1; shift; }
mapfile -t files < <(find dist/src dist/test -name '*.test.js' | sort)
if [ $unit_only = 1 ]; then
  mapfile -t files < <(printf '%s\n' "${files[@]}" | grep -v '/netns/')
fi
exec node --test --test-concurrency=1 --test-reporter=spec "$@" "${files[@]}"
