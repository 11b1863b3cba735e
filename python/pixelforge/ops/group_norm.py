"""GroupNorm (+ activation) and LayerNorm on the C++ CPU kernels (kernels/group_norm), behind
the autograd layer's ``F.group_norm`` / ``F.layer_norm`` (not public ``pf.ops`` ops). Same
calling convention as the Numba kernels of ops/_numba/norm.py (rows = N * groups, float64 mean /
rstd, float64 partial sums for dweight / dbias that the caller sums over axis 0 in order), so
either can serve. The reference is ops/_ref/norm.py."""
from __future__ import annotations

import numpy as np

from .. import _backend

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


_state: dict = {}


def cpu_kernels():
    """The C++ kernels (forward / backward as above), or None when ``pixelforge._cpu`` lacks them."""
    if "k" not in _state:
        mod = _backend.cpu_module()
        _state["k"] = _Kernels(mod) if mod is not None and hasattr(mod, "group_norm_forward") else None
    return _state["k"]
