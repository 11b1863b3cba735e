"""Group/layer normalization as fused Numba CPU kernels: one pass over each row forward (mean,
variance, normalize + affine) and one backward (row sums, then dx; per-row partial sums for
dweight/dbias that the caller reduces in a fixed order, so results do not depend on threads).

Layout: x viewed as rows (R, M). GroupNorm: row = (n, group), M = channels_per_group * inner,
inner = H*W, and the affine index of element (c, k) in row r is group*cpg + c. LayerNorm:
G = 1, inner = 1, cpg = M (the affine index is the element's position in the row).
An activation (the codes of ops/_numba/scalar.py, shared with bias_act) may follow the affine
in the same pass: GroupNorm + SiLU is one kernel forward and one backward.
Statistics accumulate in float64. Variants: parallel over rows (prange) for large inputs,
serial below PARALLEL_MIN elements. The readable reference is ops/_ref/norm.py.
"""
import math

import numpy as np
from numba import prange

from ..group_norm import affine as _affine  # the C++ kernels' too: ones / zeros for None
from . import _jit, scalar
from ._jit import cpu_fn

# Below this many elements the serial kernel wins: Numba's thread team is one more pool beside
# the C++ kernels' OpenMP and OpenBLAS, and on a busy 2-core machine the pools thrash (a
# 512k-element GroupNorm+SiLU step went from ~48 to ~100 ms wall with it). Large inputs still
# get the prange variant.
PARALLEL_MIN = 1 << 22


# reductions may be reassociated (vectorized); no nnan/ninf, so NaN and inf still propagate
_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}

_act = cpu_fn(scalar.act_forward)
_act_grad = cpu_fn(scalar.act_grad)
_CHUNK = 256
_ROWS = 16  # rows per block (per prange iteration)


_MAGIC = 6755399441055744.0  # 1.5 * 2**52: adding it rounds to an integer held in the low bits
_MAGIC_BITS = 0x4338000000000000


# no reassociation here: (y + MAGIC) - MAGIC must not fold back to y
@_jit.njit(fastmath={"contract"})
def _exp_neg(v, e, a, n, hi):
    """e[k] = exp(-v[k]) for k < n in three vectorizable loops: Cody-Waite reduction
    t = q*ln2 + r (|r| <= ln2/2, q rounded with the 1.5*2^52 trick), a degree-13 Taylor
    polynomial for exp(r) (relative error < 1e-16), and 2^q assembled in the exponent bits.
    libm's exp in a loop stays scalar (~5 ns/element, no SVML here) and made SiLU the most
    expensive part of a small conv net's training step. ``hi``: float64 data (degree 13);
    float32 data needs only degree 8 (relative error < 4e-10). a: float64 scratch (>= n)."""
    for k in range(n):
        t = -v[k]
        t = t if t > -700.0 else -700.0
        t = t if t < 700.0 else 700.0
        ak = t * 1.4426950408889634 + _MAGIC
        qf = ak - _MAGIC
        r = t - qf * 0.6931471803691238 - qf * 1.9082149292705877e-10
        if hi:
            p = 1.0 / 6227020800.0
            p = p * r + 1.0 / 479001600.0
            p = p * r + 1.0 / 39916800.0
            p = p * r + 1.0 / 3628800.0
            p = p * r + 1.0 / 362880.0
            p = p * r + 1.0 / 40320.0
        else:
            p = 1.0 / 40320.0
        p = p * r + 1.0 / 5040.0
        p = p * r + 1.0 / 720.0
        p = p * r + 1.0 / 120.0
        p = p * r + 1.0 / 24.0
        p = p * r + 1.0 / 6.0
        p = p * r + 0.5
        p = p * r + 1.0
        p = p * r + 1.0
        e[k] = p
        a[k] = ak
    bits = a.view(np.int64)
    for k in range(n):
        bits[k] = (bits[k] - _MAGIC_BITS + 1023) << 52
    for k in range(n):
        e[k] *= a[k]


@_jit.njit(fastmath=_FASTMATH)
def _act_inplace(ys, act, alpha, e, a):
    """ys = act(ys); SiLU / sigmoid through the vectorized exp, in chunks (e, a: scratch)."""
    n = ys.size
    hi = ys.itemsize == 8
    if act == scalar.SILU or act == scalar.SIGMOID:
        for k0 in range(0, n, _CHUNK):
            kn = min(_CHUNK, n - k0)
            seg = ys[k0:k0 + kn]
            _exp_neg(seg, e, a, kn, hi)
            if act == scalar.SILU:
                for k in range(kn):
                    seg[k] = seg[k] / (1.0 + e[k])
            else:
                for k in range(kn):
                    seg[k] = 1.0 / (1.0 + e[k])
    else:
        for k in range(n):
            ys[k] = _act(act, ys[k], alpha)


@_jit.njit(fastmath=_FASTMATH)
def _act_grad_inplace(vs, gs, act, alpha, e, a):
    """vs (pre-activation values) becomes gs * act'(vs) (e, a: scratch)."""
    n = vs.size
    hi = vs.itemsize == 8
    if act == scalar.SILU or act == scalar.SIGMOID:
        for k0 in range(0, n, _CHUNK):
            kn = min(_CHUNK, n - k0)
            seg = vs[k0:k0 + kn]
            gseg = gs[k0:k0 + kn]
            _exp_neg(seg, e, a, kn, hi)
            if act == scalar.SILU:
                for k in range(kn):
                    sg = 1.0 / (1.0 + e[k])
                    seg[k] = gseg[k] * (sg * (1.0 + seg[k] * (1.0 - sg)))
            else:
                for k in range(kn):
                    sg = 1.0 / (1.0 + e[k])
                    seg[k] = gseg[k] * (sg * (1.0 - sg))
    else:
        for k in range(n):
            vs[k] = gs[k] * _act_grad(act, vs[k], alpha)


def _make(parallel):
    rng = prange if parallel else range
    # Loops run over 1-D slices (xs[k], not x[off + k]): with a flat offset index LLVM keeps
    # them scalar (measured 7x slower), over a slice it vectorizes.

    @_jit.njit(parallel=parallel, fastmath=_FASTMATH)
    def fwd(x, w, b, y, mean, rstd, rows, m, groups, inner, eps, act, alpha):
        # x, y: (rows*m,) flat; w, b: (groups*cpg,) (ones / zeros when the norm has none);
        # mean, rstd: (rows,)
        cpg = m // inner
        nblk = (rows + _ROWS - 1) // _ROWS
        for blk in rng(nblk):
            # scratch for the chunked exp, once per block of rows (per thread when parallel)
            e = np.empty(_CHUNK, np.float64)
            a = np.empty(_CHUNK, np.float64)
            for r in range(blk * _ROWS, min(rows, (blk + 1) * _ROWS)):
                xr = x[r * m:(r + 1) * m]
                yr = y[r * m:(r + 1) * m]
                s = 0.0
                for j in range(m):
                    s += xr[j]
                mu = s / m
                ss = 0.0
                for j in range(m):
                    d = xr[j] - mu
                    ss += d * d
                rs = 1.0 / math.sqrt(ss / m + eps)
                mean[r] = mu
                rstd[r] = rs
                a0 = (r % groups) * cpg
                if inner == 1:
                    # LayerNorm-shaped: one affine coefficient per element, loop over the row
                    ws = w[a0:a0 + m]
                    bs = b[a0:a0 + m]
                    for k in range(m):
                        yr[k] = (xr[k] - mu) * rs * ws[k] + bs[k]
                    if act != 0:
                        _act_inplace(yr, act, alpha, e, a)
                    continue
                for c in range(cpg):
                    wa = w[a0 + c] * rs
                    ba = b[a0 + c] - mu * wa
                    xs = xr[c * inner:(c + 1) * inner]
                    ys = yr[c * inner:(c + 1) * inner]
                    for k in range(inner):
                        ys[k] = xs[k] * wa + ba
                if act != 0:
                    _act_inplace(yr, act, alpha, e, a)

    @_jit.njit(parallel=parallel, fastmath=_FASTMATH)
    def bwd(gy, x, w, b, mean, rstd, gx, need_x, pw, pb, rows, m, groups, inner, act, alpha):
        # gx: (rows*m,) output, also scratch for the pre-activation gradient
        # pw, pb: (rows, cpg) partial sums of g * xhat and g for dweight / dbias
        cpg = m // inner
        nblk = (rows + _ROWS - 1) // _ROWS
        for blk in rng(nblk):
            # scratch for the chunked exp, once per block of rows (per thread when parallel)
            e = np.empty(_CHUNK, np.float64)
            a = np.empty(_CHUNK, np.float64)
            for r in range(blk * _ROWS, min(rows, (blk + 1) * _ROWS)):
                xr = x[r * m:(r + 1) * m]
                gr = gy[r * m:(r + 1) * m]
                dr = gx[r * m:(r + 1) * m]
                mu = mean[r]
                rs = rstd[r]
                a0 = (r % groups) * cpg
                if inner == 1:
                    # LayerNorm-shaped rows: per-element coefficients
                    ws = w[a0:a0 + m]
                    if act == 0:
                        gs = gr
                    else:
                        gs = dr
                        bs = b[a0:a0 + m]
                        for k in range(m):
                            gs[k] = (xr[k] - mu) * rs * ws[k] + bs[k]
                        _act_grad_inplace(gs, gr, act, alpha, e, a)
                    s1 = 0.0
                    s2 = 0.0
                    # one group: partial sums per block of rows (rows x m of float64 partials
                    # cost more than the whole pass); several: per row, summed by group outside
                    pr = r // _ROWS if groups == 1 else r  # r // _ROWS is this block
                    pwr = pw[pr]
                    pbr = pb[pr]
                    for k in range(m):
                        gv = gs[k]
                        xh = (xr[k] - mu) * rs
                        pbr[k] += gv
                        pwr[k] += gv * xh
                        s1 += ws[k] * gv
                        s2 += ws[k] * gv * xh
                    if need_x:
                        m1 = s1 / m
                        m2 = s2 / m
                        for k in range(m):
                            xh = (xr[k] - mu) * rs
                            dr[k] = rs * (gs[k] * ws[k] - m1 - xh * m2)
                    continue
                if act != 0:
                    # pre-activation gradient into the dx buffer: g * act'(xhat * w + b)
                    for c in range(cpg):
                        wv = w[a0 + c] * rs
                        bv = b[a0 + c] - mu * wv
                        xs = xr[c * inner:(c + 1) * inner]
                        ds = dr[c * inner:(c + 1) * inner]
                        for k in range(inner):
                            ds[k] = xs[k] * wv + bv
                    _act_grad_inplace(dr, gr, act, alpha, e, a)
                s1 = 0.0
                s2 = 0.0
                for c in range(cpg):
                    xs = xr[c * inner:(c + 1) * inner]
                    wa = w[a0 + c]
                    gs = gr[c * inner:(c + 1) * inner] if act == 0 else dr[c * inner:(c + 1) * inner]
                    acc_g = 0.0
                    acc_gx = 0.0
                    for k in range(inner):
                        gv = gs[k]
                        acc_g += gv
                        acc_gx += gv * ((xs[k] - mu) * rs)
                    pb[r, c] = acc_g
                    pw[r, c] = acc_gx
                    s1 += wa * acc_g
                    s2 += wa * acc_gx
                if need_x:
                    # dx = rstd * (g*w - mean(g*w) - xhat * mean(g*w*xhat))
                    m1 = s1 / m
                    m2 = s2 / m
                    for c in range(cpg):
                        wa = w[a0 + c]
                        xs = xr[c * inner:(c + 1) * inner]
                        ds = dr[c * inner:(c + 1) * inner]
                        gs = gr[c * inner:(c + 1) * inner] if act == 0 else ds
                        ca = rs * wa
                        cb = -rs * (m1 - mu * rs * m2)
                        cx = -rs * rs * m2
                        for k in range(inner):
                            ds[k] = gs[k] * ca + xs[k] * cx + cb
    return fwd, bwd


_kernels = {}


def _get(n):
    par = n >= PARALLEL_MIN
    if par not in _kernels:
        _kernels[par] = _make(par)
    return _kernels[par]


def forward(x, w, b, groups, inner, eps, act=0, alpha=0.0):
    """x: C-contiguous (N, ...) with rows = N*groups; w, b: (groups*cpg,) or None; act: an
    activation code of ops/_numba/scalar.py applied after the affine (0 = none).
    Returns (y, mean, rstd) with mean/rstd float64 (rows,)."""
    rows = x.shape[0] * groups
    m = x.size // rows if rows else 0
    y = np.empty_like(x)
    mean = np.empty(rows, np.float64)
    rstd = np.empty(rows, np.float64)
    if x.size:
        w, b = _affine(w, b, groups * (m // inner), x.dtype)
        _get(x.size)[0](x.reshape(-1), w, b, y.reshape(-1), mean, rstd, rows, m, groups, inner, float(eps),
                        int(act), float(alpha))
    return y, mean, rstd


def backward(gy, x, w, b, mean, rstd, groups, inner, need_x=True, act=0, alpha=0.0):
    """Returns (dx or None, pw, pb): pw/pb (rows or row blocks, cpg) float64 partial sums for
    dweight/dbias (sum them over axis 0 by group)."""
    rows = x.shape[0] * groups
    m = x.size // rows if rows else 0
    cpg = m // inner if inner else 0
    gx = np.empty_like(x) if (need_x or act) else np.empty(1, x.dtype)
    # LayerNorm-shaped (inner == 1, one group): partials per block of _ROWS rows
    prow = -(-rows // _ROWS) if inner == 1 and groups == 1 else rows
    pw = np.zeros((prow, cpg), np.float64)
    pb = np.zeros((prow, cpg), np.float64)
    if x.size:
        w, b = _affine(w, b, groups * cpg, x.dtype)
        _get(x.size)[1](gy.reshape(-1), x.reshape(-1), w, b, mean, rstd, gx.reshape(-1), need_x, pw, pb, rows, m,
                        groups, inner, int(act), float(alpha))
    return (gx if need_x else None), pw, pb
