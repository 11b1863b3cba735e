"""Reference 2-D convolution (NCHW, torch semantics), NumPy or CuPy.

    x: (N, C, H, W)   weight: (K, C/groups, R, S)   out: (N, K, P, Q)
    out[n, k, p, q] = bias[k] + sum_{c in group(k), r, s}
                      weight[k, c, r, s] * x[n, c, p*sh - pt + r*dh, q*sw - pl + s*dw]

Written tap by tap: for each kernel offset (r, s) the strided window of the zero-padded
input is contracted with weight[:, :, r, s] over the group's channels (einsum). The
backward passes and the transposed convolution are the same loop with the contraction
turned around. float16/bfloat16 inputs compute in float32. P and Q are passed in (the
public op computes them) so conv_transpose2d's output_padding needs no special case.
"""
from __future__ import annotations

import numpy as np

from ..._validate import xp_of


def _cdt(a):
    return a.dtype if a.dtype.name in ("float32", "float64") else np.float32


def _padded(x, pt, pl, rows, cols):
    """x zero-padded by pt on top and pl on the left, grown (or cut) to rows × cols."""
    xp = xp_of(x)
    N, C, H, W = x.shape
    buf = xp.zeros((N, C, rows, cols), dtype=x.dtype)
    h = min(H, rows - pt)
    w = min(W, cols - pl)
    if h > 0 and w > 0:
        buf[:, :, pt:pt + h, pl:pl + w] = x[:, :, :h, :w]
    return buf


def _extent(n_out, stride, k, dil):
    return (n_out - 1) * stride + dil * (k - 1) + 1


def _window(xpad, r, s, P, Q, sh, sw, dh, dw):
    """The (N, C, P, Q) input values tap (r, s) meets."""
    return xpad[:, :, r * dh: r * dh + (P - 1) * sh + 1: sh, s * dw: s * dw + (Q - 1) * sw + 1: sw]


def conv2d(x, weight, bias, stride, pad, dilation, groups, out_hw):
    """Forward. stride, dilation: (h, w); pad: (top, left) — the bottom/right padding is
    whatever makes the output out_hw = (P, Q)."""
    xp = xp_of(x)
    dt = _cdt(x)
    x, weight = x.astype(dt), weight.astype(dt)
    (sh, sw), (pt, pl), (dh, dw), (P, Q) = stride, pad, dilation, out_hw
    N, C, H, W = x.shape
    K, Cg, R, S = weight.shape
    G = groups
    xpad = _padded(x, pt, pl, max(_extent(P, sh, R, dh), pt + H), max(_extent(Q, sw, S, dw), pl + W))
    wg = weight.reshape(G, K // G, Cg, R, S)
    out = xp.zeros((N, G, K // G, P, Q), dtype=dt)
    for r in range(R):
        for s in range(S):
            win = _window(xpad, r, s, P, Q, sh, sw, dh, dw).reshape(N, G, Cg, P, Q)
            out += xp.einsum("ngcpq,gkc->ngkpq", win, wg[:, :, :, r, s], optimize=True)
    out = out.reshape(N, K, P, Q)
    if bias is not None:
        out += bias.astype(dt).reshape(1, K, 1, 1)
    return out


def conv2d_input_grad(grad_out, weight, x_shape, stride, pad, dilation, groups):
    """dx: each output gradient is scattered back through every tap (the transposed conv)."""
    xp = xp_of(grad_out)
    dt = _cdt(grad_out)
    dy, weight = grad_out.astype(dt), weight.astype(dt)
    (sh, sw), (pt, pl), (dh, dw) = stride, pad, dilation
    N, C, H, W = x_shape
    _, K, P, Q = dy.shape
    _, Cg, R, S = weight.shape
    G = groups
    rows, cols = max(_extent(P, sh, R, dh), pt + H), max(_extent(Q, sw, S, dw), pl + W)
    dxpad = xp.zeros((N, C, rows, cols), dtype=dt)
    wg = weight.reshape(G, K // G, Cg, R, S)
    dyg = dy.reshape(N, G, K // G, P, Q)
    for r in range(R):
        for s in range(S):
            contrib = xp.einsum("ngkpq,gkc->ngcpq", dyg, wg[:, :, :, r, s], optimize=True).reshape(N, C, P, Q)
            dxpad[:, :, r * dh: r * dh + (P - 1) * sh + 1: sh, s * dw: s * dw + (Q - 1) * sw + 1: sw] += contrib
    return dxpad[:, :, pt:pt + H, pl:pl + W]


def conv2d_weight_grad(x, grad_out, w_shape, stride, pad, dilation, groups):
    """dW[k, c, r, s] = sum over batch and output pixels of dy · the window tap (r, s) met."""
    xp = xp_of(x)
    dt = _cdt(x)
    x, dy = x.astype(dt), grad_out.astype(dt)
    (sh, sw), (pt, pl), (dh, dw) = stride, pad, dilation
    N, C, H, W = x.shape
    _, K, P, Q = dy.shape
    _, Cg, R, S = w_shape
    G = groups
    xpad = _padded(x, pt, pl, max(_extent(P, sh, R, dh), pt + H), max(_extent(Q, sw, S, dw), pl + W))
    dyg = dy.reshape(N, G, K // G, P, Q)
    dwt = xp.zeros((G, K // G, Cg, R, S), dtype=dt)
    for r in range(R):
        for s in range(S):
            win = _window(xpad, r, s, P, Q, sh, sw, dh, dw).reshape(N, G, Cg, P, Q)
            dwt[:, :, :, r, s] = xp.einsum("ngkpq,ngcpq->gkc", dyg, win, optimize=True)
    return dwt.reshape(K, Cg, R, S)


def conv2d_bias_grad(grad_out):
    return grad_out.astype(_cdt(grad_out)).sum(axis=(0, 2, 3))
