#!/usr/bin/env bash
# Runs every compiled *.test.js under dist/ with Node's built-in runner. --unit skips the
# namespace lab tests (test/netns), which need root and the kernel features listed in LAB.md.
# Under CI=true a skipped test fails the run, with the test's name and its reason: a CI run that
# could not exercise the kernel must not look green.
# The namespace files whose gateways honour SLUICE_TEST_WORKERS (test/kit/workers.ts) run a second
# time with SLUICE_TEST_WORKERS=2: the gateway then runs `workers: 2` over two queues with
# --queue-balance (docs/config.md and docs/nat.md, workers). That is every NAT, DHCP, steering and
# policy file that starts a gateway, and fail-closed: about 4 minutes on top of the first pass's
# ~21 (each file's time in both modes: bench/RESULTS.md, "Namespace tests with workers: 2").
# steer-rules starts no gateway (rules only). ha runs its pair with one thread here: its workers: 2
# run (SLUICE_TEST_WORKERS=2, ~2 min 10 s) is manual, for CI time; it passed on 3 Dec (docs/ha.md,
# "Tested"; figures in bench/RESULTS.md, "HA failover").
# worker-crash and workers set `workers: 2` themselves and run once.
set -euo pipefail
cd "$(dirname "$0")/.."
unit_only=0
[ "${1:-}" = "--unit" ] && { unit_only=1; shift; }
mapfile -t files < <(find dist/src dist/test -name '*.test.js' | sort)
if [ $unit_only = 1 ]; then
  mapfile -t files < <(printf '%s\n' "${files[@]}" | grep -v '/netns/')
fi
workers_files=()
[ $unit_only = 0 ] && mapfile -t workers_files < <(printf '%s\n' "${files[@]}" | grep -E '/netns/(nat-|dhcp-|steer-(dhcp|reload|selectors)|policy-|fail-closed)' || true)
if [ "${CI:-}" != "true" ]; then
  rc=0
  node --test --test-concurrency=1 --test-reporter=spec "$@" "${files[@]}" || rc=$?
  if [ ${#workers_files[@]} -gt 0 ]; then
    echo "--- NAT, DHCP, steering and policy namespace tests again with workers: 2 (SLUICE_TEST_WORKERS=2)"
    SLUICE_TEST_WORKERS=2 node --test --test-concurrency=1 --test-reporter=spec "$@" "${workers_files[@]}" || rc=$?
  fi
  exit $rc
fi
tap=$(mktemp /tmp/sluice-test-XXXXXX.tap)
tap2=$(mktemp /tmp/sluice-test-XXXXXX.tap)
trap 'rm -f "$tap" "$tap2"' EXIT
rc=0
node --test --test-concurrency=1 --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$tap" "$@" "${files[@]}" || rc=$?
if [ ${#workers_files[@]} -gt 0 ]; then
  echo "--- NAT, DHCP, steering and policy namespace tests again with workers: 2 (SLUICE_TEST_WORKERS=2)"
  SLUICE_TEST_WORKERS=2 node --test --test-concurrency=1 --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$tap2" "$@" "${workers_files[@]}" || rc=$?
  cat "$tap2" >> "$tap"
fi
# TAP marks a skipped test as `ok N - name # SKIP reason`.
if grep -E '^\s*ok [0-9]+ - .* # SKIP' "$tap" >/dev/null; then
  echo "CI=true: skipped tests fail the run (each needs what its reason names; see docs/LAB.md or scripts/setup.sh):" >&2
  grep -E '^\s*ok [0-9]+ - .* # SKIP' "$tap" | sed -E 's/^\s*ok [0-9]+ - /  /' >&2
  exit 1
fi
exit $rc
