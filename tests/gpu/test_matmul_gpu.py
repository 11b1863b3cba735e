"""matmul / linear / linear_backward on an NVIDIA GPU (CuPy arrays): the CUDA C++ kernels
(float32 SIMT, float16 / bfloat16 WMMA) against the float64 reference. Skipped where no GPU
is present (marker ``gpu``)."""
import math

import numpy as np
import pytest

import pixelforge as pf

pytestmark = pytest.mark.gpu
TRANS = [(False, False), (True, False), (False, True), (True, True)]
SHAPES = [(1, 1, 1), (17, 33, 1), (5, 7, 0), (13, 37, 300), (64, 64, 16), (129, 257, 65), (100, 96, 288)]
# float32: rounding of a K-term sum grows like sqrt(K); float16 / bfloat16 storage rounds the
# output (2^-11 / 2^-8 relative) on top of float32 accumulation of exactly rounded products.
TOL = {"float32": (1e-4, 1e-5), "float16": (2e-3, 2e-3), "bfloat16": (1.6e-2, 1.6e-2)}


def _cp():
    return pytest.importorskip("cupy")


def _dtypes(cp):
    out = ["float32", "float16"]
    try:
        cp.zeros(1, "bfloat16")
        out.append("bfloat16")
    except Exception:  # noqa: BLE001 - CuPy without bfloat16 support
        pass
    return out


def _close(actual, expected, dtype, k, what):
    rtol, atol = TOL[dtype]
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=rtol,
                               atol=atol * math.sqrt(max(k, 1)), err_msg=what)


def _round(x, cp, dtype):
    """x rounded to dtype on the device, and the same values in float64 on the host."""
    d = cp.asarray(x.astype(np.float32)).astype(dtype)
    return d, cp.asnumpy(d.astype(cp.float32)).astype(np.float64)


def test_cuda_impl_loads():
    _cp()
    assert "cuda" in pf.available("matmul", "cuda"), "the CUDA C++ kernel must load on a GPU machine"


@pytest.mark.parametrize("ta,tb", TRANS)
def test_matmul_matches_reference(ta, tb):
    cp = _cp()
    g = np.random.default_rng(1)
    for dtype in _dtypes(cp):
        for m, n, k in SHAPES:
            a, a64 = _round(g.standard_normal((k, m) if ta else (m, k)), cp, dtype)
            b, b64 = _round(g.standard_normal((n, k) if tb else (k, n)), cp, dtype)
            c = pf.ops.matmul(a, b, trans_a=ta, trans_b=tb, impl="cuda")
            assert isinstance(c, cp.ndarray) and c.dtype == a.dtype and c.shape == (m, n)
            ref = (a64.T if ta else a64) @ (b64.T if tb else b64)
            _close(cp.asnumpy(c.astype(cp.float32)), ref, dtype, k, f"{dtype} {m}x{n}x{k} {ta} {tb}")


def test_batched_broadcast_strided_and_stream():
    cp = _cp()
    g = np.random.default_rng(2)
    a64 = g.standard_normal((5, 33, 20))
    b64 = g.standard_normal((1, 20, 45))
    a, b = cp.asarray(a64.astype(np.float32)), cp.asarray(b64.astype(np.float32))
    with cp.cuda.Stream(non_blocking=True):
        c = pf.ops.matmul(a[::2], b[:, :, ::-1], impl="cuda")
        c2 = pf.ops.matmul(b[0], a, trans_a=True, trans_b=True, impl="cuda")  # (45, 20) @ (5, 20, 33)
    cp.cuda.Device().synchronize()
    _close(cp.asnumpy(c), a64[::2] @ b64[:, :, ::-1], "float32", 20, "strided batch")
    _close(cp.asnumpy(c2), np.matmul(b64[0].T, np.swapaxes(a64, 1, 2)), "float32", 20, "transposed broadcast")
    empty = pf.ops.matmul(cp.zeros((0, 3, 4), cp.float32), cp.zeros((4, 5), cp.float32), impl="cuda")
    assert empty.shape == (0, 3, 5)


@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_and_backward(with_bias):
    cp = _cp()
    g = np.random.default_rng(3)
    for dtype in _dtypes(cp):
        x, x64 = _round(g.standard_normal((3, 70, 96)), cp, dtype)
        w, w64 = _round(g.standard_normal((288, 96)), cp, dtype)
        b, b64 = _round(g.standard_normal(288), cp, dtype) if with_bias else (None, 0.0)
        y = pf.ops.linear(x, w, b, impl="cuda")
        _close(cp.asnumpy(y.astype(cp.float32)), x64 @ w64.T + b64, dtype, 96, f"linear {dtype}")
        gy, gy64 = _round(g.standard_normal((3, 70, 288)), cp, dtype)
        dx, dw, db = pf.ops.linear_backward(gy, x, w, impl="cuda")
        g2, x2 = gy64.reshape(-1, 288), x64.reshape(-1, 96)
        _close(cp.asnumpy(dx.astype(cp.float32)), gy64 @ w64, dtype, 288, f"dx {dtype}")
        _close(cp.asnumpy(dw.astype(cp.float32)), g2.T @ x2, dtype, 210, f"dw {dtype}")
        _close(cp.asnumpy(db.astype(cp.float32)), g2.sum(0), dtype, 210, f"db {dtype}")
    # K = 0: bias only
    x0 = cp.zeros((4, 0), cp.float32)
    bias = cp.arange(3, dtype=cp.float32)
    y0 = pf.ops.linear(x0, cp.zeros((3, 0), cp.float32), bias, impl="cuda")
    assert cp.array_equal(y0, cp.broadcast_to(bias, (4, 3)))


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
