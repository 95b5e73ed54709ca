#!/bin/bash
# Alternating reps of cuda.sh's two headline GPU figures, for when device
# time allows only one process per figure in cuda.sh: each round runs, one
# process each, ours' ResNet-18 fp32 train step, PyTorch's, ours' epoch and
# the MMCL-style epoch (the same commands as cuda.sh, built the same way).
# Rounds continue until $ROUNDS (default 5) or until $DEADLINE seconds
# (default 320) have passed at the start of a round.
#
# Options (environment):
#   STEP_VARIANTS  ours' step processes per round, in order (default
#                  "default"); each is run as ours-r18-fp32[-NAME]:
#                    default  the trainer's defaults
#                    dt1      --data-threads 1: the prefetch thread runs the
#                             data path on one intra-op thread instead of all
#                    passive  OMP_WAIT_POLICY=PASSIVE: OpenMP workers sleep
#                             instead of spinning after a parallel region
#   STEPS, WARMUP  timed and untimed steps per step process (30, 5)
#   EPOCH=0        the step figures only (no ours-epoch, mmcl-epoch)
#   BUILD=0        reuse build/bench/train_bench when it is there (cuda.sh
#                  built it in the same call)
#
#   PYTHON=/path/to/python3 RESULTS_DIR=dir bash benchmarks/cuda-ab.sh
#
# JSON lines, tagged with run and round, go to results.jsonl in $RESULTS_DIR
# (default ./cuda-ab-out), logs beside; when $OUT is set (a device call), that
# folder is also packed into $OUT/cuda-ab.tgz on exit.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${RESULTS_DIR:-$root/cuda-ab-out}
mkdir -p "$out"
if [ -n "${OUT:-}" ]; then
  pack() { tar -czf "$OUT/cuda-ab.tgz" -C "$out" . 2>/dev/null; }
  trap pack EXIT
  trap 'exit 143' TERM
fi
res="$out/results.jsonl"
py=${PYTHON:-python3}
rounds=${ROUNDS:-5}
deadline=${DEADLINE:-320}
variants=${STEP_VARIANTS:-default}
steps=${STEPS:-30}
warmup=${WARMUP:-5}
start=$SECONDS
bin="$root/build/bench/train_bench"
stage() { echo "== $(date +%T) +$((SECONDS - start))s: $*" | tee -a "$out/log.txt"; }
run() {  # run NAME ROUND TIMEOUT CMD...
  local name=$1 r=$2 t=$3; shift 3
  stage "$name round $r"
  timeout "$t" "$@" > "$out/$name-$r.out" 2> "$out/$name-$r.err"
  local rc=$?
  grep '^{' "$out/$name-$r.out" | sed "s/^{/{\"run\":\"$name\",\"round\":$r,/" >> "$res"
  # On a crash, train_bench's stderr ends with the stage it reached and a backtrace.
  [ $rc -eq 0 ] || echo "   $name round $r rc=$rc: $(tail -40 "$out/$name-$r.err")" | tee -a "$out/log.txt"
}

stage "machine"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nproc
  $py -c 'import torch; print("torch", torch.__version__, "cudnn", torch.backends.cudnn.version())'; } 2>&1 | tee "$out/machine.txt"
if [ "${BUILD:-1}" = 0 ] && [ -x "$bin" ]; then
  stage "reuse $bin"
else
  stage "build"
  PYTHON=$py JOBS=$(nproc) timeout 300 bash "$root/benchmarks/native/build.sh" "$root/build/bench" > "$out/build.log" 2>&1 || { echo "build failed"; tail -20 "$out/build.log"; exit 1; }
fi
for v in $variants; do
  case $v in default|dt1|passive) ;; *) echo "unknown step variant $v (default, dt1, passive)" >&2; exit 2 ;; esac
done

# Which OpenMP runtimes the driver loads (two in one process would not share a pool).
echo "   OpenMP: $(ldd "$bin" | grep -oE 'lib(gomp|iomp5|omp)[^ ]* => [^ ]*' | tr '\n' ';')" | tee -a "$out/log.txt"

if [ "${EPOCH:-1}" != 0 ]; then
data=$(mktemp -d)
$py "$root/benchmarks/support/gpu_epoch_data.py" "$data"
cfg=$(cat <<JSON
{"images":"$data/images.npy","rows":"$data/rows.i32","tabular":"$data/tabular.f32","cardinalities":[$(printf '0%.0s,' $(seq 99))0],
 "corruption":0.3,"rate":0.95,"size":128,"mean":[0.5,0.5,0.5],"std":[0.25,0.25,0.25],"batch":512,
 "model":{"tabularHidden":2048,"tabularLayers":2,"projectionHidden":2048,"projectionDim":128},
 "lr":0.003,"weightDecay":0.0001,"temperature":0.1,"threads":$(nproc),"probe_workers":[8],"probe_steps":3,
 "device":"cuda","cudnn_benchmark":true,"tmp":"$data","backend":"tensor"}
JSON
)
fi
for r in $(seq 1 "$rounds"); do
  [ $((SECONDS - start)) -lt "$deadline" ] || { stage "stop before round $r (deadline)"; break; }
  for v in $variants; do
    name=ours-r18-fp32 pre=() extra=()
    case $v in
      dt1) name+=-dt1 extra=(--data-threads 1) ;;
      passive) name+=-passive pre=(env OMP_WAIT_POLICY=PASSIVE) ;;
    esac
    run "$name" "$r" 120 "${pre[@]}" "$bin" --mode step --device cuda --arch resnet18 --batch 64 --size 128 \
      --steps "$steps" --warmup "$warmup" --precision fp32 "${extra[@]}"
  done
  run torch-r18-fp32 "$r" 120 $py "$root/benchmarks/support/train_step_torch.py" \
    "{\"device\":\"cuda\",\"arch\":\"resnet18\",\"batch\":64,\"size\":128,\"features\":100,\"steps\":$steps,\"warmup\":$warmup,\"precision\":\"fp32\",\"cudnn_benchmark\":true}"
  [ "${EPOCH:-1}" = 0 ] && continue
  run ours-epoch "$r" 200 "$bin" --mode epoch --device cuda --arch resnet18 --batch 512 --size 128 --n 8192 --epochs 5
  # num_workers 8: the best of 8 and 16 in every earlier call on this node.
  stage "mmcl-epoch round $r"
  printf '{}\n{}\n{}\n' | timeout 240 $py "$root/benchmarks/support/mmcl_baseline.py" epoch "$cfg" > "$out/mmcl-epoch-$r.out" 2> "$out/mmcl-epoch-$r.err" \
    || echo "   mmcl-epoch round $r failed: $(tail -2 "$out/mmcl-epoch-$r.err")" | tee -a "$out/log.txt"
  grep '^{' "$out/mmcl-epoch-$r.out" | sed "s/^{/{\"run\":\"mmcl-epoch\",\"round\":$r,/" >> "$res"
done
stage "done"
