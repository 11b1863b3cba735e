"""One helper set every op test uses: built impls, tolerances, non-contiguous views, finite
differences, and running code under the CUDA simulator in a subprocess.

Pattern (CuPy-style, written once): call the op for every built impl on float32 inputs and
compare with the float64 ``ref`` on the same inputs, at the tolerances of DESIGN.md.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np

import pixelforge as pf

# (rtol, atol) against a float64 reference
TOL = {"float32": (1e-4, 1e-5), "float64": (1e-10, 1e-12)}


def built_impls(op: str, device: str = "cpu") -> list:
    """Every impl of ``op`` that loads here, the reference included."""
    return pf.available(op, device)


def fast_impls(op: str, device: str = "cpu") -> list:
    return [i for i in built_impls(op, device) if i != "ref"]


def assert_close(actual, expected, dtype, what="", scale=1.0):
    rtol, atol = TOL[np.dtype(dtype).name]
    actual = np.asarray(actual, np.float64)
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
