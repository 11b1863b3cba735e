"""Fused forward diffusion: ``add_noise`` (q_sample) and ``get_velocity`` (v-prediction target),
one pass each with per-sample timesteps.

Implementations: ``numba`` (njit parallel on the CPU, numba.cuda on the GPU; ops/_numba/sampling.py,
kernel ``lin2``) and ``ref`` (ops/_ref/add_noise.py). ``cpu``/``cuda`` (C++) do not exist for these.
The per-sample coefficients sqrt(a[t]), sqrt(1 - a[t]) are computed on the host in float64; for
float32 inputs they are rounded to 29 significant bits so every product is exact in float64 and
the CPU and GPU give the same bits (relative change <= 2^-30, far below float32 rounding).
"""
from __future__ import annotations


import numpy as np

from .. import _backend
from .._dispatch import NotBuilt, register, resolve, set_order
from .._validate import as_array, device_of, float_array, same_device, same_dtype, same_shape
from ..schedules import round_coef
from ._ref import add_noise as _ref

for _op in ("add_noise", "get_velocity"):
    set_order(_op, "cpu", ("numba", "ref"))
    set_order(_op, "cuda", ("numba", "ref"))


def host_vector(a, name):
    """A NumPy copy of a (possibly CuPy) 1-D array argument."""
    a = as_array(a, name)
    return a.get() if device_of(a) == "cuda" else a


def alphas_cumprod_arg(alphas_cumprod):
    ac = host_vector(alphas_cumprod, "alphas_cumprod")
    if ac.dtype.kind != "f":
        raise TypeError(f"alphas_cumprod: expected a float array, got dtype {ac.dtype.name}")
    if ac.ndim != 1 or ac.size == 0:
        raise ValueError(f"alphas_cumprod: expected a non-empty 1-D array, got shape {tuple(ac.shape)}")
    ac = ac.astype(np.float64)
    if not np.all((ac > 0) & (ac <= 1)):
        raise ValueError("alphas_cumprod: values must lie in (0, 1]")
    return ac


def timesteps_arg(timesteps, n, num_train):
    """(N,) int64 host timesteps in [0, num_train); an int is broadcast to all N samples."""
    if isinstance(timesteps, (int, np.integer)) and not isinstance(timesteps, bool):
        ts = np.full(n, int(timesteps), np.int64)
    else:
        ts = host_vector(timesteps, "timesteps")
        if ts.dtype.kind not in "iu":
            raise TypeError(f"timesteps: expected integers, got dtype {ts.dtype.name}")
        if ts.ndim == 0:
            ts = np.full(n, int(ts), np.int64)
        elif ts.shape != (n,):
            raise ValueError(f"timesteps: expected shape ({n},) (one per sample), got {tuple(ts.shape)}")
        ts = ts.astype(np.int64)
    if ts.size and (ts.min() < 0 or ts.max() >= num_train):
        raise ValueError(f"timesteps: values must lie in [0, {num_train}), got range [{ts.min()}, {ts.max()}]")
    return ts


def _prepare(x0, noise, timesteps, alphas_cumprod):
    x0 = float_array(x0, "x0", min_ndim=1)
    noise = float_array(noise, "noise")
    same_shape(noise, "noise", x0, "x0")
    device = same_device(x0=x0, noise=noise)
    same_dtype(x0=x0, noise=noise)
    if device == "cuda" and x0.dtype != np.float32:
        raise TypeError(f"x0: dtype {x0.dtype.name} not supported on cuda for add_noise; expected float32")
    ac = alphas_cumprod_arg(alphas_cumprod)
    ts = timesteps_arg(timesteps, x0.shape[0], ac.size)
    return x0, noise, ts, ac, device


def add_noise(x0, noise, timesteps, alphas_cumprod, *, impl="auto"):
    """q_sample: ``sqrt(a[t]) * x0 + sqrt(1 - a[t]) * noise`` with a = alphas_cumprod.

    x0, noise: (N, ...) same shape and dtype; timesteps: (N,) ints (or one int for all);
    alphas_cumprod: (T,). Returns an array like x0.
    """
    x0, noise, ts, ac, device = _prepare(x0, noise, timesteps, alphas_cumprod)
    _, fn = resolve("add_noise", device, impl)
    return fn(x0, noise, ts, ac)


def get_velocity(x0, noise, timesteps, alphas_cumprod, *, impl="auto"):
    """v-prediction target: ``sqrt(a[t]) * noise - sqrt(1 - a[t]) * x0``; shapes as add_noise."""
    x0, noise, ts, ac, device = _prepare(x0, noise, timesteps, alphas_cumprod)
    _, fn = resolve("get_velocity", device, impl)
    return fn(x0, noise, ts, ac)


# ----------------------------------------------------------------------------- impls
for _op in ("add_noise", "get_velocity"):
    register(_op, "cpu", "ref")(lambda _f=getattr(_ref, _op): _f)
    register(_op, "cuda", "ref")(lambda _f=getattr(_ref, _op): _f)


def _numba_sampling():
    if _backend.numba_version() is None:
        raise NotBuilt("numba is not installed")
    from ._numba import sampling  # noqa: PLC0415
    return sampling


def _lin2_args(op, x0, noise, ts, ac):
    ca = round_coef(np.sqrt(ac[ts]), x0.dtype)
    cb = round_coef(np.sqrt(1.0 - ac[ts]), x0.dtype)
    if op == "add_noise":
        return x0, noise, ca, cb
    return noise, x0, ca, -cb


def _make_numba(op):
    @register(op, "cpu", "numba")
    def _cpu():
        nb = _numba_sampling()
        return lambda x0, noise, ts, ac: nb.lin2_cpu(*_lin2_args(op, x0, noise, ts, ac))

    @register(op, "cuda", "numba")
    def _gpu():
        if not _backend.numba_cuda_available():
            raise NotBuilt("numba.cuda has no GPU")
        nb = _numba_sampling()
        return lambda x0, noise, ts, ac: nb.lin2_gpu(*_lin2_args(op, x0, noise, ts, ac))


_make_numba("add_noise")
_make_numba("get_velocity")
