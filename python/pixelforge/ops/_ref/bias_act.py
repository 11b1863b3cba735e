"""Reference fused bias + activation (StyleGAN2's bias_act), NumPy or CuPy.

x: any shape; bias: (x.shape[dim],) broadcast along ``dim``;
y = clip(act(x + bias) * gain, -clamp, clamp).  float16/bfloat16 compute in float32.
"""
import math

import numpy as np

from ..._validate import xp_of


def _erf(xp, v):
    if xp is np:
        try:
            from scipy.special import erf  # noqa: PLC0415
            return erf(v)
        except ImportError:
            return np.vectorize(math.erf, otypes=[v.dtype])(v)
    import cupyx.scipy.special as sp  # noqa: PLC0415
    return sp.erf(v)


def act_forward(xp, act, v, alpha):
    if act == "linear":
        return v
    if act == "relu":
        return xp.maximum(v, 0)
    if act == "lrelu":
        return xp.where(v > 0, v, v * alpha)
    if act == "tanh":
        return xp.tanh(v)
    if act == "sigmoid":
        return 1 / (1 + xp.exp(-v))
    if act == "silu":
        return v / (1 + xp.exp(-v))
    if act == "gelu":
        return 0.5 * v * (1 + _erf(xp, v / math.sqrt(2)))
    raise ValueError(f"act: unknown activation {act!r}")


def act_grad(xp, act, v, alpha):
    if act == "linear":
        return xp.ones_like(v)
    if act == "relu":
        return (v > 0).astype(v.dtype)
    if act == "lrelu":
        return xp.where(v > 0, 1, alpha).astype(v.dtype)
    if act == "tanh":
        return 1 - xp.tanh(v) ** 2
    if act == "sigmoid":
        s = 1 / (1 + xp.exp(-v))
        return s * (1 - s)
    if act == "silu":
        s = 1 / (1 + xp.exp(-v))
        return s * (1 + v * (1 - s))
    if act == "gelu":
        cdf = 0.5 * (1 + _erf(xp, v / math.sqrt(2)))
        pdf = xp.exp(-0.5 * v * v) / math.sqrt(2 * math.pi)
        return cdf + v * pdf
    raise ValueError(f"act: unknown activation {act!r}")


def _compute_dtype(x):
    return x.dtype if x.dtype.name in ("float32", "float64") else np.float32


def _biased(x, bias, dim):
    xp = xp_of(x)
    v = x.astype(_compute_dtype(x))
    if bias is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        v = v + bias.astype(v.dtype).reshape(shape)
    return xp, v


def bias_act(x, bias, dim, act, alpha, gain, clamp):
    xp, v = _biased(x, bias, dim)
    y = act_forward(xp, act, v, alpha) * gain
    if clamp is not None and clamp >= 0:
        y = xp.clip(y, -clamp, clamp)
    return y.astype(x.dtype)


def bias_act_backward(grad_out, x, bias, dim, act, alpha, gain, clamp, need_dbias=True):
    xp, v = _biased(x, bias, dim)
    dx = grad_out.astype(v.dtype) * gain * act_grad(xp, act, v, alpha)
    if clamp is not None and clamp >= 0:
        y = act_forward(xp, act, v, alpha) * gain
        dx = xp.where(xp.abs(y) > clamp, 0, dx)
    dbias = None
    if bias is not None and need_dbias:
        axes = tuple(i for i in range(x.ndim) if i != dim)
        dbias = dx.sum(axis=axes).astype(bias.dtype)
    return dx.astype(x.dtype), dbias
