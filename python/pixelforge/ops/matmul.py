"""Our own GEMM: ``matmul`` (2-D and batched 3-D, transposes by strides), ``linear`` (bias
fused into the GEMM epilogue) and ``linear_backward``.

Implementations: ``cpu`` (kernels/matmul/matmul_cpu.cpp: packed, cache-blocked, AVX-512 /
AVX2+FMA / portable micro-kernels chosen at run time, OpenMP; float32 and float64; inside
``pf.autocast("bfloat16")`` float32 operands go through kernels/matmul/matmul_bf16_cpu.cpp:
bfloat16 products, float32 sums, where the CPU has avx512_bf16 — see pixelforge/precision.py),
``cuda`` (kernels/matmul/matmul_cuda.cu: shared-memory tiled float32 SIMT kernel, WMMA
tensor cores for float16 / bfloat16, float32 accumulation), ``ref`` (NumPy / CuPy matmul).
No external BLAS is called by the fast paths: NumPy's matmul (OpenBLAS) would bring its own
thread pool, which fights OpenMP on small machines.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _backend, precision
from .._dispatch import NotBuilt, register, resolve
from .._validate import CPU_FLOAT, GPU_FLOAT, as_array, device_of, same_device, xp_of
from . import _glue
from ._ref import matmul as _ref

_NAMES = ("matmul", "linear", "linear_backward")
_CPU_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


# ----------------------------------------------------------------------------- validation
def _float_operand(x, name, *, ndims):
    """An array of an allowed float dtype with ndim in ``ndims``; strides are kept (the
    kernels read any strides) unless they are not a multiple of the item size."""
    if type(x) is np.ndarray and x.dtype in _CPU_DTYPES and x.ndim in ndims:  # the common case, quickly
        isz = x.itemsize
        for st in x.strides:
            if st % isz:
                return np.ascontiguousarray(x)
        return x
    arr = as_array(x, name)
    dev = device_of(arr)
    allowed = CPU_FLOAT if dev == "cpu" else GPU_FLOAT
    if arr.dtype.name not in allowed:
        kind = "integer" if arr.dtype.kind in "iub" else arr.dtype.name
        raise TypeError(f"{name}: dtype {arr.dtype.name} ({kind}) not supported on {dev}; expected one of {allowed}")
    if arr.ndim not in ndims:
        want = " or ".join(str(n) for n in ndims)
        raise ValueError(f"{name}: expected {want} dimensions, got shape {tuple(arr.shape)}")
    if any(s % arr.itemsize for s in arr.strides):
        arr = xp_of(arr).ascontiguousarray(arr)
    return arr


def _flag(v, name):
    if v is True or v is False:
        return v
    if not isinstance(v, np.bool_):
        raise TypeError(f"{name}: expected a bool, got {type(v).__name__}")
    return bool(v)


def _same_dtype(first_name, first, **others):
    for k, v in others.items():
        if v is not None and v.dtype != first.dtype:
            raise TypeError(f"{k}: dtype {v.dtype.name} differs from {first_name}'s {first.dtype.name}")


def _check_out(out, shape, dtype, device, inputs):
    if not (type(out) is np.ndarray or _backend.is_cupy_array(out)):
        raise TypeError(f"out: expected a NumPy or CuPy array, got {type(out).__name__}")
    if device_of(out) != device:
        raise ValueError(f"out: on {device_of(out)} but the inputs are on {device}")
    if out.dtype != dtype:
        raise TypeError(f"out: dtype {out.dtype.name} differs from the inputs' {np.dtype(dtype).name}")
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"out: shape {tuple(out.shape)} differs from the result's {tuple(shape)}")
    if not out.flags.c_contiguous:
        raise ValueError("out: must be C-contiguous")
    if device == "cpu":
        if not out.flags.writeable:
            raise ValueError("out: is read-only")
        for name, x in inputs.items():
            if x is not None and np.may_share_memory(out, x):
                raise ValueError(f"out: overlaps {name}")
    return out


def _gemm_shapes(a, b, trans_a, trans_b):
    m, k = (a.shape[-1], a.shape[-2]) if trans_a else (a.shape[-2], a.shape[-1])
    k2, n = (b.shape[-1], b.shape[-2]) if trans_b else (b.shape[-2], b.shape[-1])
    if k != k2:
        raise ValueError(f"b: inner dimensions differ: op(a) is {m}x{k} but op(b) is {k2}x{n}")
    ba = a.shape[0] if a.ndim == 3 else 1
    bb = b.shape[0] if b.ndim == 3 else 1
    if ba != bb and ba != 1 and bb != 1:
        raise ValueError(f"b: batch size {bb} differs from a's {ba} (only a batch of 1 broadcasts)")
    return (bb if ba == 1 else ba), m, n, k


# ----------------------------------------------------------------------------- public ops
def matmul(a, b, *, trans_a=False, trans_b=False, out=None, impl="auto"):
    """``C = op(a) @ op(b)``, ``op(x)`` = x or its transpose over the last two axes.

    a: (M, K) or (B, M, K) — (K, M) / (B, K, M) with ``trans_a``.
    b: (K, N) or (B, K, N) — (N, K) / (B, N, K) with ``trans_b``.
    A batch of 1 (or a 2-D operand) broadcasts over the other's batch. Returns (M, N) when
    both are 2-D, else (B, M, N). Transposes and non-contiguous views are read through
    their strides (never copied). ``out``: optional C-contiguous array of the result's shape
    and dtype (must not overlap a or b). dtypes: float32/float64 on the CPU;
    float32/float16/bfloat16 on the GPU (float32 accumulation).
    """
    a = _float_operand(a, "a", ndims=(2, 3))
    b = _float_operand(b, "b", ndims=(2, 3))
    trans_a = _flag(trans_a, "trans_a")
    trans_b = _flag(trans_b, "trans_b")
    device = "cpu" if type(a) is np.ndarray and type(b) is np.ndarray else same_device(a=a, b=b)
    if a.dtype != b.dtype:
        _same_dtype("a", a, b=b)
    batch, m, n, _ = _gemm_shapes(a, b, trans_a, trans_b)
    shape = (m, n) if a.ndim == 2 and b.ndim == 2 else (batch, m, n)
    be = resolve("matmul", device, impl)[1]
    if out is None:
        out = xp_of(a).empty(shape, a.dtype)
    else:
        out = _check_out(out, shape, a.dtype, device, {"a": a, "b": b})
    be.gemm(a, b, trans_a, trans_b, None, out.reshape(batch, m, n))
    return out


def linear(x, weight, bias=None, *, impl="auto"):
    """``y = x @ weight.T + bias`` (torch.nn.functional.linear), one GEMM, bias in its epilogue.

    x: (..., in) (ndim >= 1); weight: (out, in); bias: (out,) or None. Returns (..., out).
    """
    x = _float_operand(x, "x", ndims=range(1, 33))
    weight = _float_operand(weight, "weight", ndims=(2,))
    if bias is not None:
        bias = _float_operand(bias, "bias", ndims=(1,))
    device = same_device(x=x, weight=weight, bias=bias)
    _same_dtype("x", x, weight=weight, bias=bias)
    n_out, n_in = weight.shape
    if x.shape[-1] != n_in:
        raise ValueError(f"weight: in_features {n_in} does not match x.shape[-1] = {x.shape[-1]}")
    if bias is not None:
        if bias.shape[0] != n_out:
            raise ValueError(f"bias: length {bias.shape[0]} does not match weight.shape[0] = {n_out}")
        bias = xp_of(bias).ascontiguousarray(bias)
    be = resolve("linear", device, impl)[1]
    xp = xp_of(x)
    lead = x.shape[:-1]
    x2 = x.reshape(math.prod(lead), n_in)  # a view whenever the leading dims allow it
    out = xp.empty((x2.shape[0], n_out), x.dtype)
    be.gemm(x2, weight, False, True, bias, out.reshape(1, x2.shape[0], n_out))
    return out.reshape(lead + (n_out,))


def linear_backward(grad_out, x, weight, *, needs=(True, True, True), impl="auto"):
    """Gradients of :func:`linear`: ``(dx, dweight, dbias)``, None where ``needs`` is False.

    grad_out: (..., out); x: (..., in) with the same leading dims; weight: (out, in).
    dx = grad_out @ weight -> (..., in); dweight = grad_outᵀ @ x over the flattened leading
    dims -> (out, in); dbias = grad_out summed over the leading dims -> (out,). dweight and
    dbias use a fixed reduction order (the same bits for any thread count).
    """
    grad_out = _float_operand(grad_out, "grad_out", ndims=range(1, 33))
    x = _float_operand(x, "x", ndims=range(1, 33))
    weight = _float_operand(weight, "weight", ndims=(2,))
    if not isinstance(needs, (tuple, list)) or len(needs) != 3:
        raise TypeError("needs: expected a tuple of three bools (dx, dweight, dbias)")
    need_dx, need_dw, need_db = (_flag(v, "needs") for v in needs)
    device = same_device(grad_out=grad_out, x=x, weight=weight)
    _same_dtype("x", x, grad_out=grad_out, weight=weight)
    n_out, n_in = weight.shape
    if x.shape[-1] != n_in:
        raise ValueError(f"weight: in_features {n_in} does not match x.shape[-1] = {x.shape[-1]}")
    if tuple(grad_out.shape) != tuple(x.shape[:-1]) + (n_out,):
        raise ValueError(f"grad_out: shape {tuple(grad_out.shape)} does not match x's leading dims + "
                         f"(out,) = {tuple(x.shape[:-1]) + (n_out,)}")
    be = resolve("linear_backward", device, impl)[1]
    xp = xp_of(x)
    rows = math.prod(x.shape[:-1])
    g2 = grad_out.reshape(rows, n_out)
    x2 = x.reshape(rows, n_in)
    dx = dw = db = None
    if need_dx:
        dx = xp.empty((g2.shape[0], n_in), x.dtype)
        be.gemm(g2, weight, False, False, None, dx.reshape(1, g2.shape[0], n_in))
        dx = dx.reshape(x.shape)
    if need_dw:
        dw = xp.empty((n_out, n_in), x.dtype)
        be.gemm(g2, x2, True, False, None, dw.reshape(1, n_out, n_in))
    if need_db:
        db = be.colsum(g2)
    return dx, dw, db


# ----------------------------------------------------------------------------- impls
class _Backend:
    """What the public ops need from an impl: ``gemm(a, b, trans_a, trans_b, bias, out3)``
    writing out3 (batch, M, N) and ``colsum(g2) -> (cols,)``."""

    def __init__(self, gemm, colsum):
        self.gemm = gemm
        self.colsum = colsum


@register(_NAMES, "cpu", "ref")
@register(_NAMES, "cuda", "ref")
def _load_ref():
    def gemm(a, b, trans_a, trans_b, bias, out3):
        if precision.use_bfloat16(a, b):  # (as the kernels: float32 where they do not exist)
            # autocast's meaning, written out: operands rounded to bfloat16, products summed
            # in float64 (the kernel sums in float32), the result stored as float32.
            a, b = precision.rounded64(a, b)
            c = np.empty(out3.shape, np.float64)
            _ref.gemm(a, b, trans_a, trans_b, bias, c)
            out3[...] = c
            return out3
        return _ref.gemm(a, b, trans_a, trans_b, bias, out3)
    return _Backend(gemm, _ref.colsum)


@register(_NAMES, "cpu", "cpu")
def _load_cpu():
    mod = _backend.cpu_module()
    if mod is None:
        raise NotBuilt("pixelforge._cpu is not built")
    if not hasattr(mod, "matmul"):
        raise NotBuilt("pixelforge._cpu was built without matmul")

    bf16 = getattr(mod, "matmul_bf16", None)

    def gemm(a, b, trans_a, trans_b, bias, out3):
        if bf16 is not None and precision.use_bfloat16(a, b):  # inside pf.autocast("bfloat16")
            bf16(a, b, out3, bias, trans_a, trans_b)
        else:
            mod.matmul(a, b, out3, bias, trans_a, trans_b)
        return out3

    def colsum(g2):
        out = np.empty(g2.shape[1], g2.dtype)
        mod.matmul_colsum(g2, out)
        return out
    return _Backend(gemm, colsum)


def _strides3(x, trans):
    """(batch stride, row stride, col stride) in elements of op(x); batch stride 0 for one."""
    st = [s // x.itemsize for s in x.strides]
    if x.ndim == 2:
        bs, rs, cs = 0, st[0], st[1]
    else:
        bs, rs, cs = (st[0] if x.shape[0] != 1 else 0), st[1], st[2]
    return (bs, cs, rs) if trans else (bs, rs, cs)


@register(_NAMES, "cuda", "cuda")
def _load_cuda():
    mod = _glue.cuda_module("matmul")
    cp = _backend.cupy()

    def gemm(a, b, trans_a, trans_b, bias, out3):
        batch, m, n = out3.shape
        k = a.shape[-2] if trans_a else a.shape[-1]
        abs_, ars, acs = _strides3(a, trans_a)
        bbs, brs, bcs = _strides3(b, trans_b)
        if bias is not None:
            bias = cp.ascontiguousarray(bias)
        mod.matmul(_glue.ptr(a), _glue.ptr(b), _glue.ptr(bias), _glue.ptr(out3),
                   [batch, m, n, k, abs_, ars, acs, bbs, brs, bcs, m * n, n], _glue.dtype_code(a, "a"),
                   _glue.stream())
        return out3

    def colsum(g2):
        # A 1×rows row of ones times g2: the GEMM's fixed k order makes it deterministic.
        ones = cp.ones((1, g2.shape[0]), g2.dtype)
        out = cp.empty((1, 1, g2.shape[1]), g2.dtype)
        gemm(ones, g2, False, False, None, out)
        return out.reshape(g2.shape[1])
    return _Backend(gemm, colsum)
