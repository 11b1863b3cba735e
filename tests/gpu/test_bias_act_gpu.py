"""bias_act on an NVIDIA GPU, what only a GPU has: CuPy's current stream, device-mismatch
errors. The kernels' values against the float64 reference (float32 and float16 storage) are
tests/test_bias_act.py's, run there for the GPU impls too (marker ``gpu``)."""
import numpy as np
import pytest

import pixelforge as pf

pytestmark = pytest.mark.gpu


def _cp():
    return pytest.importorskip("cupy")


def test_cuda_runs_on_current_stream_and_empty_input():
    cp = _cp()
    x = cp.arange(24, dtype=cp.float32).reshape(2, 3, 4) - 12
    with cp.cuda.Stream(non_blocking=True):
        y = pf.ops.bias_act(x, act="relu", gain=1.0, impl="cuda")
    cp.cuda.Device().synchronize()
    assert cp.allclose(y, cp.maximum(x, 0))
    e = pf.ops.bias_act(cp.zeros((0, 3, 4), cp.float32), cp.zeros(3, cp.float32), act="silu", impl="cuda")
    assert e.shape == (0, 3, 4)


def test_cuda_errors():
    cp = _cp()
    x = cp.zeros((2, 3, 4), cp.float32)
    with pytest.raises(ValueError, match="bias"):
        pf.ops.bias_act(x, np.zeros(3, np.float32))  # bias on the CPU, x on the GPU
    with pytest.raises(TypeError, match="x"):
        pf.ops.bias_act(cp.zeros((2, 3), cp.int32))
