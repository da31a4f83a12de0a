#!/usr/bin/env bash
# Runs every compiled *.test.js under dist/ with Node's built-in runner. --unit skips the
# namespace lab tests (test/netns), which need root and the kernel features listed in LAB.md.
# Under CI=true a skipped test fails the run, with the test's name and its reason: a CI run that
# could not exercise the kernel must not look green.
set -euo pipefail
cd "$(dirname "$0")/.."
unit_only=0
[ "${1:-}" = "--unit" ] && { unit_only=1; shift; }
mapfile -t files < <(find dist/src dist/test -name '*.test.js' | sort)
if [ $unit_only = 1 ]; then
  mapfile -t files < <(printf '%s\n' "${files[@]}" | grep -v '/netns/')
fi
if [ "${CI:-}" != "true" ]; then
  exec node --test --test-concurrency=1 --test-reporter=spec "$@" "${files[@]}"
fi
tap=$(mktemp /tmp/sluice-test-XXXXXX.tap)
trap 'rm -f "$tap"' EXIT
rc=0
node --test --test-concurrency=1 --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$tap" "$@" "${files[@]}" || rc=$?
# TAP marks a skipped test as `ok N - name # SKIP reason`.
if grep -E '^\s*ok [0-9]+ - .* # SKIP' "$tap" >/dev/null; then
  echo "CI=true: skipped tests fail the run (each needs what its reason names; see docs/LAB.md or scripts/setup.sh):" >&2
  grep -E '^\s*ok [0-9]+ - .* # SKIP' "$tap" | sed -E 's/^\s*ok [0-9]+ - /  /' >&2
  exit 1
fi
exit $rc
