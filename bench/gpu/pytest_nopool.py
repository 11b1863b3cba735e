"""pytest with CuPy's memory pools off, for compute-sanitizer (bench/gpu/run.sh, stage 3).

    compute-sanitizer --tool memcheck python bench/gpu/pytest_nopool.py [pytest args]

With the pool on, an array is a slice of a larger cached block, so memcheck cannot see a kernel
writing past its end; with ``cupy.cuda.set_allocator(None)`` every array is its own cudaMalloc.
"""
import sys

try:
    import cupy

    cupy.cuda.set_allocator(None)
    cupy.cuda.set_pinned_memory_allocator(None)
    print("pytest_nopool: CuPy memory pools off", flush=True)
except Exception as e:  # noqa: BLE001 - no CuPy: the GPU tests skip anyway
    print(f"pytest_nopool: CuPy not usable ({type(e).__name__}: {e}); pools unchanged", flush=True)

import pytest  # noqa: E402

sys.exit(pytest.main(sys.argv[1:]))
