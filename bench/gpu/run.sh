#!/usr/bin/env bash
# bench/gpu/run.sh: on a machine with an NVIDIA GPU and nothing else prepared, build pixelforge
# with CUDA for that GPU, run tests/gpu and every `gpu`-marked test, then benchmark conv2d and
# attention (float32/float16/bfloat16, TFLOP/s, ratio to torch's cuDNN/SDPA when torch is there)
# and the sampling ops (GB/s), and print one summary table. Exits non-zero when a GPU test fails.
#   bash bench/gpu/run.sh            # from the repository root; ~5-10 minutes
# Environment: PYTHON (default python3), PIXELFORGE_CUDA_ARCHS (default: the GPU's own),
# PF_GPU_SKIP_BUILD=1 to reuse an installed pixelforge.
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
OUTDIR=${OUTDIR:-bench/gpu/out}
mkdir -p "$OUTDIR"
nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader | tee "$OUTDIR/gpu.txt" \
  || { echo "no NVIDIA GPU visible (nvidia-smi failed)"; exit 2; }
if [ -z "${PIXELFORGE_CUDA_ARCHS:-}" ]; then
  PIXELFORGE_CUDA_ARCHS=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '.[:space:]')
fi
export PIXELFORGE_CUDA_ARCHS
echo "building for sm_${PIXELFORGE_CUDA_ARCHS}"

if [ "${PF_GPU_SKIP_BUILD:-0}" != 1 ]; then
  # CuPy and numba-cuda (the `cuda` extra) and the test extra; tolerate an offline machine
  # where they are already installed or carried as wheels.
  $PY -m pip install -q ".[cuda,test]" -C cmake.define.PIXELFORGE_CUDA_ARCHS="$PIXELFORGE_CUDA_ARCHS" \
    || $PY -m pip install -q --no-deps --no-build-isolation . \
         -C cmake.define.PIXELFORGE_CUDA_ARCHS="$PIXELFORGE_CUDA_ARCHS" \
    || { echo "build failed"; exit 3; }
fi
$PY -c "import pixelforge as pf, json; i = pf.info(); print(json.dumps(i, indent=1)); \
assert i['cuda']['built'] and i['cuda']['devices'] > 0, 'CUDA module not built or no device'; \
assert i['cupy_gpu'], 'CuPy with a GPU is required for the GPU tests'" || exit 4

status=0
$PY -m pytest -q -p no:cacheprovider tests/gpu -m gpu -rs 2>&1 | tee "$OUTDIR/tests_gpu.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
$PY -m pytest -q -p no:cacheprovider tests -m gpu --ignore=tests/gpu -rs 2>&1 | tee "$OUTDIR/tests_gpu_marked.txt"
rc=${PIPESTATUS[0]}
[ "$rc" -eq 0 ] || [ "$rc" -eq 5 ] || status=1   # 5: no gpu-marked tests outside tests/gpu

PYTHONUNBUFFERED=1 $PY bench/gpu/bench_gpu.py --json "$OUTDIR/bench_gpu.json" 2>&1 | tee "$OUTDIR/bench_gpu.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
echo "GPU tests and benchmarks finished with status $status (results in $OUTDIR)"
exit $status
