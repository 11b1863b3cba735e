"""The CUDA glue every op needs, written once: the ``_cuda`` module (or NotBuilt), device
pointers, the dtype codes the kernels take (``_cuda.dtypes``, from kernels/common/dtype.h) and
CuPy's current stream. Used by each op's ``_load_cuda`` (ops/<op>.py); tests/test_cuda_glue.py
runs them against the built module without a GPU."""
from __future__ import annotations

from .. import _backend
from .._dispatch import NotBuilt


def cuda_module(binding: str):
    """``pixelforge._cuda`` with ``binding`` in it, on a machine with a GPU and CuPy."""
    mod = _backend.cuda_module()
    if mod is None:
        raise NotBuilt("pixelforge._cuda is not built")
    if not hasattr(mod, binding):
        raise NotBuilt(f"pixelforge._cuda was built without {binding}")
    if _backend.cuda_device_count() == 0 or _backend.cupy() is None:
        raise NotBuilt("no CUDA device (or CuPy) available")
    return mod


def ptr(a) -> int:
    """A CuPy array's device pointer as the glue takes it (0 for None)."""
    return 0 if a is None else int(a.data.ptr)


def dtype_code(a, name: str) -> int:
    """The kernels' code for ``a``'s dtype; TypeError naming the argument when they have none."""
    codes = _backend.cuda_module().dtypes
    if a.dtype.name not in codes:
        raise TypeError(f"{name}: dtype {a.dtype.name} not supported by the CUDA kernels; expected one of "
                        f"{tuple(codes)}")
    return codes[a.dtype.name]


def stream() -> int:
    """CuPy's current stream, which every launch uses."""
    return _backend.cupy().cuda.get_current_stream().ptr
