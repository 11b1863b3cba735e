"""Reference group/layer normalization (NumPy or CuPy), forward and backward.

Rows: x viewed as (R, M) with statistics per row; GroupNorm rows are (n, group), LayerNorm rows
are everything before the normalized dims. xhat = (x - mean) / sqrt(var + eps) (biased var).
"""
from ..._backend import xp_of


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
