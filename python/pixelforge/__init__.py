"""pixelforge: image generation (GANs, VAEs, image transformers, diffusion) on hand-written
C++/CUDA/Numba kernels with CPU fallbacks.

``import pixelforge`` is light: C++ modules, Numba and CuPy load on first use.
"""
from __future__ import annotations

__version__ = "0.1.0"

from . import ops  # noqa: E402,F401
from ._dispatch import available  # noqa: E402,F401
from ._info import info  # noqa: E402,F401

__all__ = ["__version__", "info", "ops", "available"]
