"""2-D convolution, its gradients and the transposed convolution (NCHW, torch semantics).

    conv2d:            x (N, C, H, W), weight (K, C/groups, R, S), bias (K,) -> (N, K, P, Q)
                       P = (H + pad_top + pad_bottom - dilation*(R-1) - 1) // stride + 1
    conv_transpose2d:  x (N, Cin, H, W), weight (Cin, Cout/groups, R, S), bias (Cout,)
                       -> (N, Cout, Hout, Wout),
                       Hout = (H-1)*stride - 2*padding + dilation*(R-1) + output_padding + 1

Implementations: ``cpu`` (kernels/conv2d/conv2d_cpu.cpp: packed im2col panels feeding a
register-blocked AVX-512 / AVX2+FMA / portable micro-kernel, OpenMP, float32/float64; on
AVX-512, float32 3×3 stride-1 layers with >= 32 channels per group run Winograd F(2×2, 3×3)
in all three passes (forward/backward-data float32 error ~1.5× the direct path's, weight
gradient's below torch's, measured against float64; not bit-identical to the direct path) and
stride > 1 backward-data runs per output phase),
inside ``pf.autocast("bfloat16")`` the float32 forward runs kernels/conv2d/conv2d_bf16_cpu.cpp
(bfloat16 products, float32 sums) for the layers where that is faster than float32 (it says),
``cuda`` (kernels/conv2d/conv2d_cuda.cu: implicit GEMM with shared-memory tiles, tensor
cores for float16/bfloat16; float32/float16/bfloat16 on CuPy arrays), ``ref``
(ops/_ref/conv2d.py). A 3-D x (C, H, W) is treated as a batch of one, as torch does.

Every impl provides four primitives (forward, backward-data, backward-weight,
backward-bias); conv_transpose2d's forward is conv2d's backward-data and its backward is
conv2d's forward plus backward-weight with the roles of x and grad_out exchanged.
"""
from __future__ import annotations


import numpy as np

from .. import _backend, precision
from .._dispatch import NotBuilt, register, resolve, set_order
from .._validate import float_array, integer, same_device, same_dtype
from . import _glue
from ._ref import conv2d as _ref

_OPS = ("conv2d", "conv2d_backward", "conv_transpose2d", "conv_transpose2d_backward")
for _op in _OPS:
    set_order(_op, "cpu", ("cpu", "ref"))
    set_order(_op, "cuda", ("cuda", "ref"))



# ----------------------------------------------------------------------------- arguments
def _pair(v, name, *, min_value):
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name}: expected an int or a pair of ints, got {v!r}")
        a, b = (integer(e, name, min_value=min_value) for e in v)
        return a, b
    v = integer(v, name, min_value=min_value)
    return v, v


class _Geo:
    """Resolved geometry of one convolution (the conv2d view, also for the transpose)."""

    __slots__ = ("stride", "pad", "pad_end", "dilation", "groups", "out_hw")

    def __init__(self, stride, pad, pad_end, dilation, groups, out_hw):
        self.stride, self.pad, self.pad_end = stride, pad, pad_end
        self.dilation, self.groups, self.out_hw = dilation, groups, out_hw

    def args(self):
        """The 9 geometry ints the C++/CUDA glue takes."""
        (sh, sw), (pt, pl), (pb, pr), (dh, dw) = self.stride, self.pad, self.pad_end, self.dilation
        return [sh, sw, pt, pl, pb, pr, dh, dw, self.groups]


def _arrays(x, weight, bias, *, x_name="x", extra=None):
    x = float_array(x, x_name)
    if x.ndim not in (3, 4):
        raise ValueError(f"{x_name}: expected 4 dimensions (N, C, H, W) or 3 (C, H, W), got shape {tuple(x.shape)}")
    weight = float_array(weight, "weight", ndim=4)
    if bias is not None:
        bias = float_array(bias, "bias", ndim=1)
    arrays = {x_name: x, "weight": weight, "bias": bias}
    if extra:
        arrays.update(extra)
    device = same_device(**arrays)
    same_dtype(**arrays)
    return x, weight, bias, device


def _groups(groups, c_in, k_out, w_in, *, x_name, transpose):
    groups = integer(groups, "groups", min_value=1)
    if c_in % groups:
        raise ValueError(f"groups: {groups} does not divide the {c_in} channels of {x_name}")
    if k_out % groups:
        raise ValueError(f"groups: {groups} does not divide the {k_out} output channels")
    if not transpose and w_in * groups != c_in:
        raise ValueError(f"weight: shape[1] = {w_in} times groups = {groups} must equal the {c_in} channels "
                         f"of {x_name}")
    return groups


def _conv_geo(x_shape, w_shape, stride, padding, dilation, groups, *, x_name="x"):
    _, C, H, W = x_shape
    K, Cg, R, S = w_shape
    groups = _groups(groups, C, K, Cg, x_name=x_name, transpose=False)
    stride = _pair(stride, "stride", min_value=1)
    dilation = _pair(dilation, "dilation", min_value=1)
    if isinstance(padding, str):
        if padding == "valid":
            pad, pad_end = (0, 0), (0, 0)
        elif padding == "same":
            if stride != (1, 1):
                raise ValueError("padding: 'same' is not supported with stride > 1 (as in torch)")
            th, tw = dilation[0] * (R - 1), dilation[1] * (S - 1)
            pad, pad_end = (th // 2, tw // 2), (th - th // 2, tw - tw // 2)  # extra on bottom/right
        else:
            raise ValueError(f"padding: unknown value {padding!r}; expected an int, a pair, 'same' or 'valid'")
    else:
        pad = _pair(padding, "padding", min_value=0)
        pad_end = pad
    out = []
    for n, k, s, d, a, b, nm in ((H, R, stride[0], dilation[0], pad[0], pad_end[0], "height"),
                                 (W, S, stride[1], dilation[1], pad[1], pad_end[1], "width")):
        span = d * (k - 1) + 1
        if n + a + b < span:
            raise ValueError(f"weight: kernel {nm} {k} (dilated span {span}) is larger than the padded input "
                             f"{nm} {n + a + b}")
        out.append((n + a + b - span) // s + 1)
    return _Geo(stride, pad, pad_end, dilation, groups, tuple(out))


def _transpose_geo(x_shape, w_shape, stride, padding, output_padding, groups, dilation):
    """Geometry of the conv2d whose backward-data is this transposed conv."""
    _, Cin, H, W = x_shape
    Cin_w, Coutg, R, S = w_shape
    if Cin_w != Cin:
        raise ValueError(f"weight: shape[0] = {Cin_w} must equal the {Cin} channels of x (transposed conv weight is "
                         "(in, out/groups, kH, kW))")
    groups = _groups(groups, Cin, Coutg * integer(groups, "groups", min_value=1), Coutg, x_name="x",
                     transpose=True)
    stride = _pair(stride, "stride", min_value=1)
    dilation = _pair(dilation, "dilation", min_value=1)
    if isinstance(padding, str):
        raise ValueError("padding: conv_transpose2d takes an int or a pair (no 'same'/'valid', as in torch)")
    pad = _pair(padding, "padding", min_value=0)
    opad = _pair(output_padding, "output_padding", min_value=0)
    out_hw = []
    for i in range(2):
        if opad[i] >= stride[i] and opad[i] >= dilation[i]:
            raise ValueError(f"output_padding: {opad} must be smaller than either stride {stride} or dilation "
                             f"{dilation}")
        n = (x_shape[2 + i] - 1) * stride[i] - 2 * pad[i] + dilation[i] * (w_shape[2 + i] - 1) + opad[i] + 1
        if n <= 0:
            raise ValueError(f"padding: {pad} leaves an empty output (size {n})")
        out_hw.append(n)
    # The conv view: input (N, Cout, Hout, Wout), output (N, Cin, H, W).
    pad_end = tuple(pad[i] - opad[i] for i in range(2))
    return _Geo(stride, pad, pad_end, dilation, groups, (H, W)), tuple(out_hw), Coutg * groups


def _batched(x):
    return (x[None], True) if x.ndim == 3 else (x, False)


def _needs(needs):
    if not isinstance(needs, (tuple, list)) or len(needs) != 3 or not all(isinstance(b, (bool, int)) for b in needs):
        raise TypeError(f"needs: expected three booleans (dx, dw, db), got {needs!r}")
    return tuple(bool(b) for b in needs)


def _check_grad(grad_out, expected, device, dtype):
    grad_out = float_array(grad_out, "grad_out")
    g = grad_out[None] if grad_out.ndim == 3 else grad_out
    if tuple(g.shape) != tuple(expected):
        raise ValueError(f"grad_out: expected shape {tuple(expected)}, got {tuple(grad_out.shape)}")
    if (device == "cuda") != _backend.is_cupy_array(g):
        raise ValueError(f"grad_out: on {'cuda' if _backend.is_cupy_array(g) else 'cpu'} but x is on {device}")
    if g.dtype != dtype:
        raise TypeError(f"grad_out: dtype {g.dtype.name} differs from x's {dtype.name}")
    return g


# ----------------------------------------------------------------------------- public
def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, impl="auto"):
    """2-D convolution (cross-correlation, as torch.nn.functional.conv2d).

    x: (N, C, H, W) or (C, H, W); weight: (K, C/groups, R, S); bias: (K,) or None.
    stride, dilation: int or pair (>= 1); padding: int, pair, "valid" or "same" (stride 1;
    an odd total pad puts the extra row/column at the bottom/right, like torch).
    Returns (N, K, P, Q) with P = (H + 2*pad_h - dilation_h*(R-1) - 1) // stride_h + 1.
    """
    x, weight, bias, device = _arrays(x, weight, bias)
    xb, squeeze = _batched(x)
    geo = _conv_geo(xb.shape, weight.shape, stride, padding, dilation, groups)
    if bias is not None and bias.shape[0] != weight.shape[0]:
        raise ValueError(f"bias: length {bias.shape[0]} does not match the {weight.shape[0]} output channels")
    _, prim = resolve("conv2d", device, impl)
    out = prim["forward"](xb, weight, bias, geo)
    return out[0] if squeeze else out


def conv2d_backward(grad_out, x, weight, stride=1, padding=0, dilation=1, groups=1, *, needs=(True, True, True),
                    impl="auto"):
    """Gradients of :func:`conv2d`: ``(dx, dw, db)``, each None unless asked in ``needs``.

    grad_out: (N, K, P, Q) (the shape conv2d returns for x, weight); x: (N, C, H, W);
    weight: (K, C/groups, R, S). dx like x, dw like weight, db: (K,).
    """
    needs = _needs(needs)
    x, weight, _, device = _arrays(x, weight, None)
    xb, squeeze = _batched(x)
    geo = _conv_geo(xb.shape, weight.shape, stride, padding, dilation, groups)
    g = _check_grad(grad_out, (xb.shape[0], weight.shape[0]) + geo.out_hw, device, x.dtype)
    _, prim = resolve("conv2d_backward", device, impl)
    dx = prim["backward_data"](g, weight, xb.shape, geo) if needs[0] else None
    dw = prim["backward_weight"](xb, g, weight.shape, geo) if needs[1] else None
    db = prim["backward_bias"](g) if needs[2] else None
    if squeeze and dx is not None:
        dx = dx[0]
    return dx, dw, db


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *,
                     impl="auto"):
    """Transposed 2-D convolution (torch.nn.functional.conv_transpose2d).

    x: (N, Cin, H, W) or (Cin, H, W); weight: (Cin, Cout/groups, R, S); bias: (Cout,) or None.
    stride, dilation, padding, output_padding: int or pair; output_padding must be smaller
    than stride or dilation. Returns (N, Cout, Hout, Wout),
    Hout = (H-1)*stride - 2*padding + dilation*(R-1) + output_padding + 1.
    """
    x, weight, bias, device = _arrays(x, weight, bias)
    xb, squeeze = _batched(x)
    geo, out_hw, cout = _transpose_geo(xb.shape, weight.shape, stride, padding, output_padding, groups, dilation)
    if bias is not None and bias.shape[0] != cout:
        raise ValueError(f"bias: length {bias.shape[0]} does not match the {cout} output channels")
    _, prim = resolve("conv_transpose2d", device, impl)
    out = prim["backward_data"](xb, weight, (xb.shape[0], cout) + out_hw, geo)
    if bias is not None:
        out += bias.astype(out.dtype).reshape(1, -1, 1, 1)
    return out[0] if squeeze else out


def conv_transpose2d_backward(grad_out, x, weight, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *,
                              needs=(True, True, True), impl="auto"):
    """Gradients of :func:`conv_transpose2d`: ``(dx, dw, db)``, None where not asked.

    grad_out: (N, Cout, Hout, Wout); x: (N, Cin, H, W); weight: (Cin, Cout/groups, R, S).
    dx = conv2d(grad_out, weight) (same geometry), dw like weight, db: (Cout,).
    """
    needs = _needs(needs)
    x, weight, _, device = _arrays(x, weight, None)
    xb, squeeze = _batched(x)
    geo, out_hw, cout = _transpose_geo(xb.shape, weight.shape, stride, padding, output_padding, groups, dilation)
    g = _check_grad(grad_out, (xb.shape[0], cout) + out_hw, device, x.dtype)
    _, prim = resolve("conv_transpose2d_backward", device, impl)
    dx = prim["forward"](g, weight, None, geo) if needs[0] else None
    dw = prim["backward_weight"](g, xb, weight.shape, geo) if needs[1] else None
    db = prim["backward_bias"](g) if needs[2] else None
    if squeeze and dx is not None:
        dx = dx[0]
    return dx, dw, db


# ----------------------------------------------------------------------------- impls
@register(_OPS, "cpu", "ref")
@register(_OPS, "cuda", "ref")
def _load_ref():
    def forward(x, w, b, geo):
        if precision.use_bfloat16(x, w):  # (as the kernels: float32 where they do not exist)
            # autocast's meaning, written out: x and weight rounded to bfloat16, float64 sums
            xr, wr = precision.rounded64(x, w)
            return _ref.conv2d(xr, wr, b, geo.stride, geo.pad, geo.dilation, geo.groups, geo.out_hw).astype(x.dtype)
        return _ref.conv2d(x, w, b, geo.stride, geo.pad, geo.dilation, geo.groups, geo.out_hw).astype(x.dtype)

    def backward_data(dy, w, x_shape, geo):
        if precision.use_bfloat16(dy, w):
            dyr, wr = precision.rounded64(dy, w)
            return _ref.conv2d_input_grad(dyr, wr, x_shape, geo.stride, geo.pad, geo.dilation, geo.groups).astype(dy.dtype)
        return _ref.conv2d_input_grad(dy, w, x_shape, geo.stride, geo.pad, geo.dilation, geo.groups).astype(dy.dtype)

    def backward_weight(x, dy, w_shape, geo):
        return _ref.conv2d_weight_grad(x, dy, w_shape, geo.stride, geo.pad, geo.dilation, geo.groups).astype(x.dtype)

    def backward_bias(dy):
        return _ref.conv2d_bias_grad(dy).astype(dy.dtype)

    return {"forward": forward, "backward_data": backward_data, "backward_weight": backward_weight,
            "backward_bias": backward_bias}


@register(_OPS, "cpu", "cpu")
def _load_cpu():
    mod = _backend.cpu_module()
    if mod is None or not hasattr(mod, "conv2d_forward"):
        raise NotBuilt("pixelforge._cpu (with conv2d) is not built")

    bf16 = getattr(mod, "conv2d_forward_bf16", None)

    def forward(x, w, b, geo):
        out = np.empty((x.shape[0], w.shape[0]) + geo.out_hw, x.dtype)
        if bf16 is not None and precision.use_bfloat16(x, w):  # bfloat16 where it is faster
            bf16(x, w, b, out, geo.args())
        else:
            mod.conv2d_forward(x, w, b, out, geo.args())
        return out

    bf16_data = getattr(mod, "conv2d_backward_data_bf16", None)

    def backward_data(dy, w, x_shape, geo):
        dx = np.empty(x_shape, dy.dtype)
        if bf16_data is not None and precision.use_bfloat16(dy, w):  # stride 1, where faster
            bf16_data(dy, w, dx, geo.args())
        else:
            mod.conv2d_backward_data(dy, w, dx, geo.args())
        return dx

    def backward_weight(x, dy, w_shape, geo):
        dw = np.empty(w_shape, x.dtype)
        mod.conv2d_backward_weight(x, dy, dw, geo.args())
        return dw

    def backward_bias(dy):
        db = np.empty(dy.shape[1], dy.dtype)
        mod.conv2d_backward_bias(dy, db)
        return db

    return {"forward": forward, "backward_data": backward_data, "backward_weight": backward_weight,
            "backward_bias": backward_bias}


@register(_OPS, "cuda", "cuda")
def _load_cuda():
    mod = _glue.cuda_module("conv2d_forward")
    cp = _backend.cupy()
    ptr, stream = _glue.ptr, _glue.stream

    def code(a):
        return _glue.dtype_code(a, "x")

    def forward(x, w, b, geo):
        out = cp.empty((x.shape[0], w.shape[0]) + geo.out_hw, x.dtype)
        mod.conv2d_forward(ptr(x), ptr(w), ptr(b), ptr(out), list(x.shape), list(w.shape), list(out.shape),
                           geo.args(), 0 if b is None else int(b.shape[0]), code(x), stream())
        return out

    def backward_data(dy, w, x_shape, geo):
        dx = cp.empty(x_shape, dy.dtype)
        mod.conv2d_backward_data(ptr(dy), ptr(w), ptr(dx), list(x_shape), list(w.shape), list(dy.shape),
                                 geo.args(), code(dy), stream())
        return dx

    def backward_weight(x, dy, w_shape, geo):
        dw = cp.empty(w_shape, x.dtype)
        ws = cp.empty(max(1, int(mod.conv2d_ws_floats(list(x.shape), list(w_shape), list(dy.shape), geo.args()))),
                      cp.float32)
        mod.conv2d_backward_weight(ptr(x), ptr(dy), ptr(dw), ptr(ws), list(x.shape), list(w_shape),
                                   list(dy.shape), geo.args(), code(x), stream())
        return dw

    def backward_bias(dy):
        db = cp.empty(dy.shape[1], dy.dtype)
        mod.conv2d_backward_bias(ptr(dy), ptr(db), list(dy.shape), code(dy), stream())
        return db

    return {"forward": forward, "backward_data": backward_data, "backward_weight": backward_weight,
            "backward_bias": backward_bias}
