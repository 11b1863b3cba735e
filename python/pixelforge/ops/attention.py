"""Scaled dot-product attention (flash-style forward and backward).

Implementations: ``cpu`` (kernels/attention/attention_cpu.cpp: AVX-512/AVX2/generic chosen at
run time, OpenMP; float32 and float64), ``cuda`` (kernels/attention/attention_cuda.cu:
float32, float16, bfloat16; tensor cores for the 16-bit types), ``ref`` (ops/_ref/attention.py:
float64, materialized softmax). There is no numba implementation (GEMM-shaped work).
"""
from __future__ import annotations

import math

import numpy as np

from .. import _backend
from .._dispatch import NotBuilt, register, resolve
from .._validate import float_array, real_number, same_device, same_dtype
from . import _glue
from ._ref import attention as _ref

_ptr = _glue.ptr

_CUDA_MAX_D = 128


def _check_flag(v, name):
    if not isinstance(v, bool):
        raise TypeError(f"{name}: expected a bool, got {type(v).__name__}")
    return v


def _check_qkv(q, k, v, causal, scale, kv_views=False):
    """kv_views: k and v may stay views (the forward's impls read a KV cache's in place or copy)."""
    q = float_array(q, "q")
    k = float_array(k, "k", contiguous=not kv_views)
    v = float_array(v, "v", contiguous=not kv_views)
    for a, name, dims in ((q, "q", "(B, H, Lq, D)"), (k, "k", "(B, Hkv, Lk, D)"), (v, "v", "(B, Hkv, Lk, D)")):
        if a.ndim != 4:
            raise ValueError(f"{name}: expected 4 dimensions {dims}, got shape {tuple(a.shape)}")
    device = same_device(q=q, k=k, v=v)
    same_dtype(q=q, k=k, v=v)
    b, h, lq, d = q.shape
    if k.shape[0] != b:
        raise ValueError(f"k: batch size {k.shape[0]} differs from q's {b}")
    if v.shape[0] != b:
        raise ValueError(f"v: batch size {v.shape[0]} differs from q's {b}")
    if k.shape[3] != d:
        raise ValueError(f"k: head dim {k.shape[3]} differs from q's {d}")
    if v.shape[3] != d:
        raise ValueError(f"v: head dim {v.shape[3]} differs from q's {d}")
    if v.shape[1] != k.shape[1]:
        raise ValueError(f"v: {v.shape[1]} heads but k has {k.shape[1]}")
    if v.shape[2] != k.shape[2]:
        raise ValueError(f"v: length {v.shape[2]} differs from k's {k.shape[2]}")
    hkv, lk = k.shape[1], k.shape[2]
    if hkv == 0 or h % hkv != 0:
        raise ValueError(f"k: q has {h} heads, not a multiple of k's {hkv} heads (H % Hkv must be 0)")
    if lk == 0:
        raise ValueError("k: empty keys (Lk = 0): every query needs at least one key")
    if d == 0:
        raise ValueError("q: head dim D must be > 0")
    causal = _check_flag(causal, "causal")
    if causal and lq > lk:
        raise ValueError(f"causal: query length {lq} > key length {lk}; with the bottom-right aligned mask "
                         f"the first {lq - lk} query rows would see no key")
    scale = 1.0 / math.sqrt(d) if scale is None else real_number(scale, "scale")
    if device == "cuda" and d > _CUDA_MAX_D:
        raise ValueError(f"q: head dim {d} > {_CUDA_MAX_D} is not supported on the GPU")
    return q, k, v, causal, scale, device


def attention(q, k, v, *, causal=False, scale=None, return_lse=False, impl="auto"):
    """Scaled dot-product attention ``softmax(scale * q k^T + mask) v``.

    q: (B, H, Lq, D); k, v: (B, Hkv, Lk, D) with H % Hkv == 0 (grouped-query / multi-query:
    query head h reads kv head h // (H // Hkv)). scale defaults to D**-0.5.
    causal: query i sees keys j <= i + (Lk - Lq) (bottom-right aligned: torch's is_causal when
    Lq == Lk, and Lq = 1 decodes against a KV cache); needs Lq <= Lk.
    Returns out (B, H, Lq, D) in q's dtype, or ``(out, lse)`` with ``return_lse``: lse (B, H, Lq)
    the natural-log softmax denominator per row, float64 for float64 inputs, else float32.
    CPU: float32/float64; GPU (CuPy): float32/float16/bfloat16, D <= 128, float32 accumulation.
    """
    _check_flag(return_lse, "return_lse")
    q, k, v, causal, scale, device = _check_qkv(q, k, v, causal, scale, kv_views=True)
    _, fn = resolve("attention", device, impl)
    out, lse = fn(q, k, v, causal, scale)
    return (out, lse) if return_lse else out


def attention_backward(grad_out, q, k, v, out, lse, *, causal=False, scale=None, impl="auto"):
    """Gradients ``(dq, dk, dv)`` of :func:`attention` (FlashAttention-2 style recompute).

    grad_out, out: (B, H, Lq, D) (``out`` and ``lse`` from the forward with the same
    causal/scale); lse: (B, H, Lq). dq has q's shape, dk/dv k's shape (GQA: summed over the
    query heads sharing a kv head). The scores are recomputed tile by tile from lse.
    CPU: deterministic (no atomics; fixed summation order for any thread count).
    GPU: dk/dv are deterministic (one block owns each key tile and loops over query heads and
    tiles in order); dq is accumulated with float32 atomics across key tiles, so its last bits
    may vary from run to run.
    """
    q, k, v, causal, scale, device = _check_qkv(q, k, v, causal, scale)
    grad_out = float_array(grad_out, "grad_out")
    out = float_array(out, "out")
    lse = float_array(lse, "lse", dtypes=("float32", "float64"))
    same_device(q=q, grad_out=grad_out, out=out, lse=lse)
    same_dtype(q=q, grad_out=grad_out, out=out)
    for a, name in ((grad_out, "grad_out"), (out, "out")):
        if tuple(a.shape) != tuple(q.shape):
            raise ValueError(f"{name}: shape {tuple(a.shape)} differs from q's {tuple(q.shape)}")
    if tuple(lse.shape) != tuple(q.shape[:3]):
        raise ValueError(f"lse: shape {tuple(lse.shape)}, expected (B, H, Lq) = {tuple(q.shape[:3])}")
    want = "float64" if q.dtype.name == "float64" else "float32"
    if lse.dtype.name != want:
        lse = lse.astype(want)
    _, fn = resolve("attention_backward", device, impl)
    return fn(grad_out, q, k, v, out, lse, causal, scale)


# ----------------------------------------------------------------------------- impls
@register("attention", "cpu", "ref")
@register("attention", "cuda", "ref")
def _load_ref():
    return lambda q, k, v, causal, scale: _ref.attention(q, k, v, causal, scale, return_lse=True)


@register("attention_backward", "cpu", "ref")
@register("attention_backward", "cuda", "ref")
def _load_ref_backward():
    return _ref.attention_backward


def _cpu_mod():
    mod = _backend.cpu_module()
    if mod is None:
        raise NotBuilt("pixelforge._cpu is not built")
    if not hasattr(mod, "attention_forward"):
        raise NotBuilt("pixelforge._cpu was built without attention")
    return mod


@register("attention", "cpu", "cpu")
def _load_cpu():
    mod = _cpu_mod()

    def forward(q, k, v, causal, scale):
        out = np.empty(q.shape, q.dtype)
        lse = np.empty(q.shape[:3], q.dtype)
        if q.size:
            # k, v: contiguous, or a KV cache's views (rows of D in evenly spaced head blocks)
            k, v = (k, v) if _kv_blocks_ok(k) and _kv_blocks_ok(v) else (np.ascontiguousarray(k), np.ascontiguousarray(v))
            mod.attention_forward(np.ascontiguousarray(q), k, v, out, lse, causal, scale)
        return out, lse
    return forward


def _kv_blocks_ok(a):
    """What the CPU forward reads in place: C-contiguous, or (B, Hkv, Lk, D) whose rows are D
    apart inside evenly spaced (batch, head) blocks (a view of a longer buffer)."""
    if a.flags.c_contiguous:
        return True
    it, (b, h, lk, d) = a.itemsize, a.shape
    s0, s1, s2, s3 = a.strides
    return (s3 == it and (lk == 1 or s2 == d * it) and s1 % it == 0 and s1 >= lk * d * it
            and (b == 1 or s0 == h * s1))


@register("attention_backward", "cpu", "cpu")
def _load_cpu_backward():
    mod = _cpu_mod()

    def backward(grad_out, q, k, v, out, lse, causal, scale):
        dq, dk, dv = np.empty_like(q), np.empty_like(k), np.empty_like(v)
        if q.size == 0:
            dq[...] = 0
            dk[...] = 0
            dv[...] = 0
            return dq, dk, dv
        mod.attention_backward(grad_out, q, k, v, out, lse, dq, dk, dv, causal, scale)
        return dq, dk, dv
    return backward


@register("attention", "cuda", "cuda")
def _load_cuda():
    mod = _glue.cuda_module("attention_forward")
    cp = _backend.cupy()

    def forward(q, k, v, causal, scale):
        q, k, v = cp.ascontiguousarray(q), cp.ascontiguousarray(k), cp.ascontiguousarray(v)
        out = cp.empty_like(q)
        lse = cp.empty(q.shape[:3], cp.float32)
        if q.size:
            mod.attention_forward(_ptr(q), _ptr(k), _ptr(v), _ptr(out), _ptr(lse), list(q.shape), list(k.shape),
                                  bool(causal), float(scale), _glue.dtype_code(q, "q"), _glue.stream())
        return out, lse
    return forward


@register("attention_backward", "cuda", "cuda")
def _load_cuda_backward():
    mod = _glue.cuda_module("attention_backward")
    cp = _backend.cupy()

    def backward(grad_out, q, k, v, out, lse, causal, scale):
        dq, dk, dv = cp.empty_like(q), cp.empty_like(k), cp.empty_like(v)
        if q.size == 0:
            dq[...] = 0
            dk[...] = 0
            dv[...] = 0
            return dq, dk, dv
        nws = mod.attention_backward_workspace(list(q.shape), list(k.shape), bool(causal), float(scale))
        ws = cp.empty(max(int(nws), 1), cp.float32)
        mod.attention_backward(_ptr(grad_out), _ptr(q), _ptr(k), _ptr(v), _ptr(out), _ptr(lse), _ptr(dq), _ptr(dk),
                               _ptr(dv), _ptr(ws), list(q.shape), list(k.shape), bool(causal), float(scale),
                               _glue.dtype_code(q, "q"), _glue.stream())
        return dq, dk, dv
    return backward
