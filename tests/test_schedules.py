"""pf.schedules.NoiseSchedule against closed forms and diffusers' schedulers."""
import math

import numpy as np
import pytest

import pixelforge as pf

NS = pf.schedules.NoiseSchedule


def test_linear_closed_form():
    s = NS(1000, "linear", 1e-4, 0.02)
    i = np.arange(1000)
    np.testing.assert_allclose(s.betas, 1e-4 + (0.02 - 1e-4) * i / 999, rtol=1e-13)
    np.testing.assert_allclose(s.alphas, 1 - s.betas, rtol=0)
    np.testing.assert_allclose(s.alphas_cumprod, np.exp(np.cumsum(np.log1p(-s.betas))), rtol=1e-11)
    assert s.betas.dtype == s.alphas_cumprod.dtype == np.float64 and len(s) == 1000


def test_scaled_linear_and_sigmoid_closed_form():
    s = NS(10, "scaled_linear", 0.00085, 0.012)
    np.testing.assert_allclose(np.sqrt(s.betas), np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 10), rtol=1e-13)
    s = NS(7, "sigmoid", 1e-4, 0.02)
    x = np.linspace(-6, 6, 7)
    np.testing.assert_allclose(s.betas, 1e-4 + (0.02 - 1e-4) / (1 + np.exp(-x)), rtol=1e-13)
    assert np.all(np.diff(s.betas) > 0)


def test_cosine_closed_form():
    T = 1000
    s = NS(T, "squaredcos_cap_v2")

    def abar(t):
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
    # uncapped steps telescope: alphas_cumprod[i] = abar((i+1)/T) / abar(0)
    want = np.array([abar((i + 1) / T) / abar(0) for i in range(T)])
    capped = s.betas >= 0.999
    assert capped.sum() == 1 and capped[-1]          # only the very last beta hits the cap
    np.testing.assert_allclose(s.alphas_cumprod[:-1], want[:-1], rtol=1e-10)


@pytest.mark.parametrize("schedule, kw", [("linear", {}), ("scaled_linear", dict(beta_start=0.00085, beta_end=0.012)),
                                          ("squaredcos_cap_v2", {}), ("sigmoid", {})])
@pytest.mark.parametrize("T", [1000, 37])
def test_matches_diffusers(schedule, kw, T):
    pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    d = diffusers.DDPMScheduler(num_train_timesteps=T, beta_schedule=schedule, **kw)
    s = NS(T, schedule, **kw)
    # diffusers builds float32 tensors (its cumprod runs in float32): agreement to float32 rounding,
    # growing ~1e-7 per factor of the product
    np.testing.assert_allclose(s.betas, d.betas.numpy(), rtol=2e-6, atol=1e-9)
    np.testing.assert_allclose(s.alphas_cumprod, d.alphas_cumprod.numpy(), rtol=5e-5, atol=1e-9)


@pytest.mark.parametrize("kw, exc, word", [
    (dict(num_train_timesteps=0), ValueError, "num_train_timesteps"),
    (dict(num_train_timesteps=10.0), TypeError, "num_train_timesteps"),
    (dict(beta_schedule="cosine"), ValueError, "beta_schedule"),
    (dict(beta_schedule=3), TypeError, "beta_schedule"),
    (dict(beta_start=0.0), ValueError, "beta_start"),
    (dict(beta_end=2.0), ValueError, "beta_end"),
    (dict(beta_end="x"), TypeError, "beta_end"),
])
def test_errors(kw, exc, word):
    with pytest.raises(exc, match=word):
        NS(**kw)
