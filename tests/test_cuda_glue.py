"""The CUDA glue (csrc/*_bind_cuda.cpp), tested on every CI run without a GPU.

Each op's Python loader (ops/<op>.py, ``_load_cuda``) is run with a stand-in for CuPy whose
arrays are host memory with CuPy's ``.data.ptr``, so the real ``pixelforge._cuda`` bindings
receive exactly the argument forms the Python layer builds (shape lists, geometry lists,
dtype codes, pointers as ints, the stream). Without a device every call must then reach the
CUDA runtime and come back as a RuntimeError naming the op; the empty shapes the bindings
answer themselves must return cleanly; malformed shapes must raise ValueError naming the
argument. A glue mistake (a missing caster, a wrong argument order or count, a host-side
read of a device pointer, a division by a missing device's properties) fails here.

Skipped where a GPU is present: these host pointers must never reach a real kernel, and
tests/gpu runs the same calls on the device.
"""
from __future__ import annotations

import types

import numpy as np
import pytest

from pixelforge import _backend, ops
# the op modules (pixelforge.ops.attention is the public function of the same name; the
# package's own importer binds the functions again after loading a module)
attention, bias_act, conv2d, matmul = (ops._import_op_module(name)
                                       for name in ("attention", "bias_act", "conv2d", "matmul"))

_cuda = _backend.cuda_module()
pytestmark = [
    pytest.mark.skipif(_cuda is None, reason="pixelforge._cuda is not built (nvcc not found at install time)"),
    pytest.mark.skipif(_cuda is not None and _backend.cuda_device_count() > 0,
                       reason="a GPU is present: tests/gpu launches these kernels on real device memory"),
]

NO_DEVICE = r"driver|device"  # cudaErrorInsufficientDriver / cudaErrorNoDevice


class HostAsDevice(np.ndarray):
    """Host memory posing as a CuPy array: what the glue reads of one is ``.data.ptr``."""

    @property
    def data(self):
        return types.SimpleNamespace(ptr=self.ctypes.data)


def dev(a):
    return np.ascontiguousarray(a).view(HostAsDevice)


def _fake_cupy():
    cp = types.SimpleNamespace(float32=np.float32, float16=np.float16)
    cp.empty = lambda shape, dtype=np.float32: dev(np.zeros(shape, dtype))
    cp.empty_like = lambda a: dev(np.zeros_like(np.asarray(a)))
    cp.ones = lambda shape, dtype=np.float32: dev(np.ones(shape, dtype))
    cp.ascontiguousarray = dev
    stream = types.SimpleNamespace(ptr=0)  # the default stream, as CuPy reports it
    cp.cuda = types.SimpleNamespace(get_current_stream=lambda: stream)
    return cp


@pytest.fixture
def loaders(monkeypatch):
    """The ops' CUDA loaders as a GPU machine would run them, on the stand-in CuPy."""
    monkeypatch.setattr(_backend, "cupy", _fake_cupy)
    monkeypatch.setattr(_backend, "cuda_device_count", lambda: 1)
    return types.SimpleNamespace(
        attention=attention._load_cuda(), attention_backward=attention._load_cuda_backward(),
        bias_act=bias_act._load_cuda(), bias_act_backward=bias_act._load_cuda_backward(),
        matmul=matmul._load_cuda(), conv2d=conv2d._load_cuda())


def _r(*shape, dtype=np.float32):
    return dev(np.random.default_rng(0).standard_normal(shape).astype(dtype))


def test_every_binding_is_there():
    names = {"device_count", "runtime_version", "archs", "dtypes",
             "attention_forward", "attention_backward_workspace", "attention_backward",
             "bias_act_forward", "bias_act_backward", "matmul",
             "conv2d_ws_floats", "conv2d_forward", "conv2d_backward_data", "conv2d_backward_weight",
             "conv2d_backward_bias"}
    assert names <= set(dir(_cuda)), names - set(dir(_cuda))
    assert _cuda.device_count() == 0
    # the codes of kernels/common/dtype.h, which every binding checks
    assert _cuda.dtypes == {"float32": 0, "float16": 1, "bfloat16": 2}


def test_a_dtype_without_kernels_is_refused_before_the_binding(loaders):
    x = _r(3, 5, dtype=np.float64)
    with pytest.raises(TypeError, match="^x: dtype float64 not supported by the CUDA kernels"):
        loaders.bias_act(x, None, 1, "relu", 0.2, 1.0, -1.0)
    with pytest.raises(TypeError, match="^q: dtype float64"):
        loaders.attention(_r(1, 1, 2, 4, dtype=np.float64), _r(1, 1, 2, 4, dtype=np.float64),
                          _r(1, 1, 2, 4, dtype=np.float64), False, 1.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_attention_reaches_cuda(loaders, dtype):
    q, k, v = _r(2, 4, 5, 8, dtype=dtype), _r(2, 2, 7, 8, dtype=dtype), _r(2, 2, 7, 8, dtype=dtype)
    with pytest.raises(RuntimeError, match=r"^attention_forward: .*(" + NO_DEVICE + ")"):
        loaders.attention(q, k, v, True, 0.125)
    out, lse = dev(np.zeros_like(q)), dev(np.zeros(q.shape[:3], np.float32))
    with pytest.raises(RuntimeError, match=r"^attention_backward: .*(" + NO_DEVICE + ")"):
        loaders.attention_backward(_r(*q.shape, dtype=dtype), q, k, v, out, lse, False, 0.125)


def test_attention_empty_and_malformed():
    # batch 0: the binding returns before any CUDA call (shapes as lists and as tuples)
    assert _cuda.attention_forward(0, 0, 0, 0, 0, [0, 4, 5, 8], (0, 2, 7, 8), False, 1.0, 0, 0) is None
    assert _cuda.attention_backward_workspace((2, 4, 5, 8), [2, 2, 7, 8], True, 1.0) == 2 * 4 * 5 * 9
    with pytest.raises(ValueError, match="^q: expected 4 dims"):
        _cuda.attention_forward(1, 1, 1, 1, 1, [4, 5, 8], [1, 2, 7, 8], False, 1.0, 0, 0)
    with pytest.raises(ValueError, match="^k: q heads must be a multiple"):
        _cuda.attention_backward_workspace([1, 3, 5, 8], [1, 2, 7, 8], False, 1.0)
    with pytest.raises(ValueError, match="^q: null device pointer"):
        _cuda.attention_forward(0, 1, 1, 1, 1, [1, 2, 5, 8], [1, 2, 7, 8], False, 1.0, 0, 0)
    with pytest.raises(ValueError, match="^dtype:"):
        _cuda.attention_forward(1, 1, 1, 1, 1, [1, 2, 5, 8], [1, 2, 7, 8], False, 1.0, 7, 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_bias_act_reaches_cuda(loaders, dtype):
    x, b = _r(3, 5, 4, dtype=dtype), _r(5, dtype=dtype)
    with pytest.raises(RuntimeError, match=r"^bias_act_forward: .*(" + NO_DEVICE + ")"):
        loaders.bias_act(x, b, 1, "lrelu", 0.2, 1.4, -1.0)
    with pytest.raises(RuntimeError, match=r"^bias_act_backward: .*(" + NO_DEVICE + ")"):
        loaders.bias_act_backward(_r(3, 5, 4, dtype=dtype), x, b, 1, "lrelu", 0.2, 1.4, -1.0)


def test_bias_act_empty_and_malformed(loaders):
    # n = 0: nothing to launch, no CUDA call, an empty result
    y = loaders.bias_act(dev(np.zeros((0, 5), np.float32)), _r(5), 1, "relu", 0.2, 1.0, -1.0)
    assert y.shape == (0, 5)
    dx, db = loaders.bias_act_backward(dev(np.zeros((0, 5), np.float32)), dev(np.zeros((0, 5), np.float32)), None,
                                       1, "relu", 0.2, 1.0, -1.0)
    assert dx.shape == (0, 5) and db is None
    with pytest.raises(ValueError, match="^dim: out of range"):
        _cuda.bias_act_forward(1, 0, 1, (3, 5), 2, 0, 0.2, 1.0, -1.0, 0, 0)
    with pytest.raises(ValueError, match="^x: null device pointer"):
        _cuda.bias_act_forward(0, 0, 1, [3, 5], 1, 0, 0.2, 1.0, -1.0, 0, 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, True)])
def test_matmul_reaches_cuda(loaders, dtype, trans_a, trans_b):
    a = _r(2, 7, 5, dtype=dtype)  # (batch, M, K), or (batch, K, M) transposed
    b = _r(2, 5, 3, dtype=dtype)
    if trans_a:
        a = dev(np.ascontiguousarray(np.swapaxes(a, 1, 2)))
    if trans_b:
        b = dev(np.ascontiguousarray(np.swapaxes(b, 1, 2)))
    out = dev(np.zeros((2, 7, 3), dtype))
    with pytest.raises(RuntimeError, match=r"^matmul: .*(" + NO_DEVICE + ")"):
        loaders.matmul.gemm(a, b, trans_a, trans_b, _r(3, dtype=dtype), out)
    with pytest.raises(RuntimeError, match=r"^matmul: .*(" + NO_DEVICE + ")"):
        loaders.matmul.colsum(_r(9, 3, dtype=dtype))


def test_matmul_empty_and_malformed(loaders):
    # an empty output (batch 0, M 0, N 0): no CUDA call
    for shape_a, shape_b, shape_c in [((0, 7, 5), (0, 5, 3), (0, 7, 3)), ((1, 0, 5), (1, 5, 3), (1, 0, 3)),
                                      ((1, 7, 5), (1, 5, 0), (1, 7, 0))]:
        out = dev(np.zeros(shape_c, np.float32))
        assert loaders.matmul.gemm(_r(*shape_a), _r(*shape_b), False, False, None, out) is out
    with pytest.raises(ValueError, match="^geometry: expected 12"):
        _cuda.matmul(1, 1, 0, 1, [1, 2, 3], 0, 0)
    with pytest.raises(ValueError, match="^out: strides too small"):
        _cuda.matmul(1, 1, 0, 1, (1, 4, 4, 4, 16, 4, 1, 16, 4, 1, 16, 2), 0, 0)


def _conv_case(dtype, n=2):
    x, w, bias = _r(n, 4, 9, 8, dtype=dtype), _r(6, 2, 3, 3, dtype=dtype), _r(6, dtype=dtype)
    geo = conv2d._conv_geo(x.shape, w.shape, 2, 1, 1, 2)
    return x, w, bias, geo, (n, 6) + geo.out_hw


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_conv2d_reaches_cuda(loaders, dtype):
    x, w, bias, geo, y_shape = _conv_case(dtype)
    c = loaders.conv2d
    with pytest.raises(RuntimeError, match=r"^conv2d_forward: .*(" + NO_DEVICE + ")"):
        c["forward"](x, w, bias, geo)
    dy = _r(*y_shape, dtype=dtype)
    with pytest.raises(RuntimeError, match=r"^conv2d_backward_data: .*(" + NO_DEVICE + ")"):
        c["backward_data"](dy, w, x.shape, geo)
    with pytest.raises(RuntimeError, match=r"^conv2d_backward_weight: .*(" + NO_DEVICE + ")"):
        c["backward_weight"](x, dy, w.shape, geo)
    with pytest.raises(RuntimeError, match=r"^conv2d_backward_bias: .*(" + NO_DEVICE + ")"):
        c["backward_bias"](dy)


def test_conv2d_empty_and_malformed(loaders):
    x, w, bias, geo, y_shape = _conv_case(np.float32, n=0)
    # batch 0: forward and backward-data have nothing to launch
    assert loaders.conv2d["forward"](x, w, bias, geo).shape == y_shape
    assert loaders.conv2d["backward_data"](_r(*y_shape), w, x.shape, geo).shape == x.shape
    g = geo.args()
    assert _cuda.conv2d_ws_floats(tuple(x.shape), list(w.shape), list(y_shape), tuple(g)) == 6 * 2 * 3 * 3
    with pytest.raises(ValueError, match="expected 9 geometry values"):
        _cuda.conv2d_ws_floats(list(x.shape), list(w.shape), list(y_shape), g[:8])
    with pytest.raises(ValueError, match="^weight: shape.1. . groups"):
        _cuda.conv2d_ws_floats([1, 6, 9, 8], list(w.shape), [1, 6, 5, 4], g)
    with pytest.raises(ValueError, match="^out: batch differs"):
        _cuda.conv2d_forward(1, 1, 0, 1, [1, 4, 9, 8], list(w.shape), [2, 6, 5, 4], g, 0, 0, 0)
    with pytest.raises(ValueError, match="^bias: length"):
        _cuda.conv2d_forward(1, 1, 1, 1, [1, 4, 9, 8], list(w.shape), [1, 6, 5, 4], g, 5, 0, 0)
