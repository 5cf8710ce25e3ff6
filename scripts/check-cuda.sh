#!/usr/bin/env bash
# Compile every CUDA source, and every C++ source with the CUDA backend's code paths enabled, without
# linking, on a machine that has nvcc but maybe no cuBLAS and no GPU (the development and CI machines).
# Where cuBLAS's header is missing, native/cuda/cublas_compat.h declares the entry points we use.
# So CUDA code that does not compile cannot land. Usage: npm run check:cuda  (exit 1 on any error)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${NVCC:-}" ]; then
  if [ -n "${CUDA_HOME:-}" ] && [ -x "$CUDA_HOME/bin/nvcc" ]; then NVCC=$CUDA_HOME/bin/nvcc
  elif [ -x /usr/local/cuda/bin/nvcc ]; then NVCC=/usr/local/cuda/bin/nvcc
  else NVCC=$(command -v nvcc || true); fi
fi
[ -x "$NVCC" ] || { echo "check-cuda: nvcc not found (set NVCC or put the CUDA toolkit on PATH)" >&2; exit 1; }
CUDA_HOME=$(cd "$(dirname "$(readlink -f "$NVCC")")/.." && pwd)
ARCH=${AXN_CUDA_ARCH:-90}
SHIM=()
[ -f "$CUDA_HOME/include/cublas_v2.h" ] || SHIM=(-DAXN_CUBLAS_SHIM)
NAPI_INC=$(node -p "require('node-api-headers').include_dir")
ADDON_INC=$(node -p "require('node-addon-api').include_dir")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
defs=(-DAXN_WITH_CUDA "${SHIM[@]}" -DNAPI_VERSION=9 -DNODE_ADDON_API_CPP_EXCEPTIONS -DNODE_ADDON_API_CPP_EXCEPTIONS_ALL)
fails=0
jobs=()
compile_one() {
  local f=$1 o="$out/$(echo "$1" | tr / _).o"
  case "$f" in
    *.cu) "$NVCC" -std=c++17 -O1 -arch="sm_$ARCH" -Xcompiler -Wall -Inative "${defs[@]}" -c "$f" -o "$o" ;;
    *.cc) g++ -std=c++17 -O1 -Wall -Wno-unused-parameter -fopenmp -Inative -I"$CUDA_HOME/include" -I"$NAPI_INC" -I"$ADDON_INC" "${defs[@]}" -c "$f" -o "$o" ;;
  esac
}
export -f compile_one
export NVCC ARCH out CUDA_HOME NAPI_INC ADDON_INC
files=$(ls native/*.cc native/ops/*.cc native/bind/*.cc native/cuda/*.cu native/ops/*.cu 2>/dev/null || true)
n=0
for f in $files; do
  n=$((n+1))
  if ! compile_one "$f" 2> "$out/err.txt"; then
    echo "check-cuda: FAILED $f" >&2; cat "$out/err.txt" >&2; fails=$((fails+1))
  elif [ -s "$out/err.txt" ]; then
    cat "$out/err.txt" >&2
  fi
done
[ "${#SHIM[@]}" -gt 0 ] && note=" (cuBLAS declared by native/cuda/cublas_compat.h: no cuBLAS in $CUDA_HOME)" || note=""
if [ "$fails" -gt 0 ]; then
  echo "check-cuda: $fails of $n files failed to compile with the CUDA backend enabled$note" >&2
  exit 1
fi
echo "check-cuda: $n files compiled with the CUDA backend enabled, sm_$ARCH$note"
