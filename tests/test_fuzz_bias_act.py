"""Hypothesis fuzzing of bias_act: random valid shapes/parameters match the reference for
every built impl; random invalid ones raise ValueError/TypeError, never crash; NaN and Inf
propagate; negative-stride views work."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pixelforge as pf
from opcheck import assert_close, fast_impls

ACTS = ["linear", "relu", "lrelu", "tanh", "sigmoid", "silu", "gelu"]
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def bias_act_case(draw):
    ndim = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(0, 6), min_size=ndim, max_size=ndim)))
    dim = draw(st.integers(-ndim, ndim - 1))
    use_bias = draw(st.booleans())
    act = draw(st.sampled_from(ACTS))
    clamp = draw(st.one_of(st.none(), st.floats(0, 4)))
    gain = draw(st.one_of(st.none(), st.floats(-3, 3)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    seed = draw(st.integers(0, 2 ** 31))
    return shape, dim, use_bias, act, clamp, gain, dtype, seed


@FAST
@given(bias_act_case())
def test_random_valid_inputs_match_reference(case):
    shape, dim, use_bias, act, clamp, gain, dtype, seed = case
    g = np.random.default_rng(seed)
    x = (g.standard_normal(shape) * 3).astype(dtype)
    b = g.standard_normal(shape[dim]).astype(dtype) if use_bias else None
    gy = g.standard_normal(shape).astype(dtype)
    kw = dict(dim=dim, act=act, clamp=clamp, gain=gain)
    ref = pf.ops.bias_act(x.astype(np.float64), None if b is None else b.astype(np.float64), impl="ref", **kw)
    rdx, rdb = pf.ops.bias_act_backward(gy.astype(np.float64), x.astype(np.float64),
                                        None if b is None else b.astype(np.float64), impl="ref", **kw)
    for impl in fast_impls("bias_act"):
        assert_close(pf.ops.bias_act(x, b, impl=impl, **kw), ref, dtype, impl)
        dx, db = pf.ops.bias_act_backward(gy, x, b, impl=impl, **kw)
        assert_close(dx, rdx, dtype, impl)
        if b is not None:
            n = max(1, x.size // max(1, shape[dim]))
            assert_close(db, rdb, dtype, impl, scale=np.sqrt(n) * 4)  # sums of n terms


@FAST
@given(st.data())
def test_random_invalid_inputs_raise(data):
    x = np.zeros(tuple(data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))), np.float32)
    bad = data.draw(st.sampled_from(["dim", "bias_len", "bias_dtype", "act", "clamp", "x_dtype", "alpha"]))
    kw = {}
    if bad == "dim":
        kw["dim"] = data.draw(st.one_of(st.integers(x.ndim, 9), st.integers(-9, -x.ndim - 1)))
    elif bad == "bias_len":
        kw["bias"] = np.zeros(x.shape[1 % x.ndim] + data.draw(st.integers(1, 3)), np.float32)
        kw["dim"] = 1 % x.ndim
    elif bad == "bias_dtype":
        kw["bias"] = np.zeros(x.shape[1 % x.ndim], np.int64)
        kw["dim"] = 1 % x.ndim
    elif bad == "act":
        kw["act"] = data.draw(st.text(min_size=1, max_size=5).filter(lambda s: s not in ACTS))
    elif bad == "clamp":
        kw["clamp"] = data.draw(st.floats(max_value=-1e-3, allow_nan=False) | st.just(float("nan")))
    elif bad == "alpha":
        kw["alpha"] = data.draw(st.sampled_from(["x", [1.0], float("inf")]))
    else:
        x = x.astype(data.draw(st.sampled_from([np.int32, np.uint8, np.bool_, np.complex64])))
    for impl in fast_impls("bias_act"):
        with pytest.raises((ValueError, TypeError)):
            pf.ops.bias_act(x, impl=impl, **kw)


@pytest.mark.parametrize("impl", fast_impls("bias_act"))
def test_negative_stride_views_and_nonfinite(impl):
    g = np.random.default_rng(0)
    x = g.standard_normal((4, 5, 6)).astype(np.float32)
    b = g.standard_normal(5).astype(np.float32)
    v = x[::-1, :, ::-2]
    assert_close(pf.ops.bias_act(v, b[::-1], act="gelu", impl=impl),
                 pf.ops.bias_act(np.ascontiguousarray(v), np.ascontiguousarray(b[::-1]), act="gelu", impl="ref"),
                 np.float32)
    x[0, 0, :3] = [np.nan, np.inf, -np.inf]
    y = pf.ops.bias_act(x, act="linear", impl=impl)
    assert np.isnan(y[0, 0, 0]) and np.isposinf(y[0, 0, 1]) and np.isneginf(y[0, 0, 2])
    y = pf.ops.bias_act(x, act="tanh", impl=impl)
    assert np.isnan(y[0, 0, 0]) and y[0, 0, 1] == 1 and y[0, 0, 2] == -1
