#!/usr/bin/env bash
# Builds the C++ addon. Uses the distribution's Node headers when they are installed (no download:
# these machines reach only the package registries).
set -euo pipefail
cd "$(dirname "$0")/.."
args=(rebuild --release)
for d in "${npm_config_nodedir:-}" /usr /usr/local; do
  if [ -n "$d" ] && [ -f "$d/include/node/node_api.h" ]; then args+=(--nodedir="$d"); break; fi
done
exec npx --no-install node-gyp "${args[@]}" >/dev/null
