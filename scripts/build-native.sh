#!/usr/bin/env bash
# Builds the C++ addon into build/Release (what a development checkout loads), then copies it to
# prebuilds/linux-x64/sluice.napi.glibc.node, the prebuilt addon the npm package ships
# (docs/operator.md#install). node-gyp-build loads build/Release first and the prebuild otherwise;
# the name follows prebuildify's convention (napi: one binary for every Node.js with N-API 8).
# Uses the distribution's Node headers when they are installed (no download: these machines reach
# only the package registries).
set -euo pipefail
cd "$(dirname "$0")/.."
args=(rebuild --release)
for d in "${npm_config_nodedir:-}" /usr /usr/local; do
  if [ -n "$d" ] && [ -f "$d/include/node/node_api.h" ]; then args+=(--nodedir="$d"); break; fi
done
npx --no-install node-gyp "${args[@]}" >/dev/null

# The directory and the libc tag name the machine that built it (linux-x64 and glibc here); a
# package installed where no prebuild fits builds the addon at install time (node-gyp-build).
libc=glibc
[ -f /etc/alpine-release ] && libc=musl
dir="prebuilds/$(node -p 'process.platform + "-" + process.arch')"
rm -rf prebuilds
mkdir -p "$dir"
cp build/Release/sluice_native.node "$dir/sluice.napi.$libc.node"
