"""Hypothesis fuzzing of matmul/linear and the fused sampling ops (add_noise, get_velocity,
reparameterize, gaussian_kl): random valid inputs match the reference for every built impl,
random invalid ones raise ValueError/TypeError, NaN propagates."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pixelforge as pf
from opcheck import fast_impls

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
dims = st.integers(0, 37)


@FAST
@given(dims, dims, dims, st.booleans(), st.booleans(), st.sampled_from([np.float32, np.float64]), st.integers(0, 99))
def test_matmul_random_shapes(m, n, k, ta, tb, dtype, seed):
    g = np.random.default_rng(seed)
    a = g.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = g.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    ref = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
    tol = 1e-5 * np.sqrt(max(k, 1)) if dtype == np.float32 else 1e-12 * max(k, 1)
    for impl in fast_impls("matmul"):
        out = pf.ops.matmul(a, b, trans_a=ta, trans_b=tb, impl=impl)
        assert out.shape == (m, n) and out.dtype == dtype
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=tol, err_msg=impl)


@FAST
@given(st.lists(st.integers(0, 5), min_size=0, max_size=2), dims, st.integers(1, 20), st.booleans(), st.integers(0, 99))
def test_linear_and_backward_random(lead, n_in, n_out, bias, seed):
    g = np.random.default_rng(seed)
    x = g.standard_normal((*lead, n_in)).astype(np.float32)
    w = g.standard_normal((n_out, n_in)).astype(np.float32)
    b = g.standard_normal(n_out).astype(np.float32) if bias else None
    gy = g.standard_normal((*lead, n_out)).astype(np.float32)
    ref = x.astype(np.float64) @ w.T.astype(np.float64) + (0 if b is None else b)
    tol = 1e-5 * np.sqrt(max(n_in, 1))
    for impl in fast_impls("linear"):
        np.testing.assert_allclose(pf.ops.linear(x, w, b, impl=impl), ref, rtol=1e-4, atol=tol)
        dx, dw, db = pf.ops.linear_backward(gy, x, w, impl=impl)
        g2 = gy.reshape(-1, n_out).astype(np.float64)
        x2 = x.reshape(len(g2), n_in).astype(np.float64)
        np.testing.assert_allclose(dx, gy.astype(np.float64) @ w.astype(np.float64), rtol=1e-4, atol=5 * tol)
        np.testing.assert_allclose(dw, g2.T @ x2, rtol=1e-4, atol=1e-5 * np.sqrt(max(len(g2), 1)) * 5)
        np.testing.assert_allclose(db, g2.sum(0), rtol=1e-4, atol=1e-5 * np.sqrt(max(len(g2), 1)) * 5)


@FAST
@given(st.data())
def test_matmul_invalid_inputs_raise(data):
    bad = data.draw(st.sampled_from(["inner", "ndim", "int", "mixed", "bias"]))
    a, b = np.zeros((3, 4), np.float32), np.zeros((4, 5), np.float32)
    with pytest.raises((ValueError, TypeError)):
        if bad == "inner":
            pf.ops.matmul(a, np.zeros((data.draw(st.integers(5, 9)), 5), np.float32))
        elif bad == "ndim":
            pf.ops.matmul(np.zeros(data.draw(st.sampled_from([(3,), (1, 1, 3, 4)])), np.float32), b)
        elif bad == "int":
            pf.ops.matmul(a.astype(np.int32), b)
        elif bad == "mixed":
            pf.ops.matmul(a, b.astype(np.float64))
        else:
            pf.ops.linear(np.zeros((2, 4), np.float32), np.zeros((5, 4), np.float32),
                          np.zeros(data.draw(st.integers(6, 9)), np.float32))


@FAST
@given(st.lists(st.integers(1, 6), min_size=1, max_size=4), st.integers(0, 2 ** 40), st.integers(0, 999))
def test_sampling_ops_random_shapes(shape, seed, tseed):
    g = np.random.default_rng(tseed)
    x0 = g.standard_normal(shape).astype(np.float32)
    noise = g.standard_normal(shape).astype(np.float32)
    t = g.integers(0, 1000, shape[0])
    acp = pf.schedules.NoiseSchedule().alphas_cumprod
    for name in ("add_noise", "get_velocity"):
        ref = getattr(pf.ops, name)(x0.astype(np.float64), noise.astype(np.float64), t, acp, impl="ref")
        for impl in fast_impls(name):
            np.testing.assert_allclose(getattr(pf.ops, name)(x0, noise, t, acp, impl=impl), ref, rtol=1e-5,
                                       atol=1e-6, err_msg=f"{name}/{impl}")
    mu, lv = x0, noise * 0.5
    z, eps = pf.ops.reparameterize(mu, lv, seed=seed, impl="ref")
    for impl in fast_impls("reparameterize"):
        z2, eps2 = pf.ops.reparameterize(mu, lv, seed=seed, impl=impl)
        np.testing.assert_array_equal(eps2, eps)  # the same Philox stream on every impl
        np.testing.assert_allclose(z2, z, rtol=1e-5, atol=1e-6)
    kl_ref = pf.ops.gaussian_kl(mu.astype(np.float64), lv.astype(np.float64), impl="ref")
    for impl in fast_impls("gaussian_kl"):
        np.testing.assert_allclose(pf.ops.gaussian_kl(mu, lv, impl=impl), kl_ref, rtol=1e-5,
                                   atol=1e-5 * np.sqrt(mu[0].size))


@FAST
@given(st.data())
def test_sampling_invalid_inputs_raise(data):
    x = np.zeros((3, 4), np.float32)
    acp = pf.schedules.NoiseSchedule().alphas_cumprod
    bad = data.draw(st.sampled_from(["t_range", "t_len", "shape", "seed", "dtype"]))
    with pytest.raises((ValueError, TypeError)):
        if bad == "t_range":
            pf.ops.add_noise(x, x, np.array([0, 1, data.draw(st.integers(1000, 5000))]), acp)
        elif bad == "t_len":
            pf.ops.add_noise(x, x, np.zeros(data.draw(st.sampled_from([1, 2, 4, 5])), np.int64), acp)
        elif bad == "shape":
            pf.ops.reparameterize(x, np.zeros((3, 5), np.float32), seed=1)
        elif bad == "seed":
            pf.ops.reparameterize(x, x, seed=data.draw(st.integers(max_value=-1)))
        else:
            pf.ops.gaussian_kl(x.astype(np.int32), x)


def test_sampling_nan_propagates():
    x = np.ones((2, 3), np.float32)
    x[0, 1] = np.nan
    acp = pf.schedules.NoiseSchedule().alphas_cumprod
    for impl in fast_impls("add_noise"):
        assert np.isnan(pf.ops.add_noise(x, np.ones_like(x), np.array([5, 7]), acp, impl=impl)[0, 1])
    for impl in fast_impls("gaussian_kl"):
        kl = pf.ops.gaussian_kl(x, np.zeros_like(x), impl=impl)
        assert np.isnan(kl[0]) and np.isfinite(kl[1])
