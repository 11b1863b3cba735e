"""bias_act as Numba kernels: CPU (njit, parallel over rows) and GPU (numba.cuda, one
thread per element), both from the scalar definitions in :mod:`.scalar`.

x is viewed as (outer, C, inner) with C the bias dimension.
"""
import numpy as np
from numba import cuda, prange

from ... import _backend
from . import _jit, scalar
from ._jit import cpu_fn, gpu_fn

_value_cpu = cpu_fn(scalar.bias_act_value)
_grad_cpu = cpu_fn(scalar.bias_act_grad)


@_jit.njit(parallel=True)
def _forward_cpu(x, b, has_b, y, channels, inner, act, alpha, gain, clamp):
    rows = x.size // inner if inner > 0 else 0
    for r in prange(rows):
        c = r % channels
        bias = b[c] if has_b else 0.0
        base = r * inner
        for i in range(inner):
            y[base + i] = _value_cpu(act, x[base + i] + bias, alpha, gain, clamp)


@_jit.njit(parallel=True)
def _backward_cpu(gy, x, b, has_b, gx, row_sum, channels, inner, act, alpha, gain, clamp):
    rows = row_sum.size  # outer * channels: every row's sum is written, even when inner == 0
    for r in prange(rows):
        c = r % channels
        bias = b[c] if has_b else 0.0
        base = r * inner
        s = 0.0
        for i in range(inner):
            d = _grad_cpu(act, x[base + i] + bias, gy[base + i], alpha, gain, clamp)
            gx[base + i] = d
            s += d
        row_sum[r] = s


def _geometry(x, dim):
    outer = int(np.prod(x.shape[:dim], dtype=np.int64))
    channels = x.shape[dim]
    inner = int(np.prod(x.shape[dim + 1:], dtype=np.int64))
    return outer, channels, inner


def forward_cpu(x, bias, dim, act, alpha, gain, clamp):
    y = np.empty_like(x)
    _, channels, inner = _geometry(x, dim)
    b = bias if bias is not None else np.zeros(1, x.dtype)
    _forward_cpu(x.reshape(-1), b, bias is not None, y.reshape(-1), channels, inner, act,
                 float(alpha), float(gain), float(clamp))
    return y


def backward_cpu(grad_out, x, bias, dim, act, alpha, gain, clamp, need_dbias=True):
    gx = np.empty_like(x)
    outer, channels, inner = _geometry(x, dim)
    b = bias if bias is not None else np.zeros(1, x.dtype)
    row_sum = np.zeros(outer * channels, np.float64)
    _backward_cpu(grad_out.reshape(-1), x.reshape(-1), b, bias is not None, gx.reshape(-1), row_sum,
                  channels, inner, act, float(alpha), float(gain), float(clamp))
    dbias = None
    if bias is not None and need_dbias:
        # fixed order over the outer index: independent of the thread count
        dbias = row_sum.reshape(outer, channels).sum(axis=0).astype(x.dtype)
    return gx, dbias


# ------------------------------------------------------------------------------- GPU
_gpu_kernels = {}


def _gpu():
    if not _gpu_kernels:
        # `cuda` must be this module's global: the simulator swaps it in kernel globals.
        value = gpu_fn(scalar.bias_act_value)
        grad = gpu_fn(scalar.bias_act_grad)

        @cuda.jit
        def fwd(x, b, has_b, y, channels, inner, act, alpha, gain, clamp):
            i = cuda.grid(1)
            stride = cuda.gridsize(1)
            while i < x.size:
                c = (i // inner) % channels
                bias = b[c] if has_b else 0.0
                y[i] = value(act, x[i] + bias, alpha, gain, clamp)
                i += stride

        @cuda.jit
        def bwd(gy, x, b, has_b, gx, channels, inner, act, alpha, gain, clamp):
            i = cuda.grid(1)
            stride = cuda.gridsize(1)
            while i < x.size:
                c = (i // inner) % channels
                bias = b[c] if has_b else 0.0
                gx[i] = grad(act, x[i] + bias, gy[i], alpha, gain, clamp)
                i += stride

        _gpu_kernels["fwd"], _gpu_kernels["bwd"] = fwd, bwd
    return _gpu_kernels


def _launch_config(n):
    threads = 128
    blocks = max(1, min((n + threads - 1) // threads, 4096))
    return blocks, threads


def _stream_for(arr):
    if _backend.is_cupy_array(arr):
        return cuda.external_stream(_backend.cupy().cuda.get_current_stream().ptr)
    return 0


def forward_gpu(x, bias, dim, act, alpha, gain, clamp):
    """numba.cuda forward; x a CuPy array (or a NumPy array under the CUDA simulator)."""
    xp = np if isinstance(x, np.ndarray) else __import__("cupy")
    y = xp.empty_like(x)
    _, channels, inner = _geometry(x, dim)
    if x.size == 0:
        return y
    b = bias if bias is not None else xp.zeros(1, x.dtype)
    blocks, threads = _launch_config(x.size)
    _gpu()["fwd"][blocks, threads, _stream_for(x)](x.reshape(-1), b, bias is not None, y.reshape(-1), channels,
                                                   inner, act, float(alpha), float(gain), float(clamp))
    return y


def backward_gpu(grad_out, x, bias, dim, act, alpha, gain, clamp, need_dbias=True):
    xp = np if isinstance(x, np.ndarray) else __import__("cupy")
    gx = xp.empty_like(x)
    _, channels, inner = _geometry(x, dim)
    if x.size:
        b = bias if bias is not None else xp.zeros(1, x.dtype)
        blocks, threads = _launch_config(x.size)
        _gpu()["bwd"][blocks, threads, _stream_for(x)](grad_out.reshape(-1), x.reshape(-1), b, bias is not None,
                                                       gx.reshape(-1), channels, inner, act, float(alpha),
                                                       float(gain), float(clamp))
    dbias = None
    if bias is not None and need_dbias:
        axes = tuple(i for i in range(x.ndim) if i != dim)
        dbias = gx.sum(axis=axes, dtype=np.float64).astype(x.dtype)
    return gx, dbias
