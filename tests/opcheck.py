"""One helper set every op test uses: built impls, devices, per-dtype tolerances,
non-contiguous views, finite differences, and running code under the CUDA simulator in a
subprocess.

Pattern (CuPy-style, written once): a test takes ``device, impl`` from :func:`impl_params`
(every impl registered for the op on the CPU and on the GPU; the GPU ones carry the ``gpu``
marker, so they skip without a GPU and run on one), builds NumPy inputs, moves them with
:func:`to_device`, and compares with the float64 ``ref`` on the host at :data:`TOL` of the
dtype (DESIGN.md: float32 1e-4 / 1e-5; float16 and bfloat16 storage a few units of rounding).
:func:`impl_dtype_params` gives ``device, impl, dtype`` for tests run once per dtype.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pixelforge as pf
from pixelforge import _backend, _dispatch

# (rtol, atol) against a float64 reference; float16 / bfloat16: storage rounding 2^-11 / 2^-8,
# a few units on values of magnitude ~1 (the math runs in float32)
TOL = {"float32": (1e-4, 1e-5), "float64": (1e-10, 1e-12), "float16": (4e-3, 4e-3), "bfloat16": (3e-2, 3e-2)}
# the dtypes each device's ops take
DTYPES = {"cpu": ("float32", "float64"), "cuda": ("float32", "float16", "bfloat16")}


def impl_params(op: str, *, ref=True, devices=("cpu", "cuda")):
    """pytest params ``(device, impl)`` for every impl registered for ``op``: the CPU's that load
    here, and every GPU one (marked ``gpu``: skipped without a GPU; on a GPU machine one that
    does not load fails the test). ``ref=False`` leaves the reference out."""
    out = []
    for device in devices:
        if device == "cpu":
            impls = built_impls(op, "cpu")
        else:
            _dispatch._ensure_registered(op)
            order = _dispatch._orders.get((op, "cuda"), _dispatch.DEFAULT_ORDER["cuda"])
            impls = [i for i in order if (op, "cuda", i) in _dispatch._loaders]
        for impl in impls:
            if impl == "ref" and not ref:
                continue
            marks = [pytest.mark.gpu] if device == "cuda" else []
            out.append(pytest.param(device, impl, marks=marks, id=f"{device}-{impl}"))
    return out


def dtype_params(device: str, *, low_precision=True):
    """The dtypes ``device``'s ops take (the GPU's 16-bit ones only with ``low_precision``)."""
    return [d for d in DTYPES[device] if low_precision or d in ("float32", "float64")]


def impl_dtype_params(op: str, *, ref=True, devices=("cpu", "cuda"), dtypes=None):
    """pytest params ``(device, impl, dtype)``: :func:`impl_params` times the dtypes each device's
    ops take (:func:`dtype_params`), one test per dtype, so a bfloat16 one skips alone where
    ml_dtypes (or CuPy's bfloat16) is missing. ``dtypes(device, impl)`` gives the dtypes for an
    impl that takes fewer (a reference that computes in its input dtype, say)."""
    out = []
    for p in impl_params(op, ref=ref, devices=devices):
        device, impl = p.values
        for dtype in (dtype_params(device) if dtypes is None else dtypes(device, impl)):
            out.append(pytest.param(device, impl, dtype, marks=p.marks, id=f"{p.id}-{dtype}"))
    return out


def to_device(a, device: str, dtype=None):
    """A NumPy array (cast to ``dtype``: "bfloat16" needs ml_dtypes) on ``device``; a bfloat16
    one skips the test where this CuPy cannot hold bfloat16 arrays."""
    if dtype is not None:
        if dtype == "bfloat16":
            ml_dtypes = pytest.importorskip("ml_dtypes", reason="bfloat16 arrays need ml_dtypes")
            a = np.asarray(a, np.float32).astype(ml_dtypes.bfloat16)
        else:
            a = np.asarray(a).astype(dtype)
    if device == "cpu":
        return a
    if a.dtype.name == "bfloat16":
        try:
            return _backend.cupy().asarray(a)
        except Exception as e:  # noqa: BLE001 - a CuPy without bfloat16 support (its error type varies)
            pytest.skip(f"CuPy has no bfloat16 arrays here ({type(e).__name__}: {e})")
    return _backend.cupy().asarray(a)


def to_host64(a):
    """The values of a NumPy or CuPy array (any float dtype, bfloat16 included) in float64 on the
    host: what the device holds, for the float64 reference."""
    return np.asarray(_backend.to_host(a)).astype(np.float64)


def device_of(a) -> str:
    return "cuda" if _backend.is_cupy_array(a) else "cpu"


def built_impls(op: str, device: str = "cpu") -> list:
    """Every impl of ``op`` that loads here, the reference included."""
    return pf.available(op, device)


def fast_impls(op: str, device: str = "cpu") -> list:
    return [i for i in built_impls(op, device) if i != "ref"]


def assert_close(actual, expected, dtype, what="", scale=1.0):
    rtol, atol = TOL[dtype if isinstance(dtype, str) else np.dtype(dtype).name]
    actual = np.asarray(_backend.to_host(actual)).astype(np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    np.testing.assert_allclose(actual, expected, rtol=rtol * scale, atol=atol * scale, err_msg=what)


def noncontig(a):
    """A non-contiguous view holding the same values as ``a``."""
    a = np.asarray(a)
    big = np.empty(a.shape + (2,), a.dtype)
    big[..., 0] = a
    big[..., 1] = np.nan
    view = big[..., 0]
    assert not view.flags.c_contiguous or a.size <= 1
    return view


def rng(seed=None):
    return np.random.default_rng(seed)


def finite_diff(f, x, eps=1e-6):
    """Central-difference gradient of the scalar function f at float64 x."""
    x = np.array(x, np.float64)
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        fp = f(x)
        flat[i] = old - eps
        fm = f(x)
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * eps)
    return g


def run_cudasim(code: str, timeout=600) -> str:
    """Run ``code`` in a fresh interpreter with NUMBA_ENABLE_CUDASIM=1 (it must be set before
    numba is imported). Fails the test with the child's output if it exits non-zero."""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"cudasim run failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def run_python(code: str, env=None, timeout=600) -> str:
    """Run ``code`` in a fresh interpreter with extra environment variables."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=dict(os.environ, **(env or {})),
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"subprocess failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout
