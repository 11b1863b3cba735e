"""bias_act on an NVIDIA GPU (CuPy arrays): the CUDA C++ and numba.cuda kernels against the
float64 reference. Skipped where no GPU is present (marker ``gpu``)."""
import numpy as np
import pytest

import pixelforge as pf

pytestmark = pytest.mark.gpu
ACTS = ["linear", "relu", "lrelu", "tanh", "sigmoid", "silu", "gelu"]
# float16 storage: a few units of its 2^-11 rounding on outputs of magnitude <= ~4
TOL = {"float32": (1e-5, 1e-5), "float16": (4e-3, 4e-3)}


def _cp():
    return pytest.importorskip("cupy")


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("act", ACTS)
def test_cuda_impls_match_reference(dtype, act):
    cp = _cp()
    g = np.random.default_rng(1)
    x = g.standard_normal((3, 33, 7, 5)).astype(dtype)
    b = g.standard_normal(33).astype(dtype)
    gy = g.standard_normal(x.shape).astype(dtype)
    ref = pf.ops.bias_act(x.astype(np.float64), b.astype(np.float64), act=act, clamp=1.5, impl="ref")
    rdx, rdb = pf.ops.bias_act_backward(gy.astype(np.float64), x.astype(np.float64), b.astype(np.float64),
                                        act=act, impl="ref")
    rtol, atol = TOL[dtype]
    impls = [i for i in pf.available("bias_act", "cuda") if i != "ref"]
    assert "cuda" in impls, "the CUDA C++ kernel must load on a GPU machine"
    for impl in impls:
        if impl == "numba" and dtype != "float32":
            continue
        y = pf.ops.bias_act(cp.asarray(x), cp.asarray(b), act=act, clamp=1.5, impl=impl)
        assert isinstance(y, cp.ndarray) and y.dtype == x.dtype
        np.testing.assert_allclose(cp.asnumpy(y).astype(np.float64), ref, rtol=rtol, atol=atol, err_msg=impl)
        dx, db = pf.ops.bias_act_backward(cp.asarray(gy), cp.asarray(x), cp.asarray(b), act=act, impl=impl)
        np.testing.assert_allclose(cp.asnumpy(dx).astype(np.float64), rdx, rtol=rtol, atol=atol, err_msg=impl)
        np.testing.assert_allclose(cp.asnumpy(db).astype(np.float64), rdb, rtol=rtol * 10, atol=atol * 100,
                                   err_msg=impl)


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
