"""Group/layer normalization as fused Numba CPU kernels: one pass over each row forward (mean,
variance, normalize + affine) and one backward (row sums, then dx; per-row partial sums for
dweight/dbias that the caller reduces in a fixed order, so results do not depend on threads).

Layout: x viewed as rows (R, M). GroupNorm: row = (n, group), M = channels_per_group * inner,
inner = H*W, and the affine index of element (c, k) in row r is group*cpg + c. LayerNorm:
G = 1, inner = 1, cpg = M (the affine index is the element's position in the row).
Statistics accumulate in float64. Variants: parallel over rows (prange) for large inputs,
serial below PARALLEL_MIN elements. The readable reference is ops/_ref/norm.py.
"""
import math

import numba
import numpy as np
from numba import prange

# below this many elements a thread team costs more than it saves (and spins on a busy machine)
PARALLEL_MIN = 1 << 18


def _make(parallel):
    rng = prange if parallel else range

    @numba.njit(parallel=parallel, cache=False)
    def fwd(x, w, b, has_w, has_b, y, mean, rstd, rows, m, groups, inner, eps):
        # x, y: (rows*m,) flat; w, b: (groups*cpg,); mean, rstd: (rows,)
        cpg = m // inner
        for r in rng(rows):
            base = r * m
            s = 0.0
            for j in range(m):
                s += x[base + j]
            mu = s / m
            ss = 0.0
            for j in range(m):
                d = x[base + j] - mu
                ss += d * d
            rs = 1.0 / math.sqrt(ss / m + eps)
            mean[r] = mu
            rstd[r] = rs
            a0 = (r % groups) * cpg
            for c in range(cpg):
                wa = w[a0 + c] * rs if has_w else rs
                ba = b[a0 + c] if has_b else 0.0
                off = base + c * inner
                for k in range(inner):
                    y[off + k] = (x[off + k] - mu) * wa + ba

    @numba.njit(parallel=parallel, cache=False)
    def bwd(gy, x, w, has_w, mean, rstd, gx, need_x, pw, pb, rows, m, groups, inner):
        # pw, pb: (rows, cpg) partial sums of gy * xhat and gy for dweight / dbias
        cpg = m // inner
        for r in rng(rows):
            base = r * m
            mu = mean[r]
            rs = rstd[r]
            a0 = (r % groups) * cpg
            s1 = 0.0
            s2 = 0.0
            for c in range(cpg):
                off = base + c * inner
                acc_g = 0.0
                acc_gx = 0.0
                for k in range(inner):
                    gv = gy[off + k]
                    acc_g += gv
                    acc_gx += gv * ((x[off + k] - mu) * rs)
                pb[r, c] = acc_g
                pw[r, c] = acc_gx
                wa = w[a0 + c] if has_w else 1.0
                s1 += wa * acc_g
                s2 += wa * acc_gx
            if need_x:
                # dx = rstd * (g*w - mean(g*w) - xhat * mean(g*w*xhat))
                m1 = s1 / m
                m2 = s2 / m
                for c in range(cpg):
                    wa = w[a0 + c] if has_w else 1.0
                    off = base + c * inner
                    for k in range(inner):
                        xh = (x[off + k] - mu) * rs
                        gx[off + k] = rs * (gy[off + k] * wa - m1 - xh * m2)
    return fwd, bwd


_kernels = {}


def _get(n):
    par = n >= PARALLEL_MIN
    if par not in _kernels:
        _kernels[par] = _make(par)
    return _kernels[par]


def forward(x, w, b, groups, inner, eps):
    """x: C-contiguous (N, ...) with rows = N*groups; w, b: (groups*cpg,) or None.
    Returns (y, mean, rstd) with mean/rstd float64 (rows,)."""
    rows = x.shape[0] * groups
    m = x.size // rows if rows else 0
    y = np.empty_like(x)
    mean = np.empty(rows, np.float64)
    rstd = np.empty(rows, np.float64)
    if x.size:
        dummy = np.zeros(1, x.dtype)
        _get(x.size)[0](x.reshape(-1), dummy if w is None else w.reshape(-1), dummy if b is None else b.reshape(-1),
                        w is not None, b is not None, y.reshape(-1), mean, rstd, rows, m, groups, inner, float(eps))
    return y, mean, rstd


def backward(gy, x, w, mean, rstd, groups, inner, need_x=True):
    """Returns (dx or None, pw, pb): pw/pb (rows, cpg) float64 partial sums for dweight/dbias."""
    rows = x.shape[0] * groups
    m = x.size // rows if rows else 0
    cpg = m // inner if inner else 0
    gx = np.empty_like(x) if need_x else np.empty(1, x.dtype)
    pw = np.zeros((rows, cpg), np.float64)
    pb = np.zeros((rows, cpg), np.float64)
    if x.size:
        dummy = np.zeros(1, x.dtype)
        _get(x.size)[1](gy.reshape(-1), x.reshape(-1), dummy if w is None else w.reshape(-1), w is not None, mean,
                        rstd, gx.reshape(-1), need_x, pw, pb, rows, m, groups, inner)
    return (gx if need_x else None), pw, pb
