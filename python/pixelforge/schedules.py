"""Noise schedules for diffusion: the betas, alphas and alphas_cumprod of diffusers'
schedulers for the same configuration, in float64.

beta_schedule:
- "linear":            linspace(beta_start, beta_end, T)
- "scaled_linear":     linspace(sqrt(beta_start), sqrt(beta_end), T) ** 2   (latent diffusion)
- "squaredcos_cap_v2": beta_i = min(1 - abar((i+1)/T) / abar(i/T), 0.999),
                       abar(t) = cos((t + 0.008) / 1.008 * pi / 2) ** 2   (Nichol & Dhariwal)
- "sigmoid":           sigmoid(linspace(-6, 6, T)) * (beta_end - beta_start) + beta_start  (GeoDiff)
diffusers builds these in float32; ours are the float64 values of the same formulas, so they agree
to float32 rounding.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from ._validate import integer

__all__ = ["NoiseSchedule", "BETA_SCHEDULES", "make_betas", "round_coef"]

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid")


def _cosine_alpha_bar(t):
    return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2


def make_betas(num_train_timesteps, beta_schedule, beta_start, beta_end):
    """float64 (T,) betas of one of :data:`BETA_SCHEDULES`."""
    T = num_train_timesteps
    if beta_schedule == "linear":
        return np.linspace(beta_start, beta_end, T, dtype=np.float64)
    if beta_schedule == "scaled_linear":
        return np.linspace(beta_start ** 0.5, beta_end ** 0.5, T, dtype=np.float64) ** 2
    if beta_schedule == "squaredcos_cap_v2":
        return np.array([min(1 - _cosine_alpha_bar((i + 1) / T) / _cosine_alpha_bar(i / T), 0.999)
                         for i in range(T)], np.float64)
    if beta_schedule == "sigmoid":
        x = np.linspace(-6.0, 6.0, T, dtype=np.float64)
        return 1.0 / (1.0 + np.exp(-x)) * (beta_end - beta_start) + beta_start
    raise ValueError(f"beta_schedule: unknown schedule {beta_schedule!r}; expected one of {BETA_SCHEDULES}")


class NoiseSchedule:
    """A discrete diffusion noise schedule.

    num_train_timesteps T >= 1; beta_schedule one of :data:`BETA_SCHEDULES`; beta_start, beta_end:
    used by "linear", "scaled_linear" and "sigmoid" (0 < beta <= 1); trained_betas: explicit
    (T,) betas instead (diffusers' ``trained_betas``; T is then their length).
    Attributes (float64 numpy arrays of shape (T,)): ``betas``, ``alphas = 1 - betas``,
    ``alphas_cumprod`` (the running product of alphas).
    """

    def __init__(self, num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02,
                 trained_betas=None):
        num_train_timesteps = integer(num_train_timesteps, "num_train_timesteps", min_value=1)
        if trained_betas is not None:  # diffusers: explicit betas replace the schedule
            tb = np.asarray(trained_betas, np.float64)
            if tb.ndim != 1 or tb.size < 1 or not np.all((tb > 0) & (tb <= 1)):
                raise ValueError(f"trained_betas: expected a 1-D list of betas in (0, 1], got shape {tb.shape}")
            num_train_timesteps = tb.size
        if not isinstance(beta_schedule, str):
            raise TypeError(f"beta_schedule: expected a string, got {type(beta_schedule).__name__}")
        if beta_schedule not in BETA_SCHEDULES:
            raise ValueError(f"beta_schedule: unknown schedule {beta_schedule!r}; expected one of {BETA_SCHEDULES}")
        for name, v in (("beta_start", beta_start), ("beta_end", beta_end)):
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise TypeError(f"{name}: expected a real number, got {type(v).__name__}")
            if not 0 < v <= 1:
                raise ValueError(f"{name}: must lie in (0, 1], got {v}")
        self.num_train_timesteps = int(num_train_timesteps)
        self.beta_schedule = beta_schedule
        self.beta_start, self.beta_end = float(beta_start), float(beta_end)
        self.trained_betas = None if trained_betas is None else tb
        self.betas = (tb.copy() if trained_betas is not None else
                      make_betas(self.num_train_timesteps, beta_schedule, self.beta_start, self.beta_end))
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = np.cumprod(self.alphas)

    def __len__(self):
        return self.num_train_timesteps

    def __repr__(self):
        return (f"NoiseSchedule(num_train_timesteps={self.num_train_timesteps}, "
                f"beta_schedule={self.beta_schedule!r}, beta_start={self.beta_start}, beta_end={self.beta_end})")


def round_coef(c, dtype):
    """Kernel coefficients (float or float64 array) rounded to 29 significant bits for float32
    data: 29 + 24 bits make every coefficient * float32 product exact in float64, so the fused
    kernels round alike with or without FMA contraction (CPU and GPU give the same bits). The
    relative change is <= 2^-30, far below float32 rounding. Other dtypes pass unchanged."""
    if np.dtype(dtype) != np.float32:
        return c
    m, e = np.frexp(np.asarray(c, np.float64))
    out = np.ldexp(np.round(m * 2.0 ** 29), e - 29)
    return float(out) if np.ndim(out) == 0 else out
