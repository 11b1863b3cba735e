"""Numba kernels. Each op has a CPU sibling (``@njit(parallel=True)``) and a GPU sibling
(numba.cuda) built from the same scalar functions in :mod:`.scalar`, written once as plain
Python and compiled for each device by :func:`cpu_fn` / :func:`gpu_fn`.

Importing this package imports Numba; pixelforge only does so on first use.
"""
from ._jit import cpu_fn, gpu_fn  # noqa: F401
