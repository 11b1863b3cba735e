"""Lazy detection of the optional pieces: the C++ modules, Numba, numba.cuda, CuPy.

Nothing here imports a heavy package at ``import pixelforge`` time; each probe runs on
first use and is cached. A probe never raises: a missing piece reads as "not there".
"""
from __future__ import annotations

import functools
import importlib
import os

import numpy as np

__all__ = ["cpu_module", "cuda_module", "cuda_device_count", "cupy", "numba_version",
           "numba_cuda_available", "is_cupy_array", "xp_of", "to_host"]


@functools.lru_cache(maxsize=None)
def cpu_module():
    """The compiled ``pixelforge._cpu`` module, or None when it was not built."""
    try:
        return importlib.import_module("pixelforge._cpu")
    except ImportError:
        return None


@functools.lru_cache(maxsize=None)
def cuda_module():
    """The compiled ``pixelforge._cuda`` module, or None when it was not built."""
    try:
        return importlib.import_module("pixelforge._cuda")
    except ImportError:
        return None


@functools.lru_cache(maxsize=None)
def cuda_device_count() -> int:
    mod = cuda_module()
    if mod is None:
        return 0
    try:
        return int(mod.device_count())
    except Exception:  # noqa: BLE001 - a broken driver reads as no device
        return 0


@functools.lru_cache(maxsize=None)
def cupy():
    """CuPy when it is installed *and* sees a GPU, else None."""
    try:
        import cupy as cp  # noqa: PLC0415
    except Exception:  # noqa: BLE001 - ImportError, or a broken CUDA install
        return None
    try:
        return cp if cp.cuda.is_available() else None
    except Exception:  # noqa: BLE001
        return None


def is_cupy_array(x) -> bool:
    """``x`` is an array of the GPU array module :func:`cupy` returns (CuPy's ndarray)."""
    if isinstance(x, (np.ndarray, np.generic, int, float)):  # the common case never imports CuPy
        return False
    cp = cupy()
    return cp is not None and isinstance(x, cp.ndarray)


def xp_of(x):
    """The array module of ``x``: CuPy for a GPU array, else NumPy. The one place that says so."""
    return cupy() if is_cupy_array(x) else np


def to_host(x):
    """A NumPy copy of a GPU array (an explicit transfer); NumPy arrays pass through."""
    return x.get() if is_cupy_array(x) else x


@functools.lru_cache(maxsize=None)
def numba_version():
    try:
        import numba  # noqa: PLC0415
    except Exception:  # noqa: BLE001
        return None
    return numba.__version__


@functools.lru_cache(maxsize=None)
def numba_cuda_available() -> bool:
    """numba.cuda importable and a GPU (or the simulator, NUMBA_ENABLE_CUDASIM=1) present."""
    if numba_version() is None:
        return False
    try:
        from numba import cuda  # noqa: PLC0415
        return bool(cuda.is_available())
    except Exception:  # noqa: BLE001
        return False


def cudasim() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")
