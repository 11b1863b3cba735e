"""Argument checks shared by every op; they run before any pointer reaches a kernel.

Each error names the argument: ``TypeError`` for a wrong kind of thing (not an array,
integer dtype), ``ValueError`` for a wrong value (shape, range, device mismatch).
"""
from __future__ import annotations

import numbers

import numpy as np

from . import _backend

CPU_FLOAT = ("float32", "float64")
GPU_FLOAT = ("float32", "float16", "bfloat16")


def device_of(x) -> str:
    return "cuda" if _backend.is_cupy_array(x) else "cpu"


xp_of = _backend.xp_of


def as_array(x, name: str):
    """NumPy or CuPy array from ``x``; other array-likes (torch tensors, lists) are
    converted through DLPack / ``__cuda_array_interface__`` / ``__array__``."""
    if isinstance(x, np.ndarray) or _backend.is_cupy_array(x):
        return x
    if x is None or isinstance(x, (str, bytes, dict)):
        raise TypeError(f"{name}: expected an array, got {type(x).__name__}")
    if hasattr(x, "detach") and callable(x.detach):  # torch: drop autograd before export
        x = x.detach()
    if hasattr(x, "__dlpack_device__"):
        try:
            dev_type = int(x.__dlpack_device__()[0])
        except Exception:  # noqa: BLE001
            dev_type = 1
        if dev_type != 1:  # not kDLCPU: a GPU array
            cp = _backend.cupy()
            if cp is None:
                raise ValueError(f"{name}: a GPU array was given but CuPy/GPU is not available")
            return cp.from_dlpack(x)
        try:
            return np.from_dlpack(x)
        except Exception:  # noqa: BLE001 - fall through to __array__
            pass
    if hasattr(x, "__cuda_array_interface__"):
        cp = _backend.cupy()
        if cp is None:
            raise ValueError(f"{name}: a GPU array was given but CuPy/GPU is not available")
        return cp.asarray(x)
    try:
        arr = np.asarray(x)
    except Exception as e:  # noqa: BLE001
        raise TypeError(f"{name}: expected an array, got {type(x).__name__} ({e})") from None
    if arr.dtype == object:
        raise TypeError(f"{name}: expected a numeric array, got {type(x).__name__}")
    return arr


def float_array(x, name: str, *, ndim=None, min_ndim=None, dtypes=None, contiguous=True):
    """A floating array of an allowed dtype for its device, C-contiguous (unless ``contiguous``
    is False: then as it is, for a caller that reads strides)."""
    arr = as_array(x, name)
    dev = device_of(arr)
    allowed = dtypes or (CPU_FLOAT if dev == "cpu" else GPU_FLOAT)
    if arr.dtype.name not in allowed:
        kind = "integer" if arr.dtype.kind in "iub" else arr.dtype.name
        raise TypeError(f"{name}: dtype {arr.dtype.name} ({kind}) not supported on {dev}; expected one of {allowed}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {tuple(arr.shape)}")
    if min_ndim is not None and arr.ndim < min_ndim:
        raise ValueError(f"{name}: expected at least {min_ndim} dimensions, got shape {tuple(arr.shape)}")
    if contiguous and not arr.flags.c_contiguous:
        arr = xp_of(arr).ascontiguousarray(arr)
    return arr


def same_device(**arrays) -> str:
    """The one device all non-None arrays live on; ValueError naming the odd one out."""
    devs = {k: device_of(v) for k, v in arrays.items() if v is not None}
    if not devs:
        return "cpu"
    first_name, first = next(iter(devs.items()))
    for k, d in devs.items():
        if d != first:
            raise ValueError(f"{k}: on {d} but {first_name} is on {first}; move both to one device")
    return first


def same_dtype(**arrays):
    items = [(k, v) for k, v in arrays.items() if v is not None]
    first_name, first = items[0]
    for k, v in items[1:]:
        if v.dtype != first.dtype:
            raise TypeError(f"{k}: dtype {v.dtype.name} differs from {first_name}'s {first.dtype.name}")
    return first.dtype


def same_shape(a, a_name: str, b, b_name: str) -> None:
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"{a_name}: shape {tuple(a.shape)} differs from {b_name}'s {tuple(b.shape)}")


def real_number(v, name: str, *, allow_none=False, min_value=None, positive=False):
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(v).__name__}")
    v = float(v)
    if not np.isfinite(v):
        raise ValueError(f"{name}: must be finite, got {v}")
    if positive and v <= 0:
        raise ValueError(f"{name}: must be > 0, got {v}")
    if min_value is not None and v < min_value:
        raise ValueError(f"{name}: must be >= {min_value}, got {v}")
    return v


def integer(v, name: str, *, min_value=None, max_value=None, wrong_type=TypeError):
    """``v`` as an int within the bounds. ``wrong_type``: the exception for a non-int (the models'
    and layers' public signatures have raised ValueError for any bad count since v0)."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        if wrong_type is ValueError:
            lo = "" if min_value is None else f" >= {min_value}"
            raise ValueError(f"{name}: expected an int{lo}, got {v!r}")
        raise wrong_type(f"{name}: expected an int, got {type(v).__name__}")
    v = int(v)
    if min_value is not None and v < min_value:
        raise ValueError(f"{name}: must be >= {min_value}, got {v}")
    if max_value is not None and v > max_value:
        raise ValueError(f"{name}: must be <= {max_value}, got {v}")
    return v


def axis(dim, ndim: int, name: str = "dim") -> int:
    d = integer(dim, name)
    if not -ndim <= d < ndim:
        raise ValueError(f"{name}: {dim} out of range for an array of {ndim} dimensions")
    return d % ndim


def choice(v, name: str, options):
    if not isinstance(v, str):
        raise TypeError(f"{name}: expected a string, got {type(v).__name__}")
    if v not in options:
        raise ValueError(f"{name}: unknown value {v!r}; expected one of {tuple(options)}")
    return v
