"""pixelforge: image generation (GANs, VAEs, image transformers, diffusion) on hand-written
C++/CUDA/Numba kernels with CPU fallbacks.

``import pixelforge`` is light: submodules, the C++ modules, Numba and CuPy load on first use.
"""
from __future__ import annotations

import importlib
import os

__version__ = "0.1.0"

# OpenMP worker threads spin after each parallel region before they sleep. libgomp's default
# (300000 spins) makes them hold both cores of a small machine through the Python between
# kernels, where NumPy's or another pool's threads then wait a whole scheduler slice
# (measured: 20 ms stalls in a training loop). A short spin keeps back-to-back kernels fast
# and yields the cores soon after. Only a default: OMP_WAIT_POLICY or GOMP_SPINCOUNT set by
# the user win; it applies if libgomp is first loaded after this import.
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = "10000"

from . import ops  # noqa: E402,F401
from ._dispatch import available  # noqa: E402,F401
from ._info import info  # noqa: E402,F401

_SUBMODULES = ("random", "schedules", "samplers", "functional", "nn", "optim", "models", "data", "io", "cli")
# top-level names that live in a submodule
_ATTRS = {"Tensor": "tensor", "no_grad": "tensor", "enable_grad": "tensor"}

__all__ = ["__version__", "info", "ops", "available", *_SUBMODULES, *_ATTRS]


def __getattr__(name):
    if name in _SUBMODULES:
        mod = importlib.import_module(f".{name}", __name__)
        globals()[name] = mod
        return mod
    if name in _ATTRS:
        value = getattr(importlib.import_module(f".{_ATTRS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pixelforge' has no attribute {name!r}")
