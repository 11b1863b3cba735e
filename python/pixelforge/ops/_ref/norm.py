"""Reference group/layer normalization (NumPy or CuPy), forward and backward.

Rows: x viewed as (R, M) with statistics per row; GroupNorm rows are (n, group), LayerNorm rows
are everything before the normalized dims. xhat = (x - mean) / sqrt(var + eps) (biased var).
"""
import numpy as np

from ..._backend import xp_of
from ..bias_act import ACTIVATIONS
from . import bias_act as _bias_act_ref


def normalize(a, axes, eps):
    """xhat and 1/sqrt(var + eps) (keepdims) over ``axes``."""
    xp = xp_of(a)
    mean = a.mean(axis=axes, keepdims=True)
    xc = a - mean
    var = (xc * xc).mean(axis=axes, keepdims=True)
    rstd = 1.0 / xp.sqrt(var + eps)
    return xc * rstd, rstd


def normalize_backward(gxhat, xhat, rstd, axes):
    """d/dx of xhat given d/dxhat: rstd * (g - mean(g) - xhat * mean(g * xhat))."""
    m1 = gxhat.mean(axis=axes, keepdims=True)
    m2 = (gxhat * xhat).mean(axis=axes, keepdims=True)
    return rstd * (gxhat - m1 - xhat * m2)


def group_norm(x, num_groups, weight, bias, eps):
    """x (N, C, *), weight/bias (C,) or None -> (N, C, *)."""
    n, c = x.shape[:2]
    xhat, _ = normalize(x.reshape(n, num_groups, -1), -1, eps)
    y = xhat.reshape(x.shape)
    cshape = (1, c) + (1,) * (x.ndim - 2)
    if weight is not None:
        y = y * weight.reshape(cshape)
    if bias is not None:
        y = y + bias.reshape(cshape)
    return y


def layer_norm(x, normalized_shape, weight, bias, eps):
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    y, _ = normalize(x, axes, eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


# ------------------------------------------------------------------ rows convention
# The calling convention the C++ (ops/group_norm.py) and Numba (ops/_numba/norm.py) kernels
# share: x C-contiguous (N, ...) as rows = N * groups rows of cpg * inner elements; w, b
# (groups * cpg,) or None; an activation code (ops/bias_act.py's ACTIVATIONS) after the affine.
# Statistics and partial sums in float64; works on NumPy or CuPy arrays.
def _act_name(code):
    return next(name for name, (c, _, _) in ACTIVATIONS.items() if c == code)


def _affine(xp, w, b, groups, cpg):
    wr = xp.ones((groups, cpg)) if w is None else w.reshape(groups, cpg).astype(np.float64)
    br = xp.zeros((groups, cpg)) if b is None else b.reshape(groups, cpg).astype(np.float64)
    return wr[None, :, :, None], br[None, :, :, None]


def forward(x, w, b, groups, inner, eps, act=0, alpha=0.0):
    """(y, mean, rstd): y like x (in the dtype x, w and b promote to), mean/rstd float64 (rows,)."""
    xp = xp_of(x)
    xr = x.reshape(x.shape[0], groups, -1, inner).astype(np.float64)  # (N, G, cpg, inner)
    mean = xr.mean(axis=(2, 3), keepdims=True)
    xc = xr - mean
    rstd = 1.0 / xp.sqrt((xc * xc).mean(axis=(2, 3), keepdims=True) + eps)
    wr, br = _affine(xp, w, b, groups, xr.shape[2])
    y = xc * rstd * wr + br
    if act:
        y = _bias_act_ref.act_forward(xp, _act_name(act), y, alpha)
    dtype = np.result_type(*(a.dtype for a in (x, w, b) if a is not None))
    return y.astype(dtype).reshape(x.shape), mean.reshape(-1), rstd.reshape(-1)


def backward(gy, x, w, b, mean, rstd, groups, inner, need_x=True, act=0, alpha=0.0):
    """(dx or None, pw, pb): pw/pb float64 (rows, cpg) partial sums of g * xhat and g (summed
    over axis 0 by group by the caller, as for the kernels). mean/rstd: forward's."""
    xp = xp_of(x)
    n = x.shape[0]
    xr = x.reshape(n, groups, -1, inner).astype(np.float64)
    rs = rstd.reshape(n, groups, 1, 1)
    xhat = (xr - mean.reshape(n, groups, 1, 1)) * rs
    wr, br = _affine(xp, w, b, groups, xr.shape[2])
    g = gy.reshape(xr.shape).astype(np.float64)
    if act:
        g = g * _bias_act_ref.act_grad(xp, _act_name(act), xhat * wr + br, alpha)
    pw = (g * xhat).sum(axis=3).reshape(n * groups, -1)
    pb = g.sum(axis=3).reshape(n * groups, -1)
    gx = None
    if need_x:
        gxhat = g * wr
        m1 = gxhat.mean(axis=(2, 3), keepdims=True)
        m2 = (gxhat * xhat).mean(axis=(2, 3), keepdims=True)
        gx = (rs * (gxhat - m1 - xhat * m2)).astype(x.dtype).reshape(x.shape)
    return gx, pw, pb
