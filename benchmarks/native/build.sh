#!/bin/bash
# Builds benchmarks/native/train_bench: tabsight's native sources (all of
# native/ but the N-API layer) and a C++ driver, linked against a LibTorch.
# For GPU nodes without Node.js; no cmake needed.
#
#   bash benchmarks/native/build.sh [OUT_DIR]      (default build/bench)
#
# LibTorch: $TORCH_DIR (an official LibTorch root, or pip's torch folder),
# else the python3 torch package when it ships headers (pip's CUDA wheels
# do), else Debian's libtorch-dev. With libtorch_cuda present the binary
# links it without --as-needed, so CUDA is registered at start-up.
# Compiles on all cores ($JOBS to override).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${1:-$root/build/bench}
jobs=${JOBS:-$(nproc)}
mkdir -p "$out/obj"

T=${TORCH_DIR:-}
if [ -z "$T" ]; then
  T=$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))' 2>/dev/null || true)
fi
if [ -n "$T" ] && [ -d "$T/include/torch/csrc/api/include" ]; then
  inc=(-isystem "$T/include" -isystem "$T/include/torch/csrc/api/include")
  libdir="$T/lib"
  abi=$(python3 -c 'import torch; print(int(torch.compiled_with_cxx11_abi()))' 2>/dev/null || echo 1)
else
  inc=(-isystem /usr/include/torch/csrc/api/include)
  libdir=$(dirname "$(ls /usr/lib/*/libtorch_cpu.so | head -1)")
  abi=1
fi
# libstdc++ first among the needed libraries: pip's libtorch.so and
# libtorch_cpu.so export copies of libstdc++ functions linked into them
# statically (manylinux's libstdc++_nonshared: std::filesystem among them).
# Listed after them, the driver's std::filesystem calls bound to those copies
# (LD_DEBUG=bindings on the H200 node, 2026-11-28), and fs::remove_all
# segfaulted at the end of every training run; with libstdc++ first they bind
# to the system library and the driver exits 0. (The addon is not affected
# in Node, whose own libstdc++ is searched first, and native/ does not use
# std::filesystem.)
libs=(-L"$libdir" -Wl,-rpath,"$libdir" -Wl,--no-as-needed -lstdc++ -ltorch -ltorch_cpu -lc10)
if [ -e "$libdir/libtorch_cuda.so" ]; then
  libs+=(-ltorch_cuda -lc10_cuda)
fi
# OpenMP: ATen's at::parallel_for is a header template that runs serially in
# code compiled without -fopenmp. Link the OpenMP runtime LibTorch itself uses
# (official builds and pip's torch bundle a libgomp with a hashed name).
gomp=$(ls "$libdir"/libgomp-*.so* 2>/dev/null | head -1 || true)
if [ -n "$gomp" ]; then libs+=("$gomp"); else libs+=(-fopenmp); fi
libs+=(-Wl,--as-needed -pthread -rdynamic)
echo "train_bench: LibTorch at $libdir (cxx11 abi $abi, cuda: $([ -e "$libdir/libtorch_cuda.so" ] && echo yes || echo no), OpenMP: ${gomp:-the compiler default}), $jobs jobs" >&2

cd "$root"
mapfile -t srcs < <(find native -name '*.cc' ! -name 'napi_*' ! -name 'addon.cc' | sort; echo benchmarks/native/train_bench.cc)
flags=(-std=c++17 -O2 -DNDEBUG -fopenmp -D_GLIBCXX_USE_CXX11_ABI="$abi" -Inative "${inc[@]}" -Wall -Wno-unused-parameter)
export out
printf '%s\n' "${srcs[@]}" | xargs -P "$jobs" -I{} bash -c '
  obj="$out/obj/$(echo "{}" | tr / _).o"
  g++ '"${flags[*]@Q}"' -c "{}" -o "$obj" || exit 1'
g++ -o "$out/train_bench" "$out"/obj/*.o "${libs[@]}"
echo "$out/train_bench"
