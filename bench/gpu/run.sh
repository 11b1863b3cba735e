#!/usr/bin/env bash
# bench/gpu/run.sh: ONE offline, time-budgeted command for a borrowed NVIDIA GPU machine (maybe
# no network, minutes of time). From the repository root:
#   bash bench/gpu/run.sh                                   # everything, within 8 minutes
#   OUTDIR=/tmp/gpu PF_GPU_BUDGET_S=300 bash bench/gpu/run.sh
# Stages (each under `timeout` with min(its cap, budget left); one that no longer fits is
# recorded as "skipped: out of budget"):
#   0 check  (cap 60 s)  packages/tools found (version) or MISSING -> env.txt; nvidia-smi
#   1 build  (cap 360 s) pip install --no-build-isolation --no-deps --no-index . for the GPU's
#                        arch (or, without scikit-build-core, the cmake developer build into
#                        python/pixelforge + PYTHONPATH); then stage "info" (60 s): pf.info()
#                        -> info.txt / info.json, and "gpu-detect". No GPU visible (nvidia-smi
#                        missing/failing, or pf.info()['cuda']['devices'] == 0): prints "no GPU
#                        visible: the build succeeded; stopping before the GPU stages" and
#                        exits 2 (the dry run on a machine without one).
#   2 tests-fast (120 s) tests/gpu + the op files' gpu float32 params, -x, CUDA_LAUNCH_BLOCKING=1 PIXELFORGE_CUDA_SYNC=1
#   3 compute-sanitizer (90 s) memcheck on bias_act + matmul tests, racecheck on a small
#                        attention/conv-transpose subset (CuPy pools off); skipped if not found
#   4 bench  (150 s)     bench/gpu/bench_gpu.py --json bench_gpu.json (rows saved as they come)
#   5 tests-full (150 s) every gpu-marked test
# OUTDIR gets a log per stage, env.txt, info.txt/info.json, bench_gpu.json, and summary.txt
# (stage, status, seconds) rewritten after every stage, so a run cut off anywhere still reports.
# Nothing is downloaded: whatever is missing is reported, never installed.
# Environment:
#   PYTHON                 interpreter to use (default python3)
#   OUTDIR                 results folder (default bench/gpu/out)
#   PF_GPU_BUDGET_S        total seconds for all stages (default 480 = 8 min)
#   PIXELFORGE_CUDA_ARCHS  e.g. 90 or "80;90" (default: the GPU's compute capability, else 90)
#   PF_GPU_SKIP_BUILD=1    use the pixelforge that is already importable (no build)
# Exit status: 0 all stages ran and passed; 1 a stage failed or timed out; 2 no GPU visible
# (after a successful build); 3 this script could not start (no python, no timeout, bad budget).
# shellcheck disable=SC2317  # the stage_* functions run indirectly, as `bash -c NAME`
set -uo pipefail
# PYTHON may be relative to where we were called from: made absolute before the cd (not
# resolved through symlinks: a venv's python must stay the venv's).
PY=${PYTHON:-python3}
PY_ABS=$(command -v "$PY") || { echo "PYTHON: '$PY' not found"; exit 3; }
case "$PY_ABS" in /*) PY=$PY_ABS;; *) PY=$PWD/$PY_ABS;; esac
cd "$(dirname "$0")/../.." || exit 3

OUTDIR=${OUTDIR:-bench/gpu/out}
BUDGET=${PF_GPU_BUDGET_S:-480}
MIN_STAGE_S=20     # a stage with less time than this left is skipped

case "$BUDGET" in ''|*[!0-9]*) echo "PF_GPU_BUDGET_S: expected whole seconds, got '$BUDGET'"; exit 3;; esac
command -v timeout >/dev/null || { echo "timeout (coreutils) not found"; exit 3; }
mkdir -p "$OUTDIR" || exit 3
OUTDIR=$(cd "$OUTDIR" && pwd)
rm -f "$OUTDIR"/{summary.txt,env.txt,info.txt,info.json,build.log,tests_fast.txt,sanitizer.txt,bench_gpu.txt,bench_gpu.json,tests_full.txt,.have}

T_START=$(date +%s)
STATUS=0
STAGES=()
SUMMARY=$OUTDIR/summary.txt
NPROC=$(nproc 2>/dev/null || echo 2)

# A venv's bin (cmake, ninja, pytest from pip) and the CUDA toolkit's bin on PATH.
if "$PY" -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)'; then
  PATH="$(dirname "$PY"):$PATH"
fi
if [ -d /usr/local/cuda/bin ] && [[ ":$PATH:" != *":/usr/local/cuda/bin:"* ]]; then
  PATH="$PATH:/usr/local/cuda/bin"
fi
export PATH

# ----------------------------------------------------------------------------- bookkeeping
time_left() { echo $(( BUDGET - ($(date +%s) - T_START) )); }

stage_line() { printf '%-18s %-58s %5ss' "$1" "$2" "$3"; }

write_summary() {   # $1: an optional line for the stage now running
  {
    echo "pixelforge GPU run, started $(date -u -d "@$T_START" '+%F %T UTC' 2>/dev/null || echo "$T_START")," \
         "updated $(date -u '+%T UTC'); budget ${BUDGET}s, $(( $(date +%s) - T_START ))s used"
    echo "python $PY; arch ${ARCH:-?}; OUTDIR $OUTDIR"
    printf '%-18s %-58s %6s\n' stage status seconds
    [ "${#STAGES[@]}" -gt 0 ] && printf '%s\n' "${STAGES[@]}"
    [ -n "${1:-}" ] && echo "$1"
    [ -n "${FINAL:-}" ] && echo "$FINAL"
  } > "$SUMMARY.tmp" && mv -f "$SUMMARY.tmp" "$SUMMARY"
}

add_stage() {   # name status seconds
  STAGES+=("$(stage_line "$1" "$2" "$3")")
  write_summary
  echo "=== $1: $2 ($3 s)"
}

finish() {   # exit code [message]
  [ -n "${2:-}" ] && echo "$2"
  FINAL="${2:+$2
}GPU run finished with status $1 (results in $OUTDIR)"
  write_summary
  echo
  cat "$SUMMARY"
  exit "$1"
}

# run_stage NAME CAP LOGFILE FUNCTION [OK_CODES] [quiet]
# Runs the exported bash FUNCTION under timeout min(CAP, budget left), output to OUTDIR/LOGFILE
# (and stdout, unless quiet: then only the log's tail). Sets STAGE_RC; a failure sets STATUS=1.
run_stage() {
  local name=$1 cap=$2 log=$3 fn=$4 ok=${5:-0} quiet=${6:-}
  local left lim by rc t0 dt st res
  left=$(time_left)
  if [ "$left" -lt "$MIN_STAGE_S" ]; then
    STAGE_RC=-1
    add_stage "$name" "skipped: out of budget (${left}s left)" 0
    return
  fi
  if [ "$cap" -le "$left" ]; then lim=$cap; by="its cap"; else lim=$left; by="the budget"; fi
  echo
  echo "=== stage $name: limit ${lim}s (${left}s of budget left), log $OUTDIR/$log"
  write_summary "$(stage_line "$name" "running (limit ${lim}s; cut off here if nothing follows)" "")"
  t0=$(date +%s)
  if [ -n "$quiet" ]; then
    STAGE_LIMIT=$lim timeout -k 10 "$lim" bash -c "$fn" > "$OUTDIR/$log" 2>&1
    rc=$?
  else
    STAGE_LIMIT=$lim timeout -k 10 "$lim" bash -c "$fn" 2>&1 | tee "$OUTDIR/$log"
    rc=${PIPESTATUS[0]}
  fi
  dt=$(( $(date +%s) - t0 ))
  STAGE_RC=$rc
  if [[ " $ok " == *" $rc "* ]]; then
    st="ok"
    [ "$rc" -eq 5 ] && st="ok (no tests collected)"
  elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    st="TIMEOUT after ${lim}s (limited by $by)"; STATUS=1
  else
    st="FAILED (exit $rc)"; STATUS=1
  fi
  # pytest's and bench_gpu.py's own one-line results, into the summary
  res=$(grep -E ' in [0-9.]+s( \([0-9:]+\))?( =+)?$|^no tests ran| rows on .*measured' "$OUTDIR/$log" 2>/dev/null \
        | tr -d '=' | sed 's/^ *//; s/ *$//' | paste -sd '|' -)
  [ -n "$res" ] && [ -z "$quiet" ] && st="$st: $res"
  if [ -n "$quiet" ]; then
    if [ "$rc" -ne 0 ]; then
      echo "--- first errors in $log:"
      grep -n -m 20 -E 'error|Error|FAILED|fatal' "$OUTDIR/$log"
      echo "--- last 30 lines of $log:"
      tail -n 30 "$OUTDIR/$log"
    else
      echo "--- last 15 lines of $log:"
      tail -n 15 "$OUTDIR/$log"
    fi
  fi
  add_stage "$name" "$st" "$dt"
}

# ----------------------------------------------------------------------------- stage bodies
# Exported: each runs as `bash -c NAME` under timeout (the whole process group is killed).
stage_check() {
  "$PY" bench/gpu/check_env.py --have "$OUTDIR/.have"
  echo
  if command -v nvidia-smi >/dev/null; then
    echo "nvidia-smi:"
    timeout 20 nvidia-smi || echo "nvidia-smi failed (exit $?)"
    timeout 20 nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv
  else
    echo "nvidia-smi: not found"
  fi
  return 0
}

stage_build() {
  set -o pipefail
  echo "building for PIXELFORGE_CUDA_ARCHS=$ARCH with $NPROC jobs ($BUILD_MODE build)"
  export PIXELFORGE_CUDA_ARCHS=$ARCH CMAKE_BUILD_PARALLEL_LEVEL=$NPROC
  if [ "$BUILD_MODE" = pip ]; then
    "$PY" -m pip install --no-build-isolation --no-deps --no-index --disable-pip-version-check -v . \
      -C "cmake.define.PIXELFORGE_CUDA_ARCHS=$ARCH"
  else
    local gen=()
    [ -n "$NINJA_BIN" ] && gen=(-G Ninja "-DCMAKE_MAKE_PROGRAM=$NINJA_BIN")
    "$CMAKE_BIN" -S . -B build/gpu "${gen[@]}" -DCMAKE_BUILD_TYPE=Release "-DPython_EXECUTABLE=$PY" \
      "-Dpybind11_DIR=$("$PY" -m pybind11 --cmakedir)" "-DPIXELFORGE_CUDA_ARCHS=$ARCH" \
      && "$CMAKE_BIN" --build build/gpu -j"$NPROC"
  fi
}

stage_info() {
  "$PY" - "$OUTDIR/info.json" <<'EOF'
import json, sys
import pixelforge as pf
i = pf.info()
i["file"] = pf.__file__
print(json.dumps(i, indent=1))
with open(sys.argv[1], "w") as f:
    json.dump(i, f, indent=1)
EOF
}

# the per-op files hold the GPU value tests since they run once per device (marker gpu)
OP_TESTS="tests/test_conv2d.py tests/test_attention.py tests/test_matmul.py tests/test_bias_act.py
  tests/test_random.py tests/test_add_noise.py tests/test_samplers.py tests/test_reparameterize.py"

stage_tests_fast() {
  # shellcheck disable=SC2086
  CUDA_LAUNCH_BLOCKING=1 PIXELFORGE_CUDA_SYNC=1 "$PY" -m pytest -q -x -p no:cacheprovider -rs tests/gpu $OP_TESTS \
    -m gpu -k "not low_precision and not float16 and not bfloat16"
}

stage_sanitizer() {
  local rc=0 t1=$(( STAGE_LIMIT * 3 / 5 ))
  echo "--- memcheck (limit ${t1}s): bias_act and matmul tests"
  timeout -k 5 "$t1" "$SANITIZER_BIN" --tool memcheck --error-exitcode 1 \
    "$PY" bench/gpu/pytest_nopool.py -q -x -p no:cacheprovider tests/gpu/test_bias_act_gpu.py \
    tests/gpu/test_matmul_gpu.py tests/test_matmul.py tests/test_bias_act.py -m gpu \
    -k "not low_precision and not float16 and not bfloat16" || { rc=$?; echo "memcheck: exit $rc"; }
  echo "--- racecheck: attention empty/decode + GQA, conv_transpose2d"
  "$SANITIZER_BIN" --tool racecheck --error-exitcode 1 \
    "$PY" bench/gpu/pytest_nopool.py -q -x -p no:cacheprovider tests/gpu/test_attention_gpu.py \
    tests/test_conv2d.py -m gpu -k "empty_and_decode or gqa or transpose" || { rc=$?; echo "racecheck: exit $rc"; }
  return "$rc"
}

stage_bench() {
  # bench_gpu.py stops starting cases a little before the stage's limit (rows are saved as they come).
  local b=$(( STAGE_LIMIT - 20 )); [ "$b" -lt $(( STAGE_LIMIT * 3 / 4 )) ] && b=$(( STAGE_LIMIT * 3 / 4 ))
  PYTHONUNBUFFERED=1 "$PY" bench/gpu/bench_gpu.py --json "$OUTDIR/bench_gpu.json" --budget-s "$b"
}

stage_tests_full() {
  CUDA_LAUNCH_BLOCKING=1 "$PY" -m pytest -q -p no:cacheprovider tests -m gpu -rs
}

export OP_TESTS
export -f stage_check stage_build stage_info stage_tests_fast stage_sanitizer stage_bench stage_tests_full
export PY OUTDIR NPROC

have() { grep -qx "$1=1" "$OUTDIR/.have" 2>/dev/null; }
tool() { sed -n "s/^$1=//p" "$OUTDIR/.have" 2>/dev/null | head -1; }

# ----------------------------------------------------------------------------- 0: check
write_summary
echo "pixelforge GPU run: budget ${BUDGET}s, python $PY, results in $OUTDIR"
run_stage check 60 env.txt stage_check

# ----------------------------------------------------------------------------- 1: build
GPU_SMI=0
if command -v nvidia-smi >/dev/null && timeout 20 nvidia-smi -L >/dev/null 2>&1; then GPU_SMI=1; fi
ARCH=${PIXELFORGE_CUDA_ARCHS:-}
if [ -z "$ARCH" ] && [ "$GPU_SMI" = 1 ]; then
  ARCH=$(timeout 20 nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '.[:space:]')
  case "$ARCH" in ''|*[!0-9]*) ARCH="";; esac   # "[N/A]", an error text: not an arch
fi
[ -n "$ARCH" ] || ARCH=90   # no GPU visible (or no answer): build for the H100 (sm_90)
export ARCH
echo "CUDA arch: $ARCH"

if [ "${PF_GPU_SKIP_BUILD:-0}" = 1 ]; then
  add_stage build "skipped: PF_GPU_SKIP_BUILD=1" 0
else
  missing=()
  NVCC_BIN=$(tool nvcc_bin); CMAKE_BIN=$(tool cmake_bin); NINJA_BIN=$(tool ninja_bin)
  [ -n "$NVCC_BIN" ] || missing+=(nvcc)
  have pybind11 || missing+=(pybind11)
  [ -n "$CMAKE_BIN" ] || have cmake || missing+=(cmake)
  [ -n "$NINJA_BIN" ] || [ -n "$(tool make_bin)" ] || missing+=("ninja or make")
  # pip needs scikit-build-core, pip itself, and a Python it may install into (a venv, or one
  # not marked EXTERNALLY-MANAGED); else the developer build into python/pixelforge.
  if have scikit_build_core && "$PY" -m pip --version >/dev/null 2>&1 && "$PY" -c '
import os, sys, sysconfig
managed = os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))
sys.exit(1 if managed and sys.prefix == sys.base_prefix else 0)'; then
    BUILD_MODE=pip
  else
    BUILD_MODE=cmake
    [ -n "$CMAKE_BIN" ] || missing+=("cmake binary")
  fi
  if [ "${#missing[@]}" -gt 0 ]; then
    STATUS=1
    add_stage build "FAILED: missing ${missing[*]}" 0
    finish 1 "cannot build pixelforge with CUDA here (missing: ${missing[*]}); see $OUTDIR/env.txt"
  fi
  [ -n "${CUDACXX:-}" ] || export CUDACXX=$NVCC_BIN
  export BUILD_MODE CMAKE_BIN NINJA_BIN
  run_stage build 360 build.log stage_build 0 quiet
  [ "$STAGE_RC" -eq 0 ] || finish 1 "the build did not succeed: stopping (see $OUTDIR/build.log and summary.txt)"
  if [ "$BUILD_MODE" = cmake ]; then
    export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
    echo "developer build: PYTHONPATH=$PYTHONPATH"
  fi
fi

run_stage info 60 info.txt stage_info
[ "$STAGE_RC" -eq 0 ] || finish 1 "pixelforge did not import (see $OUTDIR/info.txt and summary.txt): stopping"
read -r CUDA_BUILT CUDA_DEVICES CUPY_GPU < <("$PY" -c '
import json, sys
i = json.load(open(sys.argv[1]))
print(int(bool(i["cuda"]["built"])), int(i["cuda"]["devices"]), int(bool(i["cupy_gpu"])))' "$OUTDIR/info.json")
echo "pixelforge._cuda built: $CUDA_BUILT; devices: ${CUDA_DEVICES:-?}; CuPy with a GPU: $CUPY_GPU; nvidia-smi sees a GPU: $GPU_SMI"
if [ "${CUDA_BUILT:-0}" != 1 ]; then
  add_stage cuda-module "FAILED: pixelforge._cuda not built (nvcc not found by CMake?)" 0
  finish 1 "pixelforge._cuda was not built: stopping (see $OUTDIR/build.log)"
fi

# ----------------------------------------------------------------------------- GPU?
if [ "$GPU_SMI" != 1 ] || [ "${CUDA_DEVICES:-0}" -eq 0 ]; then
  msg="no GPU visible: the build succeeded; stopping before the GPU stages"
  [ "${PF_GPU_SKIP_BUILD:-0}" = 1 ] && msg="no GPU visible: pixelforge imports (build skipped); stopping before the GPU stages"
  add_stage gpu-detect "no GPU visible (nvidia-smi: $GPU_SMI, devices: ${CUDA_DEVICES:-0})" 0
  finish 2 "$msg"
fi
add_stage gpu-detect "ok: $(timeout 20 nvidia-smi --query-gpu=name --format=csv,noheader | head -1), sm_$ARCH build" 0
[ "$CUPY_GPU" = 1 ] || echo "WARNING: CuPy with a GPU is missing: GPU tests will skip and the benchmarks cannot run"

# ----------------------------------------------------------------------------- 2-5
run_stage tests-fast 120 tests_fast.txt stage_tests_fast

SANITIZER_BIN=$(tool sanitizer_bin)
if [ -n "$SANITIZER_BIN" ]; then
  export SANITIZER_BIN
  run_stage compute-sanitizer 90 sanitizer.txt stage_sanitizer
else
  add_stage compute-sanitizer "skipped: compute-sanitizer not found" 0
fi

if [ "$CUPY_GPU" = 1 ]; then
  run_stage bench 150 bench_gpu.txt stage_bench
else
  add_stage bench "skipped: CuPy with a GPU not available" 0
fi

run_stage tests-full 150 tests_full.txt stage_tests_full "0 5"

finish "$STATUS"
