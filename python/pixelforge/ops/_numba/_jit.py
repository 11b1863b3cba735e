"""Compile one plain-Python scalar function for both devices.

Scalar helpers in :mod:`.scalar` (and siblings) are ordinary Python functions that may call
each other. :func:`cpu_fn` / :func:`gpu_fn` compile one for a device after rebinding the
helpers it calls to their compiled versions for the same device, so a function is written
once and the CPU and GPU kernels share it.
"""
import types

import numba

_compiled = {}  # (function, device) -> compiled


def _is_scalar_helper(obj, module):
    return isinstance(obj, types.FunctionType) and obj.__module__ == module


def _rebound(f, device, compile_one):
    key = (f, device)
    if key in _compiled:
        return _compiled[key]
    glb = dict(f.__globals__)
    for name in f.__code__.co_names:
        obj = glb.get(name)
        if _is_scalar_helper(obj, f.__module__) and obj is not f:
            glb[name] = _rebound(obj, device, compile_one)
    g = types.FunctionType(f.__code__, glb, f.__name__, f.__defaults__, f.__closure__)
    out = compile_one(g)
    _compiled[key] = out
    return out


def cpu_fn(f):
    """``f`` and the helpers it calls as njit functions (inlined into CPU kernels)."""
    return _rebound(f, "cpu", lambda g: numba.njit(inline="always")(g))


def gpu_fn(f):
    """``f`` and the helpers it calls as numba.cuda device functions."""
    from numba import cuda  # noqa: PLC0415
    return _rebound(f, "gpu", lambda g: cuda.jit(device=True)(g))
