"""pixelforge: image generation (GANs, VAEs, image transformers, diffusion) on hand-written
C++/CUDA/Numba kernels with CPU fallbacks.

``import pixelforge`` is light: submodules, the C++ modules, Numba and CuPy load on first use.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Importing pixelforge changes nothing process-wide: no environment variable (OpenMP's wait
# policy stays libgomp's default, which measured as fast for our steps as a short spin), no
# allocator setting (the memory pool is scoped to pixelforge's own work: see _memory.py).
from . import ops  # noqa: F401
from ._dispatch import available  # noqa: F401
from ._info import info  # noqa: F401

_SUBMODULES = ("precision", "random", "schedules", "samplers", "functional", "nn", "optim", "models", "data", "io", "cli")
# top-level names that live in a submodule
_ATTRS = {"Tensor": "tensor", "no_grad": "tensor", "enable_grad": "tensor", "memory_pool": "_memory",
          "autocast": "precision"}

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
