#!/usr/bin/env bash
# Build pixelforge._cpu with AddressSanitizer + UndefinedBehaviorSanitizer and run the op tests
# against it. Any report fails the run (halt_on_error=1); leak detection is off because the
# Python interpreter itself "leaks" by design. Usage: bash .ci/sanitize.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cp -r python/pixelforge "$WORK/pixelforge"
rm -f "$WORK"/pixelforge/_cpu*.so "$WORK"/pixelforge/_cuda*.so
PYBIND11_DIR=$(python -m pybind11 --cmakedir)
cmake -S . -B "$ROOT/build/asan" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DPIXELFORGE_SANITIZE=ON \
  -DPIXELFORGE_CUDA=OFF -DPIXELFORGE_DEV_OUT="$WORK/pixelforge" -Dpybind11_DIR="$PYBIND11_DIR" > "$WORK/cmake.log"
cmake --build "$ROOT/build/asan" -j2 > "$WORK/build.log" || { cat "$WORK/build.log"; exit 1; }
ASAN_RT=$(g++ -print-file-name=libasan.so)
UBSAN_RT=$(g++ -print-file-name=libubsan.so)
export LD_PRELOAD="$ASAN_RT $UBSAN_RT"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:detect_odr_violation=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export PYTHONPATH="$WORK"
export PIXELFORGE_SANITIZED=1
python -c "import pixelforge as pf, sys; sys.exit(0 if pf.info()['cpu']['native'] and pf.__file__.startswith('$WORK') else 1)"
# Only the C++ paths matter here: Numba's JIT under a preloaded ASan runtime is slow and noisy.
python -m pytest -q -p no:cacheprovider -x -m "not cudasim and not gpu and not slow" \
  -k "not numba" "${@:-tests}"
