#!/bin/bash
# GPU figures for benchmarks/RESULTS.md, on a CUDA node without Node.js:
# builds tabsight's native trainer into benchmarks/native/train_bench against
# the node's (pip) CUDA LibTorch, then, alternating ours and PyTorch:
#   0. the addon built with CMake against the node's LibTorch and, when a
#      Node binary is there (on PATH, or carried as tmp/node.xz, an xz of
#      the node executable), loaded and checked on the GPU
#      (native/addon_smoke.js); without cmake, scripts/check-torch-api.sh
#      instead. Needs node_modules/node-addon-api and node-api-headers,
#      which git ignores: carry them, or the bundle below
#   1. the card's measured matmul peak (fp32, tf32, bf16; support/gpu_peak.py)
#   2. the multimodal CLIP train step, ResNet-18 at 128 px, batch 64
#      (the CPU train-step benchmark's model), fp32 and bf16 autocast
#   3. an epoch with MMCL's cardiac augmentations and tabular corruption,
#      ResNet-18, 128 px, batch 512, 8192 subjects: tabsight (augmentation on
#      the GPU, prefetched) against the MMCL-style DataLoader pipeline
#      (support/mmcl_baseline.py, per-sample torchvision transforms in
#      workers; num_workers probed)
#   3b. through the addon with Node (needs the Node binary, the addon of
#      step 0 and dist/): node-step, benchmarks/train-step.js --device cuda
#      (the ResNet-18 step of 2., ours as pretrain() in Node against
#      support/train_step_torch.py, 3 alternating rounds of 30 steps), and
#      node-epoch, benchmarks/epoch.js --device cuda (pretrainCohort against
#      support/mmcl_baseline.py on the synthetic cardiac cohort, 1024
#      training subjects, batch 64, 5 alternating epochs, num_workers 8)
#   4. the train step with MMCL's ResNet-50 at 128 px, batch 256
#   adam-check: the multi-tensor Adam step against torch::optim on the card
#   ours-*-loop-adam: our step with TABSIGHT_MULTI_TENSOR_ADAM=0 (LibTorch's
#      per-parameter Adam), to measure the multi-tensor step's gain
#   node-resume: pretrain() aborted mid-epoch and resumed on the card,
#      against uninterrupted runs (support/resume_check.js; needs Node,
#      the addon of step 0 and dist/)
# SKIP="name ..." skips those runs (addon, peak, adam-check, ours-r18-fp32, torch-r18-fp32,
# ours-epoch, mmcl-epoch, node-step, ...; the epoch data is not made when
# both epochs are skipped).
# The addon build compiles the sources train_bench's build does, plus the
# N-API layer (5 min on 2 cores here); skip it when device time is short.
# JSON lines go to results.jsonl in $RESULTS_DIR (default ./cuda-out), logs
# beside. When $OUT is set (a device call, which brings back at most 8 files
# from $OUT), that folder is also packed into $OUT/cuda.tgz on exit.
# What git ignores and the node lacks (dist/, the node_modules packages that
# dist/ and the addon build need, the Node binary) comes from
# benchmarks/support/pack-device.sh, run here before the device call: it
# writes tmp/device-bundle.tar.xz and tmp/node.xz (about 44 MiB together)
# for the call's carry; this script unpacks the bundle into the repo.
# A stage that fails is logged and the next one runs; no new stage starts
# after $DEADLINE seconds (default 500).
#
#   bash benchmarks/cuda.sh
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${RESULTS_DIR:-$root/cuda-out}
mkdir -p "$out"
if [ -n "${OUT:-}" ]; then
  pack() { tar -czf "$OUT/cuda.tgz" -C "$out" . 2>/dev/null; }
  trap pack EXIT
  trap 'exit 143' TERM
fi
res="$out/results.jsonl"
deadline=${DEADLINE:-500}
start=$SECONDS
py=${PYTHON:-python3}
bin="$root/build/bench/train_bench"
addon_dir="$root/build/cuda-addon"
addon_failed=  # set when this call's addon build failed (an older tabsight.node may be left there)
left() { [ $((SECONDS - start)) -lt "$deadline" ]; }
stage() { echo "== $(date +%T) +$((SECONDS - start))s: $*" | tee -a "$out/log.txt"; }
run() {  # run NAME TIMEOUT CMD...: stdout lines that are JSON go to results
  local name=$1 t=$2; shift 2
  left || { stage "skip $name (deadline)"; return; }
  case " ${SKIP:-} " in *" $name "*) stage "skip $name (SKIP)"; return ;; esac
  stage "$name"
  timeout "$t" "$@" > "$out/$name.out" 2> "$out/$name.err"
  local rc=$?
  grep '^{' "$out/$name.out" | sed "s/^{/{\"run\":\"$name\",/" >> "$res"
  # On a failure, the stderr tail: train_bench's stage lines and, on a fatal signal, its backtrace.
  [ $rc -eq 0 ] || { echo "   $name failed rc=$rc: $(tail -40 "$out/$name.err")" | tee -a "$out/log.txt"; }
}

stage "machine"
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader; nproc; lscpu | grep -m1 'Model name';
  g++ --version | head -1; command -v node || echo "no node";
  $py -c 'import torch, torchvision; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), "torchvision", torchvision.__version__)'; } 2>&1 | tee "$out/machine.txt"

# dist/ and node_modules packages from support/pack-device.sh. Unpacked when
# dist/ is missing or older than the bundle (the device's copy of the tree);
# a checkout whose dist/ was compiled after packing keeps its own.
bundle="$root/tmp/device-bundle.tar.xz"
if [ -f "$bundle" ] && { [ ! -f "$root/dist/lib/index.js" ] || [ "$bundle" -nt "$root/dist/lib/index.js" ]; }; then
  stage "unpack $(basename "$bundle")"
  tar -xJf "$bundle" -C "$root" || echo "   unpacking $bundle failed" | tee -a "$out/log.txt"
fi
# Node: on PATH, else the carried tmp/node.xz, unpacked outside $out (a
# device call brings back only a few small files from there).
node_bin=$(command -v node || true)
if [ -z "$node_bin" ] && [ -f "$root/tmp/node.xz" ]; then
  mkdir -p "$root/build/node-bin" && xz -dc "$root/tmp/node.xz" > "$root/build/node-bin/node" && chmod +x "$root/build/node-bin/node" &&
    node_bin="$root/build/node-bin/node"
fi
echo "   node: ${node_bin:-none} $([ -n "$node_bin" ] && "$node_bin" --version)" | tee -a "$out/log.txt"

# The addon itself against the node's LibTorch: built with CMake as users
# build it (CMakeLists.txt, cmake/TorchFlags.cmake, cmake/Distributed.cmake;
# plain cmake with the N-API headers instead of cmake-js), then, when a Node
# binary is there (on PATH, or carried as tmp/node.xz), loaded and checked
# by benchmarks/native/addon_smoke.js: embeddings on the GPU against the CPU.
# Without cmake, scripts/check-torch-api.sh compiles every source instead.
# Both need node_modules/node-addon-api and node_modules/node-api-headers.
torch_root=$($py -c 'import os, torch; print(os.path.dirname(torch.__file__))' 2>/dev/null)
torch_cmake=$($py -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null)
if ! left; then
  stage "skip addon (deadline)"
elif case " ${SKIP:-} " in *" addon "*) true ;; *) false ;; esac; then
  stage "skip addon (SKIP)"
elif command -v cmake > /dev/null; then
  stage "addon (cmake)"
  # pip's NCCL lives outside LibTorch's include folders; cmake/Distributed.cmake
  # also looks under $NCCL_ROOT.
  nccl_root=$($py -c 'import nvidia.nccl as n; print(list(n.__path__)[0])' 2>/dev/null || true)
  echo "   NCCL_ROOT=${NCCL_ROOT:-$nccl_root}" | tee -a "$out/log.txt"
  { NCCL_ROOT=${NCCL_ROOT:-$nccl_root} timeout 120 cmake -S "$root" -B "$addon_dir" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$torch_cmake" \
      -DCMAKE_JS_INC="$root/node_modules/node-api-headers/include" &&
    timeout 400 cmake --build "$addon_dir" -j "$(nproc)"; } > "$out/addon-build.log" 2>&1
  rc=$?
  grep -E '^-- tabsight:' "$out/addon-build.log" | sed 's/^/   /' | tee -a "$out/log.txt"
  if [ $rc -ne 0 ] || [ ! -f "$addon_dir/tabsight.node" ]; then
    echo "   addon build failed rc=$rc: $(grep -m3 -E 'error|Error' "$out/addon-build.log")" | tee -a "$out/log.txt"
    addon_failed=1
  else
    echo "   addon built: $(ldd "$addon_dir/tabsight.node" | grep -oE 'lib(torch_cuda|c10_cuda|nccl)[^ ]*' | sort -u | tr '\n' ' ')" | tee -a "$out/log.txt"
    if [ -n "$node_bin" ]; then
      run addon-smoke 120 "$node_bin" "$root/benchmarks/native/addon_smoke.js" "$addon_dir/tabsight.node" cuda
      # --resume on the card: an aborted run resumed against an uninterrupted
      # one, bounded by two uninterrupted runs' own difference (about 30 s).
      [ -f "$root/dist/lib/index.js" ] && run node-resume 120 env -u NODE_PATH TABSIGHT_ADDON="$addon_dir/tabsight.node" \
        "$node_bin" "$root/benchmarks/support/resume_check.js" --device cuda
      # The same with deterministic: true: two runs and the resumed one must
      # then agree byte for byte, as on the CPU.
      [ -f "$root/dist/lib/index.js" ] && run node-resume-det 180 env -u NODE_PATH TABSIGHT_ADDON="$addon_dir/tabsight.node" \
        "$node_bin" "$root/benchmarks/support/resume_check.js" --device cuda --deterministic
    else
      echo "   no Node binary: the addon was built but not loaded" | tee -a "$out/log.txt"
    fi
  fi
else
  # Does every native source (the N-API layer and the NCCL process group
  # included) compile against this node's LibTorch and CUDA headers?
  stage "api check (no cmake)"
  mapfile -t cuda_incs < <($py - <<'PY' 2>/dev/null
import glob, os, site
roots = [p for p in site.getsitepackages() + [site.getusersitepackages()] if os.path.isdir(p)]
seen = set()
for pattern in ["nvidia/*/include", "nvidia/*/*/include"]:
    for r in roots:
        for d in sorted(glob.glob(os.path.join(r, pattern))):
            if any(os.path.exists(os.path.join(d, h)) for h in ("nccl.h", "cuda_runtime_api.h")) and d not in seen:
                seen.add(d); print(d)
for d in ["/usr/local/cuda/include"]:
    if os.path.exists(os.path.join(d, "cuda_runtime_api.h")) and d not in seen:
        print(d)
PY
)
  extra=()
  for d in "${cuda_incs[@]}"; do extra+=(-isystem "$d"); done
  if printf '%s\n' "${cuda_incs[@]}" | while read -r d; do [ -f "$d/nccl.h" ] && exit 0; done; then
    extra+=(-DTABSIGHT_HAVE_NCCL=1 -DUSE_C10D_NCCL)
  fi
  echo "   include dirs: ${cuda_incs[*]:-none}; flags: ${extra[*]:-none}" | tee -a "$out/log.txt"
  JOBS=$(nproc) OUT="$out/api-check" timeout 300 bash "$root/scripts/check-torch-api.sh" "$torch_root" "${extra[@]}" > "$out/api-check.txt" 2>&1
  echo "   api check: $(tail -1 "$out/api-check.txt")" | tee -a "$out/log.txt"
  grep '^FAIL' "$out/api-check.txt" | head -5 | tee -a "$out/log.txt"
fi

stage "build"
JOBS=$(nproc) timeout 300 bash "$root/benchmarks/native/build.sh" "$root/build/bench" > "$out/build.log" 2>&1 || { echo "build failed"; tail -30 "$out/build.log"; }

run peak 120 $py "$root/benchmarks/support/gpu_peak.py" 8192 30
# The multi-tensor Adam step on the card against torch::optim (expect
# rounding-level differences: CUDA's foreach kernels are not the loop's).
run adam-check 60 "$bin" --mode adam-check --device cuda

step() {  # step NAME ARCH BATCH PRECISION
  run "ours-$1" 120 "$bin" --mode step --device cuda --arch "$2" --batch "$3" --size 128 --steps 30 --warmup 5 --precision "$4"
  run "torch-$1" 120 $py "$root/benchmarks/support/train_step_torch.py" \
    "{\"device\":\"cuda\",\"arch\":\"$2\",\"batch\":$3,\"size\":128,\"features\":100,\"steps\":30,\"warmup\":5,\"precision\":\"$4\",\"cudnn_benchmark\":true}"
}
step r18-fp32 resnet18 64 fp32
# A/B: the trainer's multi-tensor Adam (the default off the CPU) against
# torch::optim's per-parameter loop, on the same card in the same call.
loop_adam() {  # loop_adam NAME ARCH BATCH
  run "ours-$1-loop-adam" 120 env TABSIGHT_MULTI_TENSOR_ADAM=0 "$bin" --mode step --device cuda --arch "$2" --batch "$3" --size 128 \
    --steps 30 --warmup 5 --precision fp32
}
loop_adam r18-fp32 resnet18 64
step r18-bf16 resnet18 64 bf16

skipped() { case " ${SKIP:-} " in *" $1 "*) true ;; *) false ;; esac; }
# Epoch data: the same shapes for both sides (uint8 images, 100 continuous features).
if ! { skipped ours-epoch && skipped mmcl-epoch; }; then
stage "epoch data"
data=$(mktemp -d)
$py "$root/benchmarks/support/gpu_epoch_data.py" "$data"
# 5 epochs: the first and last write their checkpoints in place, the middle
# three while the next epoch trains (Trainer::Run), as most epochs of a long run do.
run ours-epoch 200 "$bin" --mode epoch --device cuda --arch resnet18 --batch 512 --size 128 --n 8192 --epochs 5
cfg=$(cat <<JSON
{"images":"$data/images.npy","rows":"$data/rows.i32","tabular":"$data/tabular.f32","cardinalities":[$(printf '0%.0s,' $(seq 99))0],
 "corruption":0.3,"rate":0.95,"size":128,"mean":[0.5,0.5,0.5],"std":[0.25,0.25,0.25],"batch":512,
 "model":{"tabularHidden":2048,"tabularLayers":2,"projectionHidden":2048,"projectionDim":128},
 "lr":0.003,"weightDecay":0.0001,"temperature":0.1,"threads":$(nproc),"probe_workers":[8,$(nproc)],"probe_steps":3,
 "device":"cuda","cudnn_benchmark":true,"tmp":"$data","backend":"tensor"}
JSON
)
if skipped mmcl-epoch; then
  stage "skip mmcl-epoch (SKIP)"
elif left; then
  stage "mmcl-epoch"
  printf '{}\n{}\n{}\n{}\n' | timeout 240 $py "$root/benchmarks/support/mmcl_baseline.py" epoch "$cfg" > "$out/mmcl-epoch.out" 2> "$out/mmcl-epoch.err" \
    || echo "   mmcl-epoch failed: $(tail -3 "$out/mmcl-epoch.err")" | tee -a "$out/log.txt"
  grep '^{' "$out/mmcl-epoch.out" | sed 's/^{/{"run":"mmcl-epoch",/' >> "$res"
fi
fi

# The Node benchmarks through the addon built in step 0 (TABSIGHT_ADDON),
# with this script's Python for their PyTorch sides (TABSIGHT_PYTHON). Each
# PyTorch process costs about 8 s before its first step on the node (import,
# CUDA context, cuDNN autotuning), the Node side about 3 s per process
# (LibTorch's CUDA libraries).
#   node-step, about 45 s: 3 rounds, each one pretrain() call of 31 steps
#     (the first untimed; about 3-5 s with model set-up, autotuning and the
#     final checkpoint) and one fresh train_step_torch.py process of
#     1 + 30 steps (about 9 s). --layouts, --fused-ab and --winograd-ab
#     are off on CUDA.
#   node-epoch, about 45 s: the cohort generated once (n 1463, 128 px; 7.6 s
#     on 2 cores here, cached in /tmp/tabsight-bench-cache across calls on a
#     warm node), one mmcl_baseline.py process (import, model, num_workers 8
#     probed alone: warm-up + 3 steps), ours' warm-up epoch (autotuning),
#     then 5 alternating epochs a side of 16 steps of 64 with a checkpoint
#     each (under 1 s for ours, about 1 s for PyTorch's 8 workers).
#     --workers 8: the probe epoch.js makes by default (0, 1, 2) is sized
#     for 2 cores; 8 beat 16 in the H200 call of mmcl-epoch.
py_path=$(command -v "${py%% *}" || echo "${py%% *}")
if [ -z "$node_bin" ] || [ -n "$addon_failed" ] || [ ! -f "$addon_dir/tabsight.node" ] || [ ! -f "$root/dist/lib/index.js" ]; then
  stage "skip node-step, node-epoch (Node: ${node_bin:-none}; needs this call's addon, $addon_dir/tabsight.node, and dist/lib/index.js)"
else
  node_env=(env -u NODE_PATH TABSIGHT_ADDON="$addon_dir/tabsight.node" TABSIGHT_PYTHON="$py_path")
  run node-step 180 "${node_env[@]}" "$node_bin" "$root/benchmarks/train-step.js" --device cuda --rounds 3 --steps 30
  run node-epoch 240 "${node_env[@]}" "$node_bin" "$root/benchmarks/epoch.js" --device cuda --reps 5 --threads "$(nproc)" --workers 8
fi

step r50-fp32 resnet50 256 fp32
loop_adam r50-fp32 resnet50 256
step r50-bf16 resnet50 256 bf16
step r18-fp32-round2 resnet18 64 fp32
stage "done"
cat "$res"
