"""Reparameterized Gaussian sampling (VAE) and its KL to the standard normal.

Implementations: ``numba`` (njit parallel on the CPU, numba.cuda on the GPU; ops/_numba/sampling.py)
and ``ref`` (ops/_ref/reparameterize.py). ``reparameterize`` draws eps from the pf.random stream
inside the same pass that writes z (no separate noise tensor round trip). ``gaussian_kl`` sums in a
fixed order (fixed 4096-element chunks, then chunks in order), so its bits do not depend on the
thread count or launch configuration.
"""
from __future__ import annotations

import numpy as np

from .. import _backend
from .._dispatch import NotBuilt, register, resolve, set_order
from .._validate import float_array, same_device, same_dtype, same_shape
from ..random import check_stream_args
from ._ref import random as _rnd
from ._ref import reparameterize as _ref

_OPS = ("reparameterize", "reparameterize_backward", "gaussian_kl", "gaussian_kl_backward")
for _op in _OPS:
    set_order(_op, "cpu", ("numba", "ref"))
    set_order(_op, "cuda", ("numba", "ref"))


def _pair(mu, logvar, mu_name="mu"):
    mu = float_array(mu, mu_name, min_ndim=1)
    logvar = float_array(logvar, "logvar")
    same_shape(logvar, "logvar", mu, mu_name)
    device = same_device(**{mu_name: mu, "logvar": logvar})
    same_dtype(**{mu_name: mu, "logvar": logvar})
    if device == "cuda" and mu.dtype != np.float32:
        raise TypeError(f"{mu_name}: dtype {mu.dtype.name} not supported on cuda here; expected float32")
    return mu, logvar, device


def reparameterize(mu, logvar, *, seed, offset=0, impl="auto"):
    """``(z, eps)`` with ``eps = pf.random.randn(mu.shape, seed=seed, offset=offset)`` and
    ``z = mu + exp(0.5 * logvar) * eps``. mu, logvar: (N, ...) same shape/dtype; z, eps like mu."""
    mu, logvar, device = _pair(mu, logvar)
    _, _, seed, offset = check_stream_args(mu.shape, seed, offset)
    _, fn = resolve("reparameterize", device, impl)
    return fn(mu, logvar, seed, offset)


def reparameterize_backward(grad_z, eps, logvar, *, impl="auto"):
    """``(grad_mu, grad_logvar)`` = ``(grad_z, grad_z * eps * exp(0.5 * logvar) / 2)``; all (N, ...)."""
    grad_z, logvar, device = _pair(grad_z, logvar, "grad_z")
    eps = float_array(eps, "eps")
    same_shape(eps, "eps", grad_z, "grad_z")
    same_device(grad_z=grad_z, eps=eps)
    same_dtype(grad_z=grad_z, eps=eps)
    _, fn = resolve("reparameterize_backward", device, impl)
    return fn(grad_z, eps, logvar)


def gaussian_kl(mu, logvar, *, impl="auto"):
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over all but dim 0: mu, logvar (N, ...) -> (N,)."""
    mu, logvar, device = _pair(mu, logvar)
    _, fn = resolve("gaussian_kl", device, impl)
    return fn(mu, logvar)


def gaussian_kl_backward(grad_kl, mu, logvar, *, impl="auto"):
    """``(grad_mu, grad_logvar)`` = ``(g[n] * mu, g[n] * (exp(logvar) - 1) / 2)``; grad_kl (N,)."""
    mu, logvar, device = _pair(mu, logvar)
    grad_kl = float_array(grad_kl, "grad_kl", ndim=1)
    if grad_kl.shape[0] != mu.shape[0]:
        raise ValueError(f"grad_kl: expected shape ({mu.shape[0]},), got {tuple(grad_kl.shape)}")
    same_device(grad_kl=grad_kl, mu=mu)
    _, fn = resolve("gaussian_kl_backward", device, impl)
    return fn(grad_kl, mu, logvar)


# ----------------------------------------------------------------------------- impls
for _op in _OPS:
    register(_op, "cpu", "ref")(lambda _f=getattr(_ref, _op): _f)
    register(_op, "cuda", "ref")(lambda _f=getattr(_ref, _op): _f)


def _nb():
    if _backend.numba_version() is None:
        raise NotBuilt("numba is not installed")
    from ._numba import sampling  # noqa: PLC0415
    return sampling


def _gpu_nb():
    if not _backend.numba_cuda_available():
        raise NotBuilt("numba.cuda has no GPU")
    return _nb()


@register("reparameterize", "cpu", "numba")
def _reparam_cpu():
    nb = _nb()
    return lambda mu, lv, seed, offset: nb.reparam_cpu(mu, lv, offset, *_rnd.seed_key(seed))


@register("reparameterize", "cuda", "numba")
def _reparam_gpu():
    nb = _gpu_nb()
    return lambda mu, lv, seed, offset: nb.reparam_gpu(mu, lv, offset, *_rnd.seed_key(seed))


@register("reparameterize_backward", "cpu", "numba")
def _reparam_bwd_cpu():
    return _nb().reparam_bwd_cpu


@register("reparameterize_backward", "cuda", "numba")
def _reparam_bwd_gpu():
    return _gpu_nb().reparam_bwd_gpu


@register("gaussian_kl", "cpu", "numba")
def _kl_cpu():
    return _nb().kl_cpu


@register("gaussian_kl", "cuda", "numba")
def _kl_gpu():
    return _gpu_nb().kl_gpu


@register("gaussian_kl_backward", "cpu", "numba")
def _kl_bwd_cpu():
    return _nb().kl_bwd_cpu


@register("gaussian_kl_backward", "cuda", "numba")
def _kl_bwd_gpu():
    return _gpu_nb().kl_bwd_gpu
