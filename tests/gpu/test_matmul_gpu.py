"""matmul / linear on an NVIDIA GPU, what only the GPU has: the CUDA C++ kernel loads, runs on
CuPy's current stream (a non-blocking one here), and gives linear_backward the same bits run to
run. The kernels' values against float64 (float32 SIMT, float16 / bfloat16 WMMA; transposes,
strided and broadcast batches, linear and its backward, K = 0) are tests/test_matmul.py's, run
there for the GPU impls too (marker ``gpu``). Skipped where no GPU is present."""
import math

import numpy as np
import pytest

import pixelforge as pf

pytestmark = pytest.mark.gpu


def _cp():
    return pytest.importorskip("cupy")


def _close(actual, expected, k, what):
    """float32 against float64, atol growing like sqrt(K) (tests/test_matmul.py's rule)."""
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=1e-4,
                               atol=1e-5 * math.sqrt(max(k, 1)), err_msg=what)


def test_cuda_impl_loads():
    _cp()
    assert "cuda" in pf.available("matmul", "cuda"), "the CUDA C++ kernel must load on a GPU machine"


def test_runs_on_current_stream():
    cp = _cp()
    g = np.random.default_rng(2)
    a64 = g.standard_normal((5, 33, 20))
    b64 = g.standard_normal((1, 20, 45))
    a, b = cp.asarray(a64.astype(np.float32)), cp.asarray(b64.astype(np.float32))
    with cp.cuda.Stream(non_blocking=True):
        c = pf.ops.matmul(a[::2], b[:, :, ::-1], impl="cuda")
        c2 = pf.ops.matmul(b[0], a, trans_a=True, trans_b=True, impl="cuda")  # (45, 20) @ (5, 20, 33)
    cp.cuda.Device().synchronize()
    _close(cp.asnumpy(c), a64[::2] @ b64[:, :, ::-1], 20, "strided batch")
    _close(cp.asnumpy(c2), np.matmul(b64[0].T, np.swapaxes(a64, 1, 2)), 20, "transposed broadcast")


def test_deterministic():
    cp = _cp()
    g = np.random.default_rng(4)
    gy = cp.asarray(g.standard_normal((4096, 96)).astype(np.float32))
    x = cp.asarray(g.standard_normal((4096, 384)).astype(np.float32))
    w = cp.asarray(g.standard_normal((96, 384)).astype(np.float32))
    one = pf.ops.linear_backward(gy, x, w, impl="cuda")
    two = pf.ops.linear_backward(gy, x, w, impl="cuda")
    for u, v in zip(one, two):
        assert cp.array_equal(u, v)
