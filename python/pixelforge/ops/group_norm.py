"""GroupNorm (+ a fused activation) and LayerNorm: ``pf.ops.group_norm`` / ``layer_norm`` and
their backward passes, forward statistics returned for the backward (as attention's lse).

Implementations, one calling convention (rows = N * groups rows of cpg * inner elements;
float64 mean / rstd; float64 partial sums for dweight / dbias that the caller sums over axis 0
in a fixed order, so results do not depend on threads):
- ``cpu``: the C++ kernels (kernels/group_norm: OpenMP over rows, SIMD, the activation's
  vector exp in the same pass);
- ``numba``: the fused njit kernels (ops/_numba/norm.py);
- ``ref``: the readable NumPy/CuPy reference (ops/_ref/norm.py); the GPU path for now.
LayerNorm is GroupNorm's kernel with one group, one element per channel (inner = 1).
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import _backend
from .._dispatch import NotBuilt, register, resolve, set_order
from .._validate import choice, device_of, float_array, real_number, same_device, same_dtype
from ._ref import norm as _ref
from .bias_act import ACTIVATIONS

LAYER_NORM_ROWS = 16  # kLayerNormRows in kernels/group_norm/group_norm.h


def affine(w, b, n, dtype):
    """Flat weight and bias, ones / zeros standing in for a missing one (branch-free loops)."""
    w = np.ones(n, dtype) if w is None else np.ascontiguousarray(w.reshape(-1))
    b = np.zeros(n, dtype) if b is None else np.ascontiguousarray(b.reshape(-1))
    return w, b


class _Kernels:
    def __init__(self, mod):
        self._mod = mod

    def forward(self, x, w, b, groups, inner, eps, act=0, alpha=0.0):
        """x: C-contiguous (N, ...), N * groups rows; w, b: (groups * cpg,) or None; act: a
        bias_act code applied after the affine. Returns (y, mean, rstd), mean/rstd float64."""
        rows = x.shape[0] * groups
        y = np.empty_like(x)
        mean = np.empty(rows, np.float64)
        rstd = np.empty(rows, np.float64)
        if x.size:
            w, b = affine(w, b, x.size // (x.shape[0] * inner), x.dtype)
            self._mod.group_norm_forward(x, w, b, y, mean, rstd, groups, inner, float(eps), int(act), float(alpha))
        return y, mean, rstd

    def backward(self, gy, x, w, b, mean, rstd, groups, inner, need_x=True, act=0, alpha=0.0):
        """Returns (dx or None, pw, pb): pw/pb float64 partial sums of g * xhat and g, (rows, cpg)
        or, for LayerNorm rows, (row blocks, cpg); the caller sums them over axis 0 by group."""
        rows = x.shape[0] * groups
        cpg = x.size // (rows * inner) if rows and inner else 0
        gx = np.empty_like(x) if (need_x or act) else np.empty(1, x.dtype)
        # LayerNorm rows (one group, one element per channel, no activation): partial sums per
        # block of LAYER_NORM_ROWS rows, as the Numba kernels
        prow = -(-rows // LAYER_NORM_ROWS) if groups == 1 and inner == 1 and not act else rows
        pw = np.zeros((prow, cpg), np.float64)
        pb = np.zeros((prow, cpg), np.float64)
        if x.size:
            w, b = affine(w, b, groups * cpg, x.dtype)
            self._mod.group_norm_backward(gy, x, w, b, mean, rstd, gx, bool(need_x), pw, pb, groups, inner, int(act),
                                          float(alpha))
        return (gx if need_x else None), pw, pb


# ------------------------------------------------------------------------------ impls
_NAMES = ("group_norm", "layer_norm")


for _name in _NAMES:
    set_order(_name, "cpu", ("cpu", "numba", "ref"))
    set_order(_name, "cuda", ("ref",))


@register(_NAMES, "cpu", "cpu")
def _load_cpu():
    mod = _backend.cpu_module()
    if mod is None or not hasattr(mod, "group_norm_forward"):
        raise NotBuilt("pixelforge._cpu (with group_norm) is not built")
    return _Kernels(mod)


@register(_NAMES, "cpu", "numba")
def _load_numba():
    if _backend.numba_version() is None:
        raise NotBuilt("numba is not installed")
    from ._numba import norm  # noqa: PLC0415 - Numba loads on first use
    return norm


@register(_NAMES, "cpu", "ref")
@register(_NAMES, "cuda", "ref")
def _load_ref():
    return _ref


def kernels(op, device, impl="auto"):
    """``(impl name, rows kernels)`` of ``op`` ("group_norm" | "layer_norm") on ``device``: what
    the autograd layer calls without the public checks below."""
    return resolve(op, device, impl)


# ------------------------------------------------------------------------------ public
def _act(act, alpha):
    """(code, alpha) of an activation applied after the affine (None: none)."""
    if act is None:
        return 0, 0.0
    act = choice(act, "act", ACTIVATIONS)
    code, default_alpha, _ = ACTIVATIONS[act]
    return code, default_alpha if alpha is None else real_number(alpha, "alpha")


def _params(x, c, weight, bias, shape):
    w = None if weight is None else float_array(weight, "weight")
    b = None if bias is None else float_array(bias, "bias")
    for name, p in (("weight", w), ("bias", b)):
        if p is not None and tuple(p.shape) != shape:
            raise ValueError(f"{name}: expected shape {shape}, got {tuple(p.shape)}")
    device = same_device(x=x, weight=w, bias=b)
    same_dtype(x=x, weight=w, bias=b)
    return w, b, device


def _gn_args(x, num_groups, weight, bias, eps):
    x = float_array(x, "x", min_ndim=2)  # C-contiguous
    c = x.shape[1]
    if isinstance(num_groups, bool) or not isinstance(num_groups, numbers.Integral) or num_groups <= 0 \
            or c % num_groups:
        raise ValueError(f"num_groups: {num_groups!r} must be a positive int dividing the {c} channels of x")
    w, b, device = _params(x, c, weight, bias, (c,))
    eps = real_number(eps, "eps", positive=True)
    inner = int(np.prod(x.shape[2:], dtype=np.int64))
    return x, int(num_groups), w, b, eps, inner, device


def _stats_arg(a, name, rows, device):
    a = float_array(a, name, ndim=1)
    if a.shape != (rows,):
        raise ValueError(f"{name}: expected shape ({rows},) (one per normalized row), got {tuple(a.shape)}")
    if device_of(a) != device:
        raise ValueError(f"{name}: on {device_of(a)} but x is on {device}; move both to one device")
    return a.astype(np.float64)


def _reduce_partials(p, groups, shape, dtype):
    return p.reshape(-1, groups * p.shape[1]).sum(axis=0).astype(dtype).reshape(shape)


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5, *, act=None, alpha=None, return_stats=False,
               impl="auto"):
    """GroupNorm of x (N, C, *) over num_groups groups of channels, then ``weight``/``bias`` (C,)
    and, optionally, an activation in the same pass (``act``: "relu", "lrelu" with slope
    ``alpha``, "silu", "gelu", "tanh", "sigmoid"; gain 1). Returns y like x, or (y, mean, rstd)
    with ``return_stats`` (float64 (N * num_groups,), for :func:`group_norm_backward`)."""
    x, groups, w, b, eps, inner, device = _gn_args(x, num_groups, weight, bias, eps)
    code, alpha = _act(act, alpha)
    _, k = resolve("group_norm", device, impl)
    y, mean, rstd = k.forward(x, w, b, groups, inner, eps, code, alpha)
    return (y, mean, rstd) if return_stats else y


def group_norm_backward(grad_out, x, num_groups, mean, rstd, weight=None, bias=None, *, act=None, alpha=None,
                        needs=(True, True, True), impl="auto"):
    """Gradients (dx, dweight, dbias) of :func:`group_norm` (None where ``needs`` says so or
    the parameter is None); mean / rstd: the forward's statistics."""
    x, groups, w, b, _, inner, device = _gn_args(x, num_groups, weight, bias, 1.0)
    g = float_array(grad_out, "grad_out")
    if g.shape != x.shape:
        raise ValueError(f"grad_out: shape {tuple(g.shape)} differs from x's {tuple(x.shape)}")
    same_device(grad_out=g, x=x)
    rows = x.shape[0] * groups
    mean, rstd = _stats_arg(mean, "mean", rows, device), _stats_arg(rstd, "rstd", rows, device)
    code, alpha = _act(act, alpha)
    _, k = resolve("group_norm", device, impl)
    gx, pw, pb = k.backward(g, x, w, b, mean, rstd, groups, inner,
                            bool(needs[0]), code, alpha)
    c = x.shape[1]
    dw = _reduce_partials(pw, groups, (c,), x.dtype) if w is not None and needs[1] else None
    db = _reduce_partials(pb, groups, (c,), x.dtype) if b is not None and needs[2] else None
    return gx, dw, db


def _ln_args(x, normalized_shape, weight, bias, eps):
    x = float_array(x, "x", min_ndim=1)
    shape = (int(normalized_shape),) if isinstance(normalized_shape, numbers.Integral) else tuple(normalized_shape)
    k = len(shape)
    if k == 0 or k > x.ndim or tuple(x.shape[x.ndim - k:]) != shape:
        raise ValueError(f"normalized_shape: {shape} does not match the trailing dims of x {tuple(x.shape)}")
    w, b, device = _params(x, None, weight, bias, shape)
    eps = real_number(eps, "eps", positive=True)
    x2 = x.reshape(-1, int(np.prod(shape, dtype=np.int64)))
    return x, x2, shape, w, b, eps, device


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5, *, return_stats=False, impl="auto"):
    """LayerNorm over the trailing ``normalized_shape`` dims of x, then weight/bias of that shape.
    Returns y like x, or (y, mean, rstd) with ``return_stats`` (float64, one per row)."""
    x, x2, shape, w, b, eps, device = _ln_args(x, normalized_shape, weight, bias, eps)
    _, k = resolve("layer_norm", device, impl)
    y, mean, rstd = k.forward(x2, w, b, 1, 1, eps)
    y = y.reshape(x.shape)
    return (y, mean, rstd) if return_stats else y


def layer_norm_backward(grad_out, x, normalized_shape, mean, rstd, weight=None, bias=None, *,
                        needs=(True, True, True), impl="auto"):
    """Gradients (dx, dweight, dbias) of :func:`layer_norm`; mean / rstd: the forward's."""
    x, x2, shape, w, b, _, device = _ln_args(x, normalized_shape, weight, bias, 1.0)
    g = float_array(grad_out, "grad_out")
    if g.shape != x.shape:
        raise ValueError(f"grad_out: shape {tuple(g.shape)} differs from x's {tuple(x.shape)}")
    same_device(grad_out=g, x=x)
    mean, rstd = _stats_arg(mean, "mean", x2.shape[0], device), _stats_arg(rstd, "rstd", x2.shape[0], device)
    _, k = resolve("layer_norm", device, impl)
    gx, pw, pb = k.backward(g.reshape(x2.shape), x2, w, b, mean, rstd, 1, 1,
                            bool(needs[0]))
    dw = _reduce_partials(pw, 1, shape, x.dtype) if w is not None and needs[1] else None
    db = _reduce_partials(pb, 1, shape, x.dtype) if b is not None and needs[2] else None
    return (None if gx is None else gx.reshape(x.shape)), dw, db
