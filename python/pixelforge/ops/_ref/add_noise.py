"""Reference forward diffusion (q_sample) and velocity target, NumPy or CuPy, in float64.

x0, noise: (N, ...); timesteps: (N,) ints; alphas_cumprod: (T,).
add_noise    = sqrt(a[t]) x0 + sqrt(1 - a[t]) noise
get_velocity = sqrt(a[t]) noise - sqrt(1 - a[t]) x0
"""
import numpy as np

from ..._validate import xp_of


def _coefs(x0, timesteps, alphas_cumprod):
    xp = xp_of(x0)
    a = xp.asarray(np.asarray(alphas_cumprod, np.float64)[np.asarray(timesteps)])
    shape = (-1,) + (1,) * (x0.ndim - 1)
    return xp.sqrt(a).reshape(shape), xp.sqrt(1.0 - a).reshape(shape)


def add_noise(x0, noise, timesteps, alphas_cumprod):
    ca, cb = _coefs(x0, timesteps, alphas_cumprod)
    return (ca * x0.astype(np.float64) + cb * noise.astype(np.float64)).astype(x0.dtype)


def get_velocity(x0, noise, timesteps, alphas_cumprod):
    ca, cb = _coefs(x0, timesteps, alphas_cumprod)
    return (ca * noise.astype(np.float64) - cb * x0.astype(np.float64)).astype(x0.dtype)
