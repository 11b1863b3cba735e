"""Accuracy of kernels/common/simd.h's float32 exp / tanh / sigmoid / erf, reached through the
C++ bias_act (the only public op that uses them), on every SIMD path the machine supports
(PIXELFORGE_CPU_ISA in a subprocess), over a dense sweep that includes large |x|; and the
non-finite / saturated behaviour of every activation against libm-style float32 results."""
import json

import numpy as np
import pytest

import pixelforge as pf
from opcheck import built_impls, run_python

ACTS = ["linear", "relu", "lrelu", "tanh", "sigmoid", "silu", "gelu"]
EPS32 = float(np.finfo(np.float32).eps)  # 1.19e-7

needs_cpu = pytest.mark.skipif("cpu" not in built_impls("bias_act"), reason="C++ module not built")


def _isas():
    native = pf.info()["cpu"]["native_isa"]
    order = ["generic", "avx2", "avx512"]
    return order[: order.index(native) + 1] if native in order else ["generic"]


# Errors are measured against float64 NumPy/SciPy of the same float32 inputs. The sweep has
# 400k points on [-20, 20] (every polynomial branch and its switch-over points: tanh 0.625,
# erf 0.875 / 4) and 20k on [-90, 90] (exp's overflow / underflow ends).
_SWEEP = """
    import json
    import numpy as np, pixelforge as pf
    from scipy.special import erf
    x = np.concatenate([np.linspace(-20, 20, 400001), np.linspace(-90, 90, 20001),
                        [0.625, -0.625, 0.875, -0.875, 4.0, -4.0, 1e-30, -1e-30, 1e-5]]).astype(np.float32)
    xd = x.astype(np.float64)
    run = lambda act: pf.ops.bias_act(x.reshape(1, 1, -1), act=act, gain=1.0, impl="cpu").ravel().astype(np.float64)
    out = {"isa": pf.info()["cpu"]["isa"]}
    t = np.tanh(xd)
    out["tanh_abs"] = float(np.abs(run("tanh") - t).max())
    nz = np.abs(t) > 1e-30
    out["tanh_rel"] = float((np.abs(run("tanh") - t)[nz] / np.abs(t[nz])).max())
    s = 1 / (1 + np.exp(-xd))
    got = run("sigmoid")
    out["sigmoid_abs"] = float(np.abs(got - s).max())
    # relative error where e^-x does not overflow float32 (x > -88.7): there sigmoid(x) ~ e^x,
    # so this is exp's relative error down to the smallest normal results
    m = (xd > -87.3)
    out["exp_rel"] = float((np.abs(got - s)[m] / s[m]).max())
    si = xd * s
    m = (xd > -87.3) & (si != 0)
    out["silu_rel"] = float((np.abs(run("silu") - si)[m] / np.abs(si[m])).max())
    # gelu = x/2 (1 + erf(x/sqrt2)): after its own final rounding (one float32 ulp of the result),
    # what is left over is erf's error scaled by |x|/2
    gl = 0.5 * xd * (1 + erf(xd / np.sqrt(2)))
    ulp = np.spacing(np.abs(gl).astype(np.float32)).astype(np.float64)
    m = xd != 0
    out["erf_abs"] = float(((np.abs(run("gelu") - gl) - ulp)[m] / (0.5 * np.abs(xd[m]))).max())
    print(json.dumps(out))
"""


@needs_cpu
@pytest.mark.parametrize("isa", _isas())
def test_vector_math_error_bounds(isa):
    out = json.loads(run_python(_SWEEP, env={"PIXELFORGE_CPU_ISA": isa}).strip().splitlines()[-1])
    assert out["isa"] == isa
    assert out["tanh_abs"] < 2 * EPS32 and out["tanh_rel"] < 3 * EPS32, out   # measured 0.6 / 1.1 eps
    assert out["sigmoid_abs"] < 2 * EPS32, out                                 # measured 0.75 eps
    assert out["exp_rel"] < 3 * EPS32 and out["silu_rel"] < 4 * EPS32, out     # measured 1.5 eps
    assert out["erf_abs"] < 2e-7, out                                          # measured 1.1e-7


@needs_cpu
def test_saturation_and_overflow_like_libm():
    x = np.array([-np.inf, -1e4, -100, -89, -88, -20, 20, 88, 89, 100, 1e4, np.inf], np.float32)
    y = lambda act: pf.ops.bias_act(x.reshape(1, 1, -1), act=act, gain=1.0, impl="cpu").ravel()
    t = y("tanh")
    assert np.array_equal(t, np.sign(x)), t                     # tanh(+-20) = +-1 exactly, and beyond
    s = y("sigmoid")
    assert np.array_equal(s[[0, 1, 2, 3]], [0, 0, 0, 0]) and np.all(s[6:] == 1), s  # e^{89} overflows: 0
    si = y("silu")
    assert si[2] == 0 and np.signbit(si[2]) and si[1] == 0 and np.signbit(si[1]), si  # silu(-100) = -0
    assert np.isnan(si[0])                                       # -inf / inf, as the float64 reference
    assert np.array_equal(si[6:11], x[6:11]), si                 # silu(x) = x for x >= 20 in float32
    g = y("gelu")
    assert np.all(g[1:6] == 0) and np.array_equal(g[6:11], x[6:11]) and g[11] == np.inf, g
    # float32 libm (NumPy's float32 exp) saturates at the same points: exp(89) = inf in float32
    with np.errstate(over="ignore"):
        lib = (1 / (1 + np.exp(-x))).astype(np.float32)
    sat = (lib == 0) | (lib == 1)
    assert np.array_equal(s[sat], lib[sat]) and np.array_equal((s == 0) | (s == 1), sat), (s, lib)
    np.testing.assert_allclose(s, lib, rtol=3 * EPS32, atol=0)


@pytest.mark.parametrize("act", ACTS)
def test_nan_propagates_in_every_activation(act):
    g = np.random.default_rng(11)
    x = g.standard_normal((2, 3, 41)).astype(np.float32)  # rows shorter and longer than a vector
    x[0, 1, [0, 7, 16, 40]] = np.nan
    x[1, 2, 33] = np.nan
    b = g.standard_normal(3).astype(np.float32)
    gy = g.standard_normal(x.shape).astype(np.float32)
    gy[1, 0, 5] = np.nan
    for impl in built_impls("bias_act"):
        y = pf.ops.bias_act(x, b, act=act, impl=impl)
        assert np.array_equal(np.isnan(y), np.isnan(x)), (impl, act)
        yc = pf.ops.bias_act(x, b, act=act, clamp=0.5, impl=impl)  # the clamp keeps NaN too
        assert np.array_equal(np.isnan(yc), np.isnan(x)), (impl, act)
        dx, db = pf.ops.bias_act_backward(gy, x, b, act=act, impl=impl)
        rdx, rdb = pf.ops.bias_act_backward(gy.astype(np.float64), x.astype(np.float64), b.astype(np.float64),
                                            act=act, impl="ref")
        assert np.isnan(dx[1, 0, 5]), (impl, act)                   # a NaN gradient always flows back
        assert np.array_equal(np.isnan(dx), np.isnan(rdx)), (impl, act)  # a NaN input: as the reference
        assert np.array_equal(np.isnan(db), np.isnan(rdb)), (impl, act)


@needs_cpu
@pytest.mark.parametrize("act", ["silu", "gelu", "tanh"])
def test_nonfinite_inputs_match_reference(act):
    x = np.array([-np.inf, -1e30, -100, -20, 0, 20, 100, 1e30, np.inf, np.nan], np.float32).reshape(1, 1, -1)
    gy = np.ones_like(x)
    y = pf.ops.bias_act(x, act=act, impl="cpu")
    with np.errstate(all="ignore"):
        r = pf.ops.bias_act(x.astype(np.float64), act=act, impl="ref")
        dx, _ = pf.ops.bias_act_backward(gy, x, act=act, impl="cpu")
        rdx, _ = pf.ops.bias_act_backward(gy.astype(np.float64), x.astype(np.float64), act=act, impl="ref")
    np.testing.assert_allclose(y, r.astype(np.float32), rtol=1e-6, atol=1e-30)
    np.testing.assert_allclose(dx, rdx.astype(np.float32), rtol=1e-6, atol=1e-30)
