"""Reference reparameterized Gaussian sampling and KL to N(0, I), NumPy or CuPy, float64 math.

mu, logvar: (N, ...). eps is the pf.random stream (ops/_ref/random.py) for (seed, offset).
z = mu + exp(logvar / 2) eps;  dz/dmu = 1, dz/dlogvar = eps exp(logvar / 2) / 2
kl[n] = -1/2 sum_{non-batch dims} (1 + logvar - mu^2 - exp(logvar))   (N,)
dkl/dmu = mu, dkl/dlogvar = (exp(logvar) - 1) / 2
"""
import numpy as np

from ..._validate import xp_of
from . import random as _random


def reparameterize(mu, logvar, seed, offset):
    xp = xp_of(mu)
    eps = xp.asarray(_random.draw(mu.shape, seed, offset, mu.dtype, "randn"))
    z = mu.astype(np.float64) + xp.exp(0.5 * logvar.astype(np.float64)) * eps.astype(np.float64)
    return z.astype(mu.dtype), eps


def reparameterize_backward(grad_z, eps, logvar):
    g = grad_z.astype(np.float64)
    glv = 0.5 * g * eps.astype(np.float64) * xp_of(logvar).exp(0.5 * logvar.astype(np.float64))
    return grad_z.copy(), glv.astype(grad_z.dtype)


def gaussian_kl(mu, logvar):
    xp = xp_of(mu)
    mu64, lv64 = mu.astype(np.float64), logvar.astype(np.float64)
    term = 1.0 + lv64 - mu64 * mu64 - xp.exp(lv64)
    k = int(np.prod(mu.shape[1:]))
    return (-0.5 * term.reshape(mu.shape[0], k).sum(axis=1)).astype(mu.dtype)


def gaussian_kl_backward(grad_kl, mu, logvar):
    xp = xp_of(mu)
    g = grad_kl.astype(np.float64).reshape((-1,) + (1,) * (mu.ndim - 1))
    gmu = g * mu.astype(np.float64)
    glv = 0.5 * g * (xp.exp(logvar.astype(np.float64)) - 1.0)
    return gmu.astype(mu.dtype), glv.astype(mu.dtype)
