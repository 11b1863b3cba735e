"""Mixed precision on the CPU: ``pf.autocast("bfloat16")`` and ``module.to(dtype="bfloat16")``.

Inside ``with pf.autocast("bfloat16"):`` the GEMM-shaped ops on float32 CPU arrays
(``pf.ops.matmul`` / ``linear`` / ``linear_backward``, ``conv2d``'s forward) round their
operands to bfloat16 and sum the products in float32 (VDPBF16PS, avx512_bf16: twice float32's
products per instruction). Everything else, and every result, stays float32: the weights are
the float32 master copies, optimizer state is float32, and activations between ops keep
float32's precision (torch's CPU autocast also rounds each result to bfloat16; ours do not, so
their error is at most torch's). A layer's backward runs in the precision its forward ran in,
whether or not ``backward()`` is called inside the context.

Where the CPU lacks avx512_bf16 (or ``PIXELFORGE_CPU_BF16=0``) the same code computes in
float32, silently; ``pf.info()["cpu"]["bfloat16"]`` says which. float64 arrays and the GPU are
never affected. The ``ref`` impl honours the context for float32 inputs by rounding their
operands the same way (it is the kernels' reference), where the kernels exist.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools

import numpy as np

from . import _backend

_DTYPES = ("float32", "bfloat16")
_compute = contextvars.ContextVar("pixelforge_compute_dtype", default="float32")


def _dtype_name(dtype, name="dtype"):
    """'float32' or 'bfloat16' from a string or NumPy float32; anything else is an error."""
    if isinstance(dtype, str):
        if dtype in _DTYPES:
            return dtype
        if dtype in ("bf16",):
            return "bfloat16"
        if dtype in ("fp32", "float"):
            return "float32"
        raise ValueError(f"{name}: expected 'float32' or 'bfloat16', got {dtype!r}")
    try:
        if np.dtype(dtype) == np.float32:
            return "float32"
    except TypeError:
        pass
    raise TypeError(f"{name}: expected 'float32' or 'bfloat16', got {dtype!r}")


def compute_dtype() -> str:
    """The precision GEMM-shaped ops use for float32 arrays here: 'float32' or 'bfloat16'."""
    return _compute.get()


@contextlib.contextmanager
def autocast(dtype="bfloat16", enabled=True):
    """Run matmul / linear / conv2d on float32 CPU arrays with bfloat16 operands and float32
    sums inside the block (torch.autocast("cpu", dtype=torch.bfloat16)'s role). Nests;
    ``enabled=False`` (or dtype "float32") restores full float32 inside."""
    want = _dtype_name(dtype) if enabled else "float32"
    token = _compute.set(want)
    try:
        yield
    finally:
        _compute.reset(token)


_SAME = contextlib.nullcontext()


def using(dtype):
    """The context to run in ``dtype`` ('float32' or 'bfloat16', already checked): nothing to
    enter when it is the current one (a layer's backward, on the tape's hot path, usually is)."""
    return _SAME if _compute.get() == dtype else autocast(dtype)


@functools.lru_cache(maxsize=None)
def bfloat16_kernels() -> bool:
    """True where the CPU's bfloat16 kernels run (AVX-512 path with avx512_bf16; fixed for the
    process, as the C++ side reads CPUID and PIXELFORGE_CPU_BF16 once)."""
    mod = _backend.cpu_module()
    return bool(mod is not None and hasattr(mod, "has_bf16") and mod.has_bf16())


def use_bfloat16(*arrays) -> bool:
    """Whether an op on these arrays computes with bfloat16 operands now: the context asks for
    it, they are float32 NumPy arrays, and the kernels exist (else float32, silently)."""
    if _compute.get() != "bfloat16":
        return False
    for a in arrays:
        if a is not None and (type(a) is not np.ndarray or a.dtype != np.float32):
            return False
    return bfloat16_kernels()


def rounded64(*arrays):
    """Each float32 array rounded to bfloat16, as float64: the references' operands."""
    return tuple(round_bfloat16(a).astype(np.float64) for a in arrays)


def round_bfloat16(x):
    """x (float32) rounded to the nearest bfloat16 (ties to even; denormals to signed zero, as
    the kernels' conversion does), returned as float32: the reference's operand rounding."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    u = x.view(np.uint32).astype(np.uint64)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    tiny = (u & 0x7F800000) == 0
    r = ((u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000)
    r = np.where(tiny, u & 0x80000000, r)
    r = np.where(nan, (u | 0x00400000) & 0xFFFF0000, r)
    return r.astype(np.uint32).view(np.float32).reshape(x.shape)


def describe() -> str:
    """One line for pf.info(): which precision ``autocast('bfloat16')`` really gets here."""
    if bfloat16_kernels():
        return "bfloat16 kernels (avx512_bf16)"
    return "not available: autocast('bfloat16') computes in float32 (CPU path without avx512_bf16)"
