"""``pf.info()``: what this installation can run."""
from __future__ import annotations

import importlib.metadata
import os
import platform

from . import __version__, _backend


def _package_version(name):
    try:
        return importlib.metadata.version(name)
    except Exception:  # noqa: BLE001
        return None


def info() -> dict:
    """Versions and capabilities: CPU module and its SIMD path, CUDA module and devices,
    Numba, numba-cuda, CuPy. Never raises for a missing piece."""
    cpu = _backend.cpu_module()
    cpu_info = {"native": cpu is not None, "isa": None, "native_isa": None, "built_isas": [],
                "threads": os.cpu_count(), "openmp": False, "machine": platform.machine()}
    if cpu is not None:
        cpu_info.update(isa=cpu.isa(), native_isa=cpu.native_isa(), built_isas=cpu.built_isas().split(","),
                        threads=int(cpu.max_threads()), openmp=bool(cpu.openmp))
    from . import precision
    cpu_info["bfloat16"] = precision.describe()
    cuda = _backend.cuda_module()
    cuda_info = {"built": cuda is not None, "archs": [], "devices": 0, "runtime": None}
    if cuda is not None:
        cuda_info.update(archs=[a for a in cuda.archs.split(",") if a], devices=_backend.cuda_device_count(),
                         runtime=int(cuda.runtime_version()))
    cp = _backend.cupy()
    return {
        "version": __version__,
        "python": platform.python_version(),
        "cpu": cpu_info,
        "cuda": cuda_info,
        "numba": _backend.numba_version(),
        "numba_cuda": _package_version("numba-cuda"),
        "numba_cuda_gpu": _backend.numba_cuda_available() if _backend.numba_version() else False,
        "cupy": (cp.__version__ if cp is not None else _package_version("cupy-cuda13x")
                 or _package_version("cupy-cuda12x") or _package_version("cupy")),
        "cupy_gpu": cp is not None,
    }
