"""Compile one plain-Python scalar function for both devices.

Scalar helpers in :mod:`.scalar` (and siblings) are ordinary Python functions that may call
each other. :func:`cpu_fn` / :func:`gpu_fn` compile one for a device after rebinding the
helpers it calls to their compiled versions for the same device, so a function is written
once and the CPU and GPU kernels share it.
"""
import hashlib
import os
import pathlib
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


def _kernel_cache_dir():
    """Where compiled CPU kernels are cached, or None (PIXELFORGE_NUMBA_CACHE=0, or no
    writable folder). The folder is named by a hash of every source file under ``ops``:
    numba itself only compares the defining file's time stamp, so an edit to a helper in
    another file would otherwise load a stale kernel."""
    if os.environ.get("PIXELFORGE_NUMBA_CACHE", "1") == "0":
        return None
    ops_dir = pathlib.Path(__file__).resolve().parent.parent
    h = hashlib.sha1(numba.__version__.encode())
    for src in sorted(ops_dir.rglob("*.py")):
        h.update(src.relative_to(ops_dir).as_posix().encode())
        h.update(src.read_bytes())
    root = pathlib.Path(os.environ.get("PIXELFORGE_CACHE", pathlib.Path.home() / ".cache" / "pixelforge"))
    d = root / "numba" / h.hexdigest()[:16]
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return os.fspath(d) if os.access(d, os.W_OK) else None


_cache_dir = []  # computed on first use


def njit(**options):
    """``numba.njit(**options)`` whose machine code is cached across processes in
    pixelforge's own cache folder (:func:`_kernel_cache_dir`); compiling the parallel kernels
    takes seconds each, loading them milliseconds."""
    def decorate(f):
        if not _cache_dir:
            _cache_dir.append(_kernel_cache_dir())
        where = _cache_dir[0]
        if where is None:
            return numba.njit(**options)(f)
        # the locator reads CACHE_DIR once, when caching is enabled at decoration time;
        # restore it so the user's own cached functions are unaffected
        saved = numba.config.CACHE_DIR
        numba.config.CACHE_DIR = where
        try:
            return numba.njit(cache=True, **options)(f)
        finally:
            numba.config.CACHE_DIR = saved
    return decorate


def set_variant(f, device, compiled):
    """Make ``compiled`` what the helper ``f`` is rebound to for ``device`` (e.g. a CPU body
    that computes bit for bit the same values as ``f`` with cheaper operations); must run
    before the first function calling ``f`` is compiled for that device."""
    _compiled[(f, device)] = compiled


def cpu_fn(f):
    """``f`` and the helpers it calls as njit functions (inlined into CPU kernels)."""
    return _rebound(f, "cpu", lambda g: numba.njit(inline="always")(g))


def gpu_fn(f):
    """``f`` and the helpers it calls as numba.cuda device functions."""
    from numba import cuda  # noqa: PLC0415
    return _rebound(f, "gpu", lambda g: cuda.jit(device=True)(g))
