#!/usr/bin/env bash
# Compiles every native source (the N-API layer included) against another
# LibTorch's headers, without linking: does our C++ still build against the
# LibTorch a GPU node will use? Run it before spending device time.
#
#   bash scripts/check-torch-api.sh LIBTORCH_ROOT [extra g++ flags...]
#
# LIBTORCH_ROOT holds include/ (an official LibTorch zip, or pip's torch
# folder). The addon's defines are used, Gloo's where gloo's headers are
# found (in LIBTORCH_ROOT/include or the system's). For the NCCL path pass
# -DTABSIGHT_HAVE_NCCL=1 -DUSE_C10D_NCCL with -isystem for CUDA's and NCCL's
# include directories (benchmarks/cuda.sh does). $JOBS compiles in parallel
# (default 2). Needs node_modules/node-addon-api and node-api-headers.
# Prints one line per file and exits non-zero if any fails; each file's
# compiler output goes to $OUT (default a temporary folder).
#
# g++ also searches /usr/include, so on a machine with Debian's
# libtorch-dev a header that the other LibTorch lacks can be taken from
# 1.13 instead of failing: the check is exact only where no other LibTorch
# is installed in the system include path.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
T=${1:?usage: check-torch-api.sh LIBTORCH_ROOT [g++ flags...]}
shift
inc="$T/include"
[ -d "$inc/torch/csrc/api/include" ] || { echo "no LibTorch headers under $inc" >&2; exit 2; }
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
version=$(cat "$T/build-version" 2>/dev/null || grep -m1 'TORCH_VERSION ' -A1 "$inc/torch/csrc/api/include/torch/version.h" | tail -1)
echo "LibTorch headers: $inc (${version:-version unknown}); logs in $out" >&2

gloo=""
if [ -f "$inc/gloo/config.h" ] || echo '#include <gloo/config.h>' | g++ -fsyntax-only -x c++ -isystem "$inc" - 2>/dev/null; then
  gloo="-DTABSIGHT_HAVE_GLOO=1 -DUSE_C10D_GLOO"
else
  echo "no gloo headers: the Gloo process group is left out" >&2
fi
export root inc out gloo
export flags="$*"
compile() {
  local f=$1 log
  log="$out/$(echo "$f" | tr / _).log"
  # shellcheck disable=SC2086
  if g++ -fsyntax-only -std=gnu++17 -fopenmp -D_GLIBCXX_USE_CXX11_ABI=1 \
      -DBUILDING_NODE_EXTENSION -DNAPI_VERSION=8 -DNODE_ADDON_API_CPP_EXCEPTIONS \
      -DNODE_ADDON_API_CPP_EXCEPTIONS_ALL -DNODE_ADDON_API_DISABLE_DEPRECATED \
      -DUSE_DISTRIBUTED $gloo $flags \
      -Wall -Wno-unused-parameter \
      -I"$root/node_modules/node-api-headers/include" -I"$root/node_modules/node-addon-api" -I"$root/native" \
      -isystem "$inc" -isystem "$inc/torch/csrc/api/include" "$root/$f" > "$log" 2>&1; then
    echo "ok   $f"
  else
    echo "FAIL $f: $(grep -m1 'error' "$log")"
  fi
}
export -f compile
cd "$root" || exit 2
results=$( { find native -name '*.cc' | sort; echo benchmarks/native/train_bench.cc; } | xargs -P "${JOBS:-2}" -I{} bash -c 'compile {}')
echo "$results" | sort -k2
failed=$(echo "$results" | grep -c '^FAIL')
echo "$(echo "$results" | grep -c '^ok') compiled, $failed failed"
[ "$failed" -eq 0 ]
