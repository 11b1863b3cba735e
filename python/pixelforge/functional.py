"""pf.functional: differentiable functions on :class:`pixelforge.Tensor`, torch's names and defaults.

conv2d, conv_transpose2d, attention, bias_act (and the activations built on it), reparameterize
and gaussian_kl run the ``pf.ops`` kernels forward and backward. group_norm / layer_norm are one
vectorized pass forward and one backward; the losses are single graph nodes with closed-form
gradients. Every function accepts Tensors or arrays (arrays are constants: no gradient).

Shapes: N batch, C channels, H/W spatial, L sequence, D head dim.
"""
from __future__ import annotations

import math

import numpy as np

from . import ops, precision
from ._dispatch import resolve
from .ops.group_norm import kernels as _op_kernels
from .ops.bias_act import ACTIVATIONS
from .tensor import Tensor, _mode, _new, _node, _to_array, _unbroadcast, _xp, cat, stack, where  # noqa: F401

__all__ = ["conv2d", "conv_transpose2d", "attention", "scaled_dot_product_attention", "linear", "bias_act",
           "relu", "leaky_relu", "silu", "gelu", "tanh", "sigmoid", "softmax", "log_softmax", "group_norm",
           "layer_norm", "mse_loss", "l1_loss", "binary_cross_entropy_with_logits", "cross_entropy", "nll_loss",
           "reparameterize", "gaussian_kl", "dropout", "embedding", "interpolate", "avg_pool2d", "pad",
           "cat", "stack", "where"]


def _t(x):
    return x if isinstance(x, Tensor) else _new(_to_array(x))


# ----------------------------------------------------------------------------- bias_act
def _bias_act_kernels(device):
    """The (forward, backward) bias_act kernels for a device, without the public op's checks
    (which cost more than the kernel on small tensors): inputs reaching these are contiguous
    float arrays we made ourselves; the C++ glue checks again."""
    return resolve("bias_act", device)[1], resolve("bias_act_backward", device)[1]


_FAST_DTYPES = {"cpu": (np.dtype(np.float32), np.dtype(np.float64)),
                "cuda": (np.dtype(np.float32), np.dtype(np.float16))}


def _contig(a):
    return a if a.flags.c_contiguous else _xp(a).ascontiguousarray(a)


def bias_act(x, b=None, dim=1, act="linear", alpha=None, gain=None, clamp=None):
    """Fused ``clamp(act(x + b) * gain)``: the ``pf.ops.bias_act`` kernel forward and backward.

    x: any shape; b: (x.shape[dim],) or None. Defaults as :func:`pixelforge.ops.bias_act`.
    """
    x = _t(x)
    if act not in ACTIVATIONS:
        raise ValueError(f"act: unknown activation {act!r}; expected one of {tuple(ACTIVATIONS)}")
    _, da, dg = ACTIVATIONS[act]
    return _bias_act(x, None if b is None else _t(b), dim, act, da if alpha is None else float(alpha),
                     dg if gain is None else float(gain), -1.0 if clamp is None else float(clamp))


def _bias_act(x, b, dim, act, alpha, gain, clamp):
    xd = x.data
    device = "cpu" if isinstance(xd, np.ndarray) else "cuda"
    if xd.ndim == 0 or xd.dtype not in _FAST_DTYPES[device] or (b is not None and b.data.dtype != xd.dtype):
        # the public op gives the clear error (or handles the odd case)
        y = ops.bias_act(xd, None if b is None else b.data, dim, act, alpha, gain, None if clamp < 0 else clamp)
        fwd = None
    else:
        fwd, bwd = _bias_act_kernels(device)
        dim = dim % xd.ndim
        xd = _contig(xd)
        bd = None if b is None else _contig(b.data)
        y = fwd(xd, bd, dim, act, alpha, gain, clamp)
    if fwd is None:

        def bw_slow(g):
            dx, db = ops.bias_act_backward(_contig(g), xd, None if b is None else b.data, dim, act, alpha, gain,
                                           None if clamp < 0 else clamp)
            return (dx, db) if b is not None else (dx,)
        return _node(y, (x,) if b is None else (x, b), bw_slow)
    if b is None:
        return _node(y, (x,), lambda g: (bwd(_contig(g), xd, None, dim, act, alpha, gain, clamp, False)[0],))
    need_db = b.requires_grad
    return _node(y, (x, b), lambda g: bwd(_contig(g), xd, bd, dim, act, alpha, gain, clamp, need_db))


def relu(input, inplace=False):  # noqa: A002 - torch's argument names
    return _bias_act(_t(input), None, 0, "relu", 0.0, 1.0, -1.0)


def leaky_relu(input, negative_slope=0.01, inplace=False):  # noqa: A002
    return _bias_act(_t(input), None, 0, "lrelu", float(negative_slope), 1.0, -1.0)


def silu(input, inplace=False):  # noqa: A002
    return _bias_act(_t(input), None, 0, "silu", 0.0, 1.0, -1.0)


def gelu(input, approximate="none"):  # noqa: A002
    x = _t(input)
    if approximate == "none":
        return _bias_act(x, None, 0, "gelu", 0.0, 1.0, -1.0)
    if approximate != "tanh":
        raise ValueError(f"approximate: expected 'none' or 'tanh', got {approximate!r}")
    a = x.data
    xp = _xp(a)
    k = math.sqrt(2 / math.pi)
    inner = k * (a + 0.044715 * a * a * a)
    t = xp.tanh(inner)
    out = 0.5 * a * (1 + t)

    def bw(g):
        d = 0.5 * (1 + t) + 0.5 * a * (1 - t * t) * k * (1 + 3 * 0.044715 * a * a)
        return (g * d,)
    return _node(out, (x,), bw)


def tanh(input):  # noqa: A002
    return _bias_act(_t(input), None, 0, "tanh", 0.0, 1.0, -1.0)


def sigmoid(input):  # noqa: A002
    return _bias_act(_t(input), None, 0, "sigmoid", 0.0, 1.0, -1.0)


def softmax(input, dim=-1):  # noqa: A002
    return _t(input).softmax(dim)


def log_softmax(input, dim=-1):  # noqa: A002
    return _t(input).log_softmax(dim)


# ----------------------------------------------------------------------------- linear
def linear(input, weight, bias=None):  # noqa: A002
    """``input @ weight.T + bias``. input (*, in), weight (out, in), bias (out,) -> (*, out).

    One call of pixelforge's own GEMM (``pf.ops.linear``, bias fused) forward and
    ``pf.ops.linear_backward`` backward: no external BLAS and no second thread pool.
    """
    x, w = _t(input), _t(weight)
    X, W = x.data, w.data
    if X.shape[-1] != W.shape[1]:
        raise ValueError(f"input: last dimension {X.shape[-1]} does not match weight's in_features {W.shape[1]} "
                         f"(weight shape {tuple(W.shape)})")
    b = None if bias is None else _t(bias)
    out = ops.linear(X, W, None if b is None else b.data)
    rx, rw = x.requires_grad, w.requires_grad
    prec = precision.compute_dtype()

    def bw(g):
        need_b = b is not None and b.requires_grad
        with precision.using(prec):  # the backward in the forward's precision
            gx, gw, gb = ops.linear_backward(_contig(g), X, W, needs=(rx, rw, need_b))
        return (gx, gw) if b is None else (gx, gw, gb)
    return _node(out, (x, w) if b is None else (x, w, b), bw)


# ----------------------------------------------------------------------------- norms
def _norm_kernels(op, a, *params):
    """``(impl, rows kernels)`` of pf.ops.group_norm / layer_norm for ``a``'s device: the
    fastest built (C++, else Numba) for NumPy float32/float64 with parameters of the same dtype,
    the reference (one vectorized pass, dtype promotion) otherwise and on the GPU."""
    device = "cpu" if isinstance(a, np.ndarray) else "cuda"
    if device == "cpu" and (a.dtype not in _FAST_DTYPES["cpu"]
                            or any(p is not None and p.data.dtype != a.dtype for p in params)):
        return _op_kernels(op, device, "ref")
    return _op_kernels(op, device)


def _rows_norm(x, rows2d, groups, inner, w, b, eps, wshape, k, act=0, alpha=0.0):
    """Normalization (+ activation code ``act``) node over rows with the rows kernels ``k``
    (ops/group_norm.py). rows2d: x's data as (N, ...) C-contiguous with N * groups rows; w, b:
    Tensors or None whose flattened data is indexed (group * cpg + c); wshape: their shape."""
    W = None if w is None else _contig(w.data)
    B = None if b is None else _contig(b.data)
    y, mean, rstd = k.forward(rows2d, W, B, groups, inner, eps, act, alpha)
    shape = x.data.shape
    parents = (x,) + tuple(p for p in (w, b) if p is not None)
    y = y.reshape(shape)

    def bw(g):
        gx, pw, pb = k.backward(_contig(g).reshape(rows2d.shape), rows2d, W, B, mean, rstd, groups, inner,
                                x.requires_grad, act, alpha)
        res = [None if gx is None else gx.reshape(shape)]
        width = pw.shape[1] * groups
        for p, part in ((w, pw), (b, pb)):
            if p is not None:
                res.append(part.reshape(-1, width).sum(axis=0).astype(p.data.dtype).reshape(wshape)
                           if p.requires_grad else None)
        return res
    return _node(y, parents, bw)


def _empty_norm(x, w, b):
    """An empty batch: empty output, zero parameter gradients."""
    params = tuple(p for p in (w, b) if p is not None)
    return _node(x.data.copy(), (x,) + params, lambda g: [g] + [_xp(p.data).zeros_like(p.data) for p in params])


def _act_code(act, alpha):
    """(code, alpha) of a bias_act activation name applied after a norm (None: no activation)."""
    if act is None:
        return 0, 0.0
    if act not in ACTIVATIONS:
        raise ValueError(f"act: unknown activation {act!r}; expected None or one of {tuple(ACTIVATIONS)}")
    code, da, _ = ACTIVATIONS[act]
    return code, float(da if alpha is None else alpha)


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5, *, act=None, alpha=None):  # noqa: A002
    """GroupNorm. input (N, C, *), weight/bias (C,) or None; C % num_groups == 0.

    pixelforge extension: ``act`` ("relu", "lrelu" with slope ``alpha``, "silu", "gelu", "tanh",
    "sigmoid"; gain 1) is applied after the affine in the same pass. One pass forward and one
    backward on pf.ops.group_norm's kernels (C++ on the CPU: OpenMP over rows)."""
    code, alpha = _act_code(act, alpha)
    x = _t(input)
    a = x.data
    if a.ndim < 2:
        raise ValueError(f"input: expected (N, C, *), got shape {tuple(a.shape)}")
    n, c = a.shape[0], a.shape[1]
    if isinstance(num_groups, bool) or not isinstance(num_groups, (int, np.integer)) or num_groups <= 0 \
            or c % num_groups:
        raise ValueError(f"num_groups: {num_groups} must divide the {c} channels of input")
    w = None if weight is None else _t(weight)
    b = None if bias is None else _t(bias)
    for name, p in (("weight", w), ("bias", b)):
        if p is not None and p.data.shape != (c,):
            raise ValueError(f"{name}: expected shape ({c},), got {tuple(p.data.shape)}")
    if a.size == 0:
        return _empty_norm(x, w, b)
    impl, kern = _norm_kernels("group_norm", a, w, b)
    device = "cpu" if isinstance(a, np.ndarray) else "cuda"
    if code and impl != "cpu" and resolve("bias_act", device)[0] in ("cpu", "cuda"):
        # the compiled activation beats a fused Numba or reference pass: on the CPU the C++
        # vector exp is 4x the Numba one (GroupNorm then SiLU 0.3 + 0.1 ms against 1.3 ms fused
        # at 32x16x32x32, one thread)
        return _bias_act(group_norm(x, num_groups, w, b, eps), None, 0, act, alpha, 1.0, -1.0)
    inner = int(np.prod(a.shape[2:], dtype=np.int64))
    return _rows_norm(x, _contig(a), num_groups, inner, w, b, eps, (c,), kern, code, alpha)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):  # noqa: A002
    """LayerNorm over the trailing ``normalized_shape`` dims; weight/bias of that shape or None.
    One pass forward and one backward on pf.ops.layer_norm's kernels."""
    x = _t(input)
    a = x.data
    if isinstance(normalized_shape, (int, np.integer)):
        normalized_shape = (int(normalized_shape),)
    normalized_shape = tuple(normalized_shape)
    k = len(normalized_shape)
    if k == 0 or k > a.ndim or tuple(a.shape[a.ndim - k:]) != normalized_shape:
        raise ValueError(f"normalized_shape: {normalized_shape} does not match the trailing dims of input "
                         f"{tuple(a.shape)}")
    w = None if weight is None else _t(weight)
    b = None if bias is None else _t(bias)
    for name, p in (("weight", w), ("bias", b)):
        if p is not None and p.data.shape != normalized_shape:
            raise ValueError(f"{name}: expected shape {normalized_shape}, got {tuple(p.data.shape)}")
    if a.size == 0:
        return _empty_norm(x, w, b)
    _, kern = _norm_kernels("layer_norm", a, w, b)
    m = int(np.prod(normalized_shape, dtype=np.int64))
    return _rows_norm(x, _contig(a).reshape(-1, m), 1, 1, w, b, eps, normalized_shape, kern)


# ----------------------------------------------------------------------------- losses
def _reduce(loss_arr, reduction, parents, grad_of):
    """One node for an elementwise loss: ``grad_of(g_elementwise)`` gives the parents' grads."""
    if reduction == "none":
        return _node(loss_arr, parents, grad_of)
    if reduction == "mean":
        n = max(loss_arr.size, 1)
        out = loss_arr.mean() if loss_arr.size else loss_arr.sum() * np.nan
        shape = loss_arr.shape
        return _node(out, parents, lambda g: grad_of(_xp(loss_arr).broadcast_to(g / n, shape)))
    if reduction == "sum":
        shape = loss_arr.shape
        return _node(loss_arr.sum(), parents, lambda g: grad_of(_xp(loss_arr).broadcast_to(g, shape)))
    raise ValueError(f"reduction: expected 'none', 'mean' or 'sum', got {reduction!r}")


def mse_loss(input, target, reduction="mean"):  # noqa: A002
    """Mean squared error; input and target broadcast together (torch warns; we allow equal shapes)."""
    x, t = _t(input), _t(target)
    if x.data.shape != t.data.shape:
        raise ValueError(f"target: shape {tuple(t.shape)} differs from input's {tuple(x.shape)}")
    d = x.data - t.data

    def grad_of(ge):
        gd = 2 * ge * d
        return gd, -gd
    return _reduce(d * d, reduction, (x, t), grad_of)


def l1_loss(input, target, reduction="mean"):  # noqa: A002
    x, t = _t(input), _t(target)
    if x.data.shape != t.data.shape:
        raise ValueError(f"target: shape {tuple(t.shape)} differs from input's {tuple(x.shape)}")
    d = x.data - t.data
    s = _xp(d).sign(d)

    def grad_of(ge):
        gd = ge * s
        return gd, -gd
    return _reduce(abs(d), reduction, (x, t), grad_of)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):  # noqa: A002
    """Sigmoid + binary cross entropy in one stable expression. input, target: same shape;
    weight broadcasts to it; pos_weight broadcasts along the last (class) dim."""
    x, t = _t(input), _t(target)
    a, y = x.data, t.data
    if a.shape != y.shape:
        raise ValueError(f"target: shape {tuple(y.shape)} differs from input's {tuple(a.shape)}")
    xp = _xp(a)
    sp_neg = xp.logaddexp(0, -a)  # softplus(-x) = -log(sigmoid(x))
    wd = None if weight is None else _to_array(weight.data if isinstance(weight, Tensor) else weight)
    if pos_weight is None:
        loss = (1 - y) * a + sp_neg
    else:
        pw = _to_array(pos_weight.data if isinstance(pos_weight, Tensor) else pos_weight)
        lw = 1 + (pw - 1) * y
        loss = (1 - y) * a + lw * sp_neg
    if wd is not None:
        loss = loss * wd

    def grad_of(ge):
        sig = 1 / (1 + xp.exp(-a))
        if pos_weight is None:
            gx = sig - y
            gt = -a
        else:
            gx = (1 - y) - lw * (1 - sig)
            gt = -a + (pw - 1) * sp_neg
        if wd is not None:
            ge = ge * wd
        return ge * gx if x.requires_grad else None, _unbroadcast(ge * gt, y.shape) if t.requires_grad else None
    return _reduce(loss, reduction, (x, t), grad_of)


def _classes_last(a):
    """(N, C, d...) -> (M, C); (C,) -> (1, C)."""
    if a.ndim == 1:
        return a.reshape(1, -1)
    if a.ndim == 2:
        return a
    return _xp(a).moveaxis(a, 1, -1).reshape(-1, a.shape[1])


def _classes_back(g2, shape):
    if len(shape) <= 2:
        return g2.reshape(shape)
    moved = (shape[0],) + tuple(shape[2:]) + (shape[1],)
    return _xp(g2).moveaxis(g2.reshape(moved), -1, 1)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):  # noqa: A002
    """Softmax cross entropy. input (N, C) / (N, C, d...) / (C,) logits; target class indices
    (N,) / (N, d...) / () (int) or class probabilities shaped like input (float)."""
    x = _t(input)
    a = x.data
    xp = _xp(a)
    if a.ndim < 1:
        raise ValueError("input: expected (C,), (N, C) or (N, C, d...) logits")
    c = a.shape[1] if a.ndim >= 2 else a.shape[0]
    ls = float(label_smoothing)
    if not 0.0 <= ls <= 1.0:
        raise ValueError(f"label_smoothing: must be in [0, 1], got {label_smoothing}")
    tgt = target.data if isinstance(target, Tensor) else _to_array(target)
    w = None if weight is None else (weight.data if isinstance(weight, Tensor) else _to_array(weight))
    if w is not None and w.shape != (c,):
        raise ValueError(f"weight: expected shape ({c},), got {tuple(w.shape)}")
    a2 = _classes_last(a)
    s = a2 - a2.max(axis=1, keepdims=True)
    logp = s - xp.log(xp.exp(s).sum(axis=1, keepdims=True))
    wrow = w.astype(a.dtype)[None, :] if w is not None else None
    if tgt.dtype.kind in "iu":
        want = a.shape[:1] + a.shape[2:] if a.ndim >= 2 else ()
        if tuple(tgt.shape) != tuple(want):
            raise ValueError(f"target: expected class indices of shape {tuple(want)}, got {tuple(tgt.shape)}")
        ti = tgt.reshape(-1)
        tx = _xp(ti)  # checked where the targets live: host targets cost the device no sync
        valid = ti != ignore_index
        if bool(((ti < 0) | (ti >= c))[valid].any()) if ti.size else False:
            raise ValueError(f"target: class indices must be in [0, {c}) (or ignore_index={ignore_index})")
        count = valid.sum()
        safe = tx.where(valid, ti, 0)
        if tx is not xp:  # host targets for device logits: one explicit copy over
            safe, valid = xp.asarray(safe), xp.asarray(valid)
        q = xp.zeros_like(a2)
        q[xp.arange(ti.size), safe] = (1 - ls)
        if ls:
            q += ls / c
        if wrow is not None:
            # torch weights the one-hot part by w[target] and the smoothing part by w[c]
            q = q * wrow
        q *= valid[:, None]
        denom_w = (w[safe] * valid).sum() if w is not None else count
    else:
        if tgt.shape != a.shape:
            raise ValueError(f"target: class probabilities must have input's shape {tuple(a.shape)}, "
                             f"got {tuple(tgt.shape)}")
        q = _classes_last(tgt).astype(a.dtype)
        if ls:
            q = q * (1 - ls) + ls / c
        if wrow is not None:
            q = q * wrow
        denom_w = q.shape[0]
    per = -(q * logp).sum(axis=1)
    if reduction == "none":
        out = per.reshape(a.shape[:1] + a.shape[2:] if a.ndim >= 2 else ())
        scale = None
    elif reduction == "sum":
        out = per.sum()
        scale = 1.0
    elif reduction == "mean":
        scale = 1.0 / float(denom_w) if float(denom_w) else float("nan")
        out = per.sum() * scale
    else:
        raise ValueError(f"reduction: expected 'none', 'mean' or 'sum', got {reduction!r}")

    def bw(g):
        gr = g.reshape(-1, 1) if scale is None else g * scale
        p = xp.exp(logp)
        g2 = (p * q.sum(axis=1, keepdims=True) - q) * gr
        return (_classes_back(g2, a.shape),)
    return _node(out, (x,), bw)


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):  # noqa: A002
    """Negative log likelihood of log-probabilities: input (N, C), target (N,) int."""
    x = _t(input)
    a = x.data
    xp = _xp(a)
    tgt = target.data if isinstance(target, Tensor) else _to_array(target)
    if a.ndim != 2 or tgt.shape != a.shape[:1]:
        raise ValueError(f"target: expected (N,) indices for input (N, C), got {tuple(tgt.shape)} and "
                         f"{tuple(a.shape)}")
    valid = tgt != ignore_index
    safe = xp.where(valid, tgt, 0)
    wt = (xp.asarray(weight.data if isinstance(weight, Tensor) else weight)[safe] if weight is not None
          else xp.ones(tgt.shape, a.dtype)) * valid
    rows = xp.arange(a.shape[0])
    per = -a[rows, safe] * wt
    if reduction == "none":
        out, scale = per, None
    elif reduction == "sum":
        out, scale = per.sum(), 1.0
    elif reduction == "mean":
        scale = 1.0 / float(wt.sum())
        out = per.sum() * scale
    else:
        raise ValueError(f"reduction: expected 'none', 'mean' or 'sum', got {reduction!r}")

    def bw(g):
        gz = xp.zeros_like(a)
        gz[rows, safe] = -wt * (g if scale is None else g * scale)
        return (gz,)
    return _node(out, (x,), bw)


# ----------------------------------------------------------------------------- kernels from pf.ops
def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):  # noqa: A002
    """2-D convolution (cross-correlation). input (N, Cin, H, W), weight (Cout, Cin/groups, kH, kW),
    bias (Cout,) -> (N, Cout, Ho, Wo). Runs pf.ops.conv2d / conv2d_backward."""
    x, w = _t(input), _t(weight)
    b = None if bias is None else _t(bias)
    X, Wt = x.data, w.data
    out = ops.conv2d(X, Wt, None if b is None else b.data, stride, padding, dilation, groups)
    needs = (x.requires_grad, w.requires_grad, b is not None and b.requires_grad)
    prec = precision.compute_dtype()

    def bw(g):
        with precision.using(prec):  # the backward in the forward's precision
            dx, dw, db = ops.conv2d_backward(_contig(g), X, Wt, stride, padding, dilation, groups, needs=needs)
        return (dx, dw) if b is None else (dx, dw, db)
    return _node(out, (x, w) if b is None else (x, w, b), bw)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):  # noqa: A002
    """Transposed 2-D convolution. input (N, Cin, H, W), weight (Cin, Cout/groups, kH, kW),
    bias (Cout,) -> (N, Cout, Ho, Wo) with Ho = (H-1)*stride - 2*padding + dilation*(kH-1)
    + output_padding + 1. Runs pf.ops.conv_transpose2d / conv_transpose2d_backward."""
    x, w = _t(input), _t(weight)
    b = None if bias is None else _t(bias)
    X, Wt = x.data, w.data
    out = ops.conv_transpose2d(X, Wt, None if b is None else b.data, stride, padding, output_padding, groups,
                               dilation)
    needs = (x.requires_grad, w.requires_grad, b is not None and b.requires_grad)
    prec = precision.compute_dtype()

    def bw(g):
        with precision.using(prec):  # the backward in the forward's precision
            dx, dw, db = ops.conv_transpose2d_backward(_contig(g), X, Wt, stride, padding, output_padding, groups,
                                                       dilation, needs=needs)
        return (dx, dw) if b is None else (dx, dw, db)
    return _node(out, (x, w) if b is None else (x, w, b), bw)


def attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=True):
    """Scaled dot-product attention (torch's scaled_dot_product_attention) on pf.ops.attention.

    query (B, H, Lq, D), key/value (B, Hkv, Lk, D) with H % Hkv == 0 -> (B, H, Lq, D).
    is_causal: query i sees keys j <= i + (Lk - Lq). attn_mask and dropout are not supported.
    """
    if attn_mask is not None:
        raise ValueError("attn_mask: not supported; use is_causal=True for a causal mask")
    if dropout_p:
        raise ValueError("dropout_p: attention dropout is not supported (use 0.0)")
    q, k, v = _t(query), _t(key), _t(value)
    if not (_mode_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)):
        # k, v as they are: a KV cache's views of its buffer are read in place
        return _new(ops.attention(_contig(q.data), k.data, v.data, causal=bool(is_causal), scale=scale))
    Q, K, V = _contig(q.data), _contig(k.data), _contig(v.data)
    out, lse = ops.attention(Q, K, V, causal=bool(is_causal), scale=scale, return_lse=True)

    def bw(g):
        return ops.attention_backward(_contig(g), Q, K, V, out, lse, causal=bool(is_causal), scale=scale)
    return _node(out, (q, k, v), bw)


scaled_dot_product_attention = attention


def _packed_attention(qkv, heads, kv_heads, is_causal=False, scale=None):
    """Multi-head self-attention straight from a packed projection, one autograd node.

    qkv: (B, L, (H + 2*Hkv) * D) — q heads, then k heads, then v heads — -> (B, L, H * D).
    The same result as slicing qkv into q, k, v, moving heads forward, calling
    :func:`attention` and merging heads back, without three slice nodes whose backward
    zero-fills a full-size gradient each, or the copies between them."""
    t = _t(qkv)
    a = t.data
    b, l, width = a.shape
    d = width // (heads + 2 * kv_heads)
    split = a.reshape(b, l, heads + 2 * kv_heads, d)
    xp = _xp(a)
    # (B, L, heads, D) -> (B, heads, L, D), contiguous, as the kernel reads them
    Q = xp.ascontiguousarray(split[:, :, :heads].transpose(0, 2, 1, 3))
    K = xp.ascontiguousarray(split[:, :, heads:heads + kv_heads].transpose(0, 2, 1, 3))
    V = xp.ascontiguousarray(split[:, :, heads + kv_heads:].transpose(0, 2, 1, 3))
    causal = bool(is_causal)
    if not (_mode_enabled() and t.requires_grad):
        o = ops.attention(Q, K, V, causal=causal, scale=scale)
        return _new(xp.ascontiguousarray(o.transpose(0, 2, 1, 3)).reshape(b, l, heads * d))
    o, lse = ops.attention(Q, K, V, causal=causal, scale=scale, return_lse=True)

    def bw(g):
        go = xp.ascontiguousarray(g.reshape(b, l, heads, d).transpose(0, 2, 1, 3))
        dq, dk, dv = ops.attention_backward(go, Q, K, V, o, lse, causal=causal, scale=scale)
        grad = xp.empty((b, l, heads + 2 * kv_heads, d), a.dtype)
        grad[:, :, :heads] = dq.transpose(0, 2, 1, 3)
        grad[:, :, heads:heads + kv_heads] = dk.transpose(0, 2, 1, 3)
        grad[:, :, heads + kv_heads:] = dv.transpose(0, 2, 1, 3)
        return (grad.reshape(b, l, width),)
    return _node(xp.ascontiguousarray(o.transpose(0, 2, 1, 3)).reshape(b, l, heads * d), (t,), bw)


def _mode_enabled():
    return _mode.enabled


def reparameterize(mu, logvar, *, seed, offset=0):
    """VAE sample ``z = mu + exp(0.5 * logvar) * eps`` with eps from pf.random's Philox stream
    (seed, offset): pf.ops.reparameterize forward and backward. mu, logvar: same shape -> z."""
    m, lv = _t(mu), _t(logvar)
    z, eps = ops.reparameterize(m.data, lv.data, seed=seed, offset=offset)
    LV = lv.data

    def bw(g):
        return ops.reparameterize_backward(_contig(g), eps, LV)
    return _node(z, (m, lv), bw)


def gaussian_kl(mu, logvar):
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over the non-batch dims: (N, ...) -> (N,)."""
    m, lv = _t(mu), _t(logvar)
    M, LV = m.data, lv.data
    kl = ops.gaussian_kl(M, LV)
    return _node(kl, (m, lv), lambda g: ops.gaussian_kl_backward(_contig(g), M, LV))


# ----------------------------------------------------------------------------- misc layers
def dropout(input, p=0.5, training=True, *, generator=None):  # noqa: A002
    """Zero each element with probability p and scale the rest by 1/(1-p) (training only)."""
    x = _t(input)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p: dropout probability must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    a = x.data
    xp = _xp(a)
    if p == 1.0:
        return x * 0.0
    gen = generator if generator is not None else np.random.default_rng()
    keep = gen.random(a.shape) >= p
    mask = xp.asarray(keep.astype(a.dtype) / (1 - p))
    return _node(a * mask, (x,), lambda g: (g * mask,))


def embedding(input, weight, padding_idx=None):  # noqa: A002
    """Rows of ``weight`` (num, dim) at integer indices ``input`` (*) -> (*, dim)."""
    w = _t(weight)
    idx = input.data if isinstance(input, Tensor) else _to_array(input)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"input: expected integer indices, got {idx.dtype}")
    num = w.data.shape[0]
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= num):
        raise ValueError(f"input: indices must be in [0, {num}), got range [{int(idx.min())}, {int(idx.max())}]")
    W = w.data
    xp = _xp(W)
    if xp is not np and isinstance(idx, np.ndarray):
        idx = xp.asarray(idx)  # checked on the host, then one explicit copy to the weights' device

    def bw(g):
        gw = xp.zeros_like(W)
        g2 = g.reshape(-1, W.shape[1])
        fi = idx.reshape(-1)
        if xp is np:
            # rows of the same index summed in order of appearance, as np.add.at does, but
            # by one sort and one reduceat (np.add.at is ~20x slower at 4096 x 96)
            order = np.argsort(fi, kind="stable")
            sf = fi[order]
            starts = np.flatnonzero(np.concatenate(([True], sf[1:] != sf[:-1])))
            if len(starts):
                gw[sf[starts]] = np.add.reduceat(g2[order], starts, axis=0)
        else:
            xp.add.at(gw, fi, g2)
        if padding_idx is not None:
            gw[padding_idx] = 0
        return (gw,)
    return _node(W[idx], (w,), bw)


def interpolate(input, scale_factor=2, mode="nearest"):  # noqa: A002
    """Nearest-neighbour upsampling of (N, C, H, W) by an integer factor."""
    if mode != "nearest":
        raise ValueError(f"mode: only 'nearest' is supported, got {mode!r}")
    s = int(scale_factor)
    if s != scale_factor or s < 1:
        raise ValueError(f"scale_factor: expected a positive integer, got {scale_factor}")
    x = _t(input)
    a = x.data
    if a.ndim != 4:
        raise ValueError(f"input: expected (N, C, H, W), got shape {tuple(a.shape)}")
    n, c, h, w = a.shape
    xp = _xp(a)
    out = xp.broadcast_to(a[:, :, :, None, :, None], (n, c, h, s, w, s)).reshape(n, c, h * s, w * s)

    def bw(g):
        # the s·s strided views added up: NumPy's sum over the two inner axes at once walked
        # them element by element (9.6 ms for a 64×48×28×28 gradient, 1.1 ms this way)
        gr = g.reshape(n, c, h, s, w, s)
        gx = gr[:, :, :, 0, :, 0].copy()
        for i in range(s):
            for j in range(s):
                if i or j:
                    gx += gr[:, :, :, i, :, j]
        return (gx,)
    return _node(out, (x,), bw)


def avg_pool2d(input, kernel_size):  # noqa: A002
    """Average pooling with stride = kernel_size (no padding); H, W divisible by it."""
    k = int(kernel_size)
    x = _t(input)
    a = x.data
    n, c, h, w = a.shape
    if h % k or w % k:
        raise ValueError(f"kernel_size: {k} must divide the spatial size {h}x{w}")
    xp = _xp(a)
    out = a.reshape(n, c, h // k, k, w // k, k).mean(axis=(3, 5))
    return _node(out, (x,), lambda g: (xp.broadcast_to((g / (k * k))[:, :, :, None, :, None],
                                                       (n, c, h // k, k, w // k, k)).reshape(a.shape),))


def pad(input, pad, value=0.0):  # noqa: A002
    """Constant padding, torch's order: (left, right[, top, bottom[, ...]]) from the last dim."""
    x = _t(input)
    a = x.data
    if len(pad) % 2 or len(pad) // 2 > a.ndim:
        raise ValueError(f"pad: expected pairs for at most {a.ndim} dims, got {pad}")
    widths = [(0, 0)] * a.ndim
    for i in range(len(pad) // 2):
        widths[a.ndim - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    if any(lo < 0 or hi < 0 for lo, hi in widths):
        raise ValueError(f"pad: negative padding is not supported, got {pad}")
    out = _xp(a).pad(a, widths, constant_values=value)
    sl = tuple(slice(lo, lo + n) for (lo, _), n in zip(widths, a.shape))
    return _node(out, (x,), lambda g: (g[sl],))
