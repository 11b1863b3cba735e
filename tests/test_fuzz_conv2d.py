"""Hypothesis fuzzing of conv2d, conv2d_backward, conv_transpose2d and its backward: random
valid geometries (groups, strides, asymmetric padding, 'same'/'valid', dilation, empty
batches, size-1 dims, non-contiguous and negative-stride views, float32/float64) match the
float64 reference for every built impl; random invalid arguments raise ValueError/TypeError,
never crash; NaN and Inf propagate exactly where the reference puts them."""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import pixelforge as pf
from opcheck import assert_close, fast_impls

IMPLS = fast_impls("conv2d")
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _scale(red):
    # a float32 dot product of `red` unit-normal terms has absolute error ~ sqrt(red)·eps: atol
    # grows with the longest reduction the checked output went through
    return max(1.0, float(np.sqrt(red)))


def _layout(a, how):
    """The same values as ``a`` as a contiguous array, a strided view or a negative-stride view."""
    if how == "contig" or a.ndim == 0:
        return a
    if how == "negstride":  # reversed twice: a view with negative strides on the last two axes
        return np.ascontiguousarray(a[..., ::-1, ::-1])[..., ::-1, ::-1]
    big = np.full(a.shape[:-1] + (2 * a.shape[-1],), np.nan, a.dtype)
    big[..., ::2] = a
    return big[..., ::2]


def _pair(draw, lo, hi):
    a = draw(st.integers(lo, hi))
    return (a, a) if draw(st.booleans()) else (a, draw(st.integers(lo, hi)))


@st.composite
def conv_case(draw):
    groups = draw(st.integers(1, 3))
    cin, cout = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = _pair(draw, 1, 3)
    dilation = _pair(draw, 1, 2)
    mode = draw(st.sampled_from(["int", "pair", "valid", "same"]))
    if mode == "same":
        stride = (1, 1)  # torch: 'same' needs stride 1
        padding = "same"
        pads = ((dilation[0] * (kh - 1)) // 2, (dilation[1] * (kw - 1)) // 2)
    elif mode == "valid":
        padding, pads = "valid", (0, 0)
    elif mode == "int":
        p = draw(st.integers(0, 2))
        padding, pads = p, (p, p)
    else:
        padding = pads = _pair(draw, 0, 2)
    # the input must hold the dilated kernel after padding
    hmin = max(1, dilation[0] * (kh - 1) + 1 - 2 * pads[0])
    wmin = max(1, dilation[1] * (kw - 1) + 1 - 2 * pads[1])
    H, W = draw(st.integers(hmin, hmin + 5)), draw(st.integers(wmin, wmin + 5))
    N = draw(st.integers(0, 3))
    return dict(N=N, cin=cin, cout=cout, H=H, W=W, k=(kh, kw), groups=groups, stride=stride,
                padding=padding, dilation=dilation, bias=draw(st.booleans()),
                dtype=draw(st.sampled_from([np.float32, np.float64])),
                layout=draw(st.sampled_from(["contig", "noncontig", "negstride"])),
                three_d=N == 1 and draw(st.booleans()), seed=draw(st.integers(0, 2 ** 31)))


def _f64(*arrays):
    return [None if a is None else np.asarray(a, np.float64) for a in arrays]


@FAST
@given(conv_case())
def test_conv2d_random_valid_match_reference(c):
    g = np.random.default_rng(c["seed"])
    dt = c["dtype"]
    x = g.standard_normal((c["N"], c["cin"], c["H"], c["W"])).astype(dt)
    w = g.standard_normal((c["cout"], c["cin"] // c["groups"]) + c["k"]).astype(dt)
    b = g.standard_normal(c["cout"]).astype(dt) if c["bias"] else None
    kw = dict(stride=c["stride"], padding=c["padding"], dilation=c["dilation"], groups=c["groups"])
    xr, wr, br = _f64(x, w, b)
    want = pf.ops.conv2d(xr, wr, br, impl="ref", **kw)
    gy = g.standard_normal(want.shape).astype(dt)
    rdx, rdw, rdb = pf.ops.conv2d_backward(gy.astype(np.float64), xr, wr, impl="ref", **kw)
    red_f = (c["cin"] // c["groups"]) * c["k"][0] * c["k"][1]
    red_x = (c["cout"] // c["groups"]) * c["k"][0] * c["k"][1]
    red_w = max(1, c["N"] * want.shape[2] * want.shape[3])
    xv, wv, gyv = _layout(x, c["layout"]), _layout(w, c["layout"]), _layout(gy, c["layout"])
    for impl in IMPLS:
        if c["three_d"]:
            got = pf.ops.conv2d(xv[0], wv, b, impl=impl, **kw)
            assert_close(got, want[0], dt, f"{impl} 3-D {c}", scale=_scale(red_f))
        got = pf.ops.conv2d(xv, wv, b, impl=impl, **kw)
        assert got.dtype == dt
        assert_close(got, want, dt, f"{impl} forward {c}", scale=_scale(red_f))
        dx, dw, db = pf.ops.conv2d_backward(gyv, xv, wv, impl=impl, **kw)
        assert_close(dx, rdx, dt, f"{impl} dx {c}", scale=_scale(red_x))
        assert_close(dw, rdw, dt, f"{impl} dw {c}", scale=_scale(red_w))
        assert_close(db, rdb, dt, f"{impl} db {c}", scale=_scale(red_w))
        # needs=: only what was asked for, None elsewhere
        dx2, dw2, db2 = pf.ops.conv2d_backward(gyv, xv, wv, impl=impl, needs=(False, True, False), **kw)
        assert dx2 is None and db2 is None
        assert_close(dw2, rdw, dt, f"{impl} dw alone {c}", scale=_scale(red_w))


@st.composite
def transpose_case(draw):
    groups = draw(st.integers(1, 3))
    cin, cout = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = _pair(draw, 1, 3)
    dilation = _pair(draw, 1, 2)
    padding = _pair(draw, 0, 2)
    # output_padding must be smaller than stride or dilation (torch's rule)
    opad = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    H, W = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    for n, s, p, d, k, o in ((H, stride[0], padding[0], dilation[0], kh, opad[0]),
                             (W, stride[1], padding[1], dilation[1], kw, opad[1])):
        assume((n - 1) * s - 2 * p + d * (k - 1) + o + 1 >= 1)
    return dict(N=draw(st.integers(0, 3)), cin=cin, cout=cout, H=H, W=W, k=(kh, kw), groups=groups,
                stride=stride, padding=padding, output_padding=opad, dilation=dilation, bias=draw(st.booleans()),
                dtype=draw(st.sampled_from([np.float32, np.float64])),
                layout=draw(st.sampled_from(["contig", "noncontig", "negstride"])), seed=draw(st.integers(0, 2 ** 31)))


@FAST
@given(transpose_case())
def test_conv_transpose2d_random_valid_match_reference(c):
    g = np.random.default_rng(c["seed"])
    dt = c["dtype"]
    x = g.standard_normal((c["N"], c["cin"], c["H"], c["W"])).astype(dt)
    w = g.standard_normal((c["cin"], c["cout"] // c["groups"]) + c["k"]).astype(dt)
    b = g.standard_normal(c["cout"]).astype(dt) if c["bias"] else None
    kw = dict(stride=c["stride"], padding=c["padding"], output_padding=c["output_padding"], groups=c["groups"],
              dilation=c["dilation"])
    xr, wr, br = _f64(x, w, b)
    want = pf.ops.conv_transpose2d(xr, wr, br, impl="ref", **kw)
    gy = g.standard_normal(want.shape).astype(dt)
    rdx, rdw, rdb = pf.ops.conv_transpose2d_backward(gy.astype(np.float64), xr, wr, impl="ref", **kw)
    red_f = (c["cin"] // c["groups"]) * c["k"][0] * c["k"][1]
    red_x = (c["cout"] // c["groups"]) * c["k"][0] * c["k"][1]
    red_w = max(1, c["N"] * want.shape[2] * want.shape[3])
    xv, wv, gyv = _layout(x, c["layout"]), _layout(w, c["layout"]), _layout(gy, c["layout"])
    for impl in IMPLS:
        got = pf.ops.conv_transpose2d(xv, wv, b, impl=impl, **kw)
        assert_close(got, want, dt, f"{impl} forward {c}", scale=_scale(red_f))
        dx, dw, db = pf.ops.conv_transpose2d_backward(gyv, xv, wv, impl=impl, **kw)
        assert_close(dx, rdx, dt, f"{impl} dx {c}", scale=_scale(red_x))
        assert_close(dw, rdw, dt, f"{impl} dw {c}", scale=_scale(red_w))
        assert_close(db, rdb, dt, f"{impl} db {c}", scale=_scale(red_w))


BAD = ["x_ndim", "w_ndim", "x_dtype", "mixed_dtype", "groups_divide", "w_channels", "stride", "padding",
       "padding_str", "dilation", "kernel_too_big", "bias_len", "bool_stride", "grad_shape", "needs",
       "impl", "same_strided", "padding_pair_len"]


@FAST
@given(st.data())
def test_conv2d_random_invalid_raise(data):
    bad = data.draw(st.sampled_from(BAD))
    N, C, K, H = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)), 5
    x = np.zeros((N, C, H, H), np.float32)
    w = np.zeros((K, C, 3, 3), np.float32)
    kw = {}
    b = None
    backward = data.draw(st.booleans())
    gy = np.zeros((N, K, H - 2, H - 2), np.float32)
    if bad == "x_ndim":
        x = np.zeros(data.draw(st.sampled_from([(C, H), (1, 1, C, H, H), (H,)])), np.float32)
    elif bad == "w_ndim":
        w = np.zeros((K, C, 3), np.float32)
    elif bad == "x_dtype":
        x = x.astype(data.draw(st.sampled_from([np.int32, np.uint8, np.bool_, np.complex64, np.float16])))
    elif bad == "mixed_dtype":
        w = w.astype(np.float64)
    elif bad == "groups_divide":
        kw["groups"] = data.draw(st.integers(C + 1, C + 4))
    elif bad == "w_channels":
        w = np.zeros((K, C + data.draw(st.integers(1, 3)), 3, 3), np.float32)
    elif bad == "stride":
        kw["stride"] = data.draw(st.sampled_from([0, -1, (1, 0), (2, -3)]))
    elif bad == "padding":
        kw["padding"] = data.draw(st.sampled_from([-1, (0, -2)]))
    elif bad == "padding_str":
        kw["padding"] = data.draw(st.text(min_size=1, max_size=5).filter(lambda s: s not in ("same", "valid")))
    elif bad == "dilation":
        kw["dilation"] = data.draw(st.sampled_from([0, -2, (1, 0)]))
    elif bad == "kernel_too_big":
        w = np.zeros((K, C, H + 1, 3), np.float32)
    elif bad == "bias_len":
        b = np.zeros(K + data.draw(st.integers(1, 3)), np.float32)
        backward = False
    elif bad == "bool_stride":
        kw["stride"] = True
    elif bad == "grad_shape":
        gy = np.zeros((N, K + 1, H - 2, H - 2), np.float32)
        backward = True
    elif bad == "needs":
        kw["needs"] = data.draw(st.sampled_from([(True,), "yes", None, (1, 0)]))
        backward = True
    elif bad == "impl":
        kw["impl"] = data.draw(st.sampled_from(["fortran", "", "CPU", 3]))
    elif bad == "same_strided":
        kw.update(padding="same", stride=2)
    elif bad == "padding_pair_len":
        kw["padding"] = (1, 1, 1)
    impls = [kw.pop("impl")] if "impl" in kw else IMPLS + ["ref"]
    for impl in impls:
        with pytest.raises((ValueError, TypeError)):
            if backward:
                pf.ops.conv2d_backward(gy, x, w, impl=impl, **kw)
            else:
                kw.pop("needs", None)
                pf.ops.conv2d(x, w, b, impl=impl, **kw)


@FAST
@given(st.data())
def test_conv_transpose2d_random_invalid_raise(data):
    bad = data.draw(st.sampled_from(["w_cin", "opad", "padding_str", "empty_out", "groups", "dtype"]))
    x = np.zeros((2, 4, 3, 3), np.float32)
    w = np.zeros((4, 2, 3, 3), np.float32)
    kw = dict(stride=2, padding=1)
    if bad == "w_cin":
        w = np.zeros((3, 2, 3, 3), np.float32)
    elif bad == "opad":
        kw["output_padding"] = data.draw(st.integers(2, 4))  # must be < max(stride, dilation) = 2
    elif bad == "padding_str":
        kw["padding"] = "same"
    elif bad == "empty_out":
        x = np.zeros((2, 4, 1, 1), np.float32)
        w = np.zeros((4, 2, 1, 1), np.float32)
        kw = dict(stride=1, padding=data.draw(st.integers(1, 3)))
    elif bad == "groups":
        kw["groups"] = 3
    else:
        x = x.astype(np.int64)
    for impl in IMPLS + ["ref"]:
        with pytest.raises((ValueError, TypeError)):
            pf.ops.conv_transpose2d(x, w, None, impl=impl, **kw)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("transpose", [False, True], ids=["conv2d", "conv_transpose2d"])
def test_nan_inf_propagate_where_the_reference_puts_them(impl, transpose):
    g = np.random.default_rng(3)
    x = g.standard_normal((2, 3, 9, 8)).astype(np.float32)
    x[0, 1, 2, 3] = np.nan
    x[1, 0, 6, 6] = np.inf
    x[1, 2, 0, 7] = -np.inf
    w = np.abs(g.standard_normal((3, 4, 3, 3) if transpose else (4, 3, 3, 3))).astype(np.float32) + 0.1
    kw = dict(stride=2, padding=1)
    f, fb = ((pf.ops.conv_transpose2d, pf.ops.conv_transpose2d_backward) if transpose
             else (pf.ops.conv2d, pf.ops.conv2d_backward))
    want = f(x.astype(np.float64), w.astype(np.float64), None, impl="ref", **kw)
    got = f(x, w, None, impl=impl, **kw)
    # not hidden (NaN where the reference has NaN, the same signed Inf) and not spread
    # (every other output finite and close: the panels' zero padding must not meet a NaN)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want))
    assert np.isnan(want).any() and np.isinf(want).any()
    fin = np.isfinite(want)
    assert_close(got[fin], want[fin], np.float32, "finite part", scale=_scale(27))
    gy = np.ones(want.shape, np.float32)
    dxw = fb(gy.astype(np.float64), x.astype(np.float64), w.astype(np.float64), impl="ref", **kw)
    dx = fb(gy, x, w, impl=impl, **kw)
    for a, e in zip(dx, dxw):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(e))
        np.testing.assert_array_equal(np.isinf(a), np.isinf(e))
