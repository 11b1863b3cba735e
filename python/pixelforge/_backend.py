"""Lazy detection of the optional pieces: the C++ modules, Numba, numba.cuda, CuPy.

Nothing here imports a heavy package at ``import pixelforge`` time; each probe runs on
first use and is cached. A probe never raises: a missing piece reads as "not there".
"""
from __future__ import annotations

import functools
import importlib
import os

__all__ = ["cpu_module", "cuda_module", "cuda_device_count", "cupy", "numba_version",
           "numba_cuda_available", "is_cupy_array"]


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
    # Checked by module name so CuPy is never imported just to look at a NumPy array.
    return type(x).__module__.startswith("cupy") and hasattr(x, "__cuda_array_interface__")


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
