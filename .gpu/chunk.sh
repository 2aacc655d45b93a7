#!/usr/bin/env bash
# One training chunk on the GPU machine (device tool), from the repository root there:
#   [MEDIUM=audio] bash .gpu/chunk.sh PHASE SECONDS BUDGET      PHASE: first | mid | last
# carry: [".gpu", ".whl"]; .gpu/images from `ncodec train image --compact-to .gpu/images`, or for
# audio .gpu/audio.npz from `ncodec train audio --compact-to .gpu/audio.npz` (../shared does not
# travel; keep the carry under 64 MiB), .whl from ../shared/tools/device-wheels.sh (+ pytest wheels).
# The checkpoint stays in runs/gpu-<medium> on the warm machine between back-to-back calls; a cold start
# resumes from model shards in .gpu/resume/ if present, else warm-starts from the shipped weights.
# Each call writes the model shards (<16 MiB each) and logs to $OUT; "first" also builds the
# extension and runs the CUDA tests, "last" the CUDA tests and the GPU benchmarks.
set -u
PHASE=$1; SECS=$2; BUDGET=$3
cd "$(dirname "$0")/.."
R=$PWD
mkdir -p runs "$OUT"
exec > >(tee -a "$OUT/log_$PHASE.txt") 2>&1
date; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nproc
if [ ! -f runs/site/.ok ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target runs/site .whl/*.whl && touch runs/site/.ok
fi
mkdir -p runs/pkg/ncodec
for d in codec entropy models bitstream eval; do ln -sfn "$R/$d" "runs/pkg/ncodec/$d"; done
python3 -c "import PIL, torch; print('PIL', PIL.__version__, 'torch', torch.__version__)"
MEDIUM=${MEDIUM:-image}
CK=runs/gpu-$MEDIUM
mkdir -p "$CK"
if [ ! -f $CK/checkpoint.safetensors ] && ls .gpu/resume/model-*.safetensors >/dev/null 2>&1; then
  PYTHONPATH=$R/runs/site:$R/runs/pkg python3 -c "
from pathlib import Path; from ncodec.models.train import merge_checkpoint
merge_checkpoint(sorted(Path('.gpu/resume').glob('model-*.safetensors')), Path('$CK/checkpoint.safetensors'))
print('resumed from carried shards')"
fi
INIT=()
[ -f $CK/checkpoint.safetensors ] || INIT=(--init models/weights/$MEDIUM-hp-v1.safetensors)
if [ "$MEDIUM" = audio ]; then
  PYTHONPATH=$R/runs/site:$R/runs/pkg OMP_NUM_THREADS=8 python3 -m ncodec.models.train_audio --corpus .gpu/audio.npz \
    --out $CK "${INIT[@]}" --device cuda --batch 32 --lr 3e-4 --steps 100000000 \
    --seconds "$SECS" --budget "$BUDGET" > "$OUT/train_$PHASE.log" 2>&1 &
else
  PYTHONPATH=$R/runs/site:$R/runs/pkg OMP_NUM_THREADS=4 python3 -m ncodec.models.train --data .gpu/images --out $CK \
    "${INIT[@]}" --device cuda --crop 256 --batch 16 --lr 3e-4 --workers 10 --ckpt-every 500 \
    --seconds "$SECS" --budget "$BUDGET" > "$OUT/train_$PHASE.log" 2>&1 &
fi
TP=$!
if [ ! -f runs/ext/.ok ]; then
  (export CMAKE_BUILD_PARALLEL_LEVEL=6; time python3 -m pip install --no-build-isolation --no-deps --no-compile -q --target runs/ext . ) > "$OUT/build.log" 2>&1 && touch runs/ext/.ok
  tail -5 "$OUT/build.log"; ls runs/ext/ncodec/entropy/ | grep -i so
fi
X="env PYTHONPATH=$R/runs/ext:$R/runs/site"
if [ "$PHASE" = first ] && [ -f runs/ext/.ok ]; then
  $X python3 -m pytest -q -x -p no:cacheprovider tests/test_rans_cuda.py tests/test_rans_api.py tests/test_rans_equivalence.py 2>&1 | tail -15
  $X python3 -m pytest -q -p no:cacheprovider tests/test_image_codec.py tests/test_golden_image.py 2>&1 | tail -15
  $X python3 -m ncodec.entropy.bench --symbols 10000000 --only ncodec_cpp_mt,ncodec_cuda,ncodec_cuda_resident --repeat 2 2>&1 | tail -6
fi
wait $TP; echo "train rc=$?"; tail -3 "$OUT/train_$PHASE.log"
PYTHONPATH=$R/runs/site:$R/runs/pkg python3 -c "
from pathlib import Path; from ncodec.models.train import split_checkpoint
print(split_checkpoint(Path('$CK/checkpoint.safetensors'), Path('$OUT')))"
if [ "$PHASE" = last ] && [ -f runs/ext/.ok ]; then
  $X python3 -m pytest -q -p no:cacheprovider tests/test_rans_cuda.py tests/test_image_codec.py 2>&1 | tail -5
  $X python3 -m ncodec.entropy.bench --symbols 100000000 --only ncodec_cpp_1t,ncodec_cpp_mt,ncodec_cuda,ncodec_cuda_resident --repeat 3 --json > "$OUT/bench_1e8.json" 2>&1; tail -c 2000 "$OUT/bench_1e8.json"
  for L in 32 128; do  # GPU lane profiles: more lanes per segment, more GPU threads, a little more size
    $X python3 -m ncodec.entropy.bench --symbols 100000000 --only ncodec_cuda_resident --lanes $L --repeat 3 2>&1 | tail -3
  done
  for B in 12 6; do  # GPU bucket arrays: 2^12 (520 KiB) and 2^6 buckets per table against the default 2^8 (56 KiB)
    NCODEC_CUDA_BUCKET_BITS=$B $X python3 -m ncodec.entropy.bench --symbols 100000000 --only ncodec_cuda_resident --repeat 3 2>&1 | tail -2
  done
  $X python3 -m ncodec.entropy.bench --json > "$OUT/bench_default.json" 2>&1; tail -c 600 "$OUT/bench_default.json"
  $X python3 -m ncodec.codec.cli bench image --images tests/data --limit 2 --device cuda 2>&1 | tail -8
fi
date
