"""What bench/gpu/run.sh finds on this machine (stage "check"): the Python, each package it needs
(found + version, or MISSING), the tools (cmake, ninja, nvcc, compute-sanitizer, nvidia-smi).

    python bench/gpu/check_env.py [--have FILE]

--have FILE: also write ``name=1`` / ``name=0`` lines (and ``cmake_bin=`` / ``nvcc_bin=`` /
``sanitizer_bin=`` paths) for run.sh to read. Never installs anything and never fails: a missing
piece is reported, run.sh decides what it needs. Runs with nothing but the standard library.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import os
import platform
import shutil
import subprocess
import sys

# (import name, distribution name, role)
PACKAGES = [
    ("numpy", "numpy", "runtime"),
    ("numba", "numba", "runtime"),
    ("safetensors", "safetensors", "runtime"),
    ("sklearn", "scikit-learn", "runtime (load_digits)"),
    ("tqdm", "tqdm", "runtime"),
    ("PIL", "Pillow", "runtime"),
    ("scikit_build_core", "scikit-build-core", "build"),
    ("pybind11", "pybind11", "build"),
    ("cmake", "cmake", "build (module or binary)"),
    ("ninja", "ninja", "build (module or binary; else make)"),
    ("pytest", "pytest", "tests"),
    ("cupy", None, "GPU tests and benchmarks"),
    ("numba.cuda", "numba-cuda", "GPU sampling kernels"),
    ("torch", "torch", "optional: benchmark comparisons"),
    ("ml_dtypes", "ml_dtypes", "optional: bfloat16 CuPy arrays"),
]
CUDA_BIN = "/usr/local/cuda/bin"



def _tool_bin(name, have, bin_dir):
    """The ``name`` binary on PATH, else the one the Python package of that name ships."""
    found = shutil.which(name)
    if found is None and have.get(name):
        try:
            cand = os.path.join(bin_dir(importlib.import_module(name)), name)
            found = cand if os.access(cand, os.X_OK) else None
        except Exception:  # noqa: BLE001
            pass
    return found

def _dist_version(*names):
    for n in names:
        if not n:
            continue
        try:
            return importlib.metadata.version(n)
        except Exception:  # noqa: BLE001
            pass
    return None


def _first_line(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        lines = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.strip()]
        return lines, out.returncode
    except Exception as e:  # noqa: BLE001
        return [f"{type(e).__name__}: {e}"], -1


def _which(name):
    return shutil.which(name) or (os.path.join(CUDA_BIN, name) if os.access(os.path.join(CUDA_BIN, name),
                                                                             os.X_OK) else None)


def probe_package(mod, dist):
    """(found, version or error text)."""
    try:
        m = importlib.import_module(mod)
    except Exception as e:  # noqa: BLE001 - ImportError, or a broken CUDA install
        return False, f"{type(e).__name__}: {e}".splitlines()[0][:160]
    if mod == "numba.cuda":
        v = _dist_version("numba-cuda") or f"bundled with numba {_dist_version('numba')}"
        try:
            v += f"; is_available()={bool(m.is_available())}"
        except Exception as e:  # noqa: BLE001
            v += f"; is_available() raised {type(e).__name__}"
        return True, v
    v = getattr(m, "__version__", None) or _dist_version(dist) or "?"
    if mod == "cupy":
        v = f"{v} ({_dist_version('cupy-cuda13x') and 'cupy-cuda13x' or _dist_version('cupy-cuda12x') and 'cupy-cuda12x' or 'cupy'})"
        try:
            v += f"; cuda.is_available()={bool(m.cuda.is_available())}"
        except Exception as e:  # noqa: BLE001
            v += f"; cuda.is_available() raised {type(e).__name__}"
    if mod == "torch":
        try:
            v += f"; cuda.is_available()={bool(m.cuda.is_available())} (CUDA {m.version.cuda})"
        except Exception:  # noqa: BLE001
            pass
    return True, str(v)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--have")
    args = ap.parse_args(argv)
    have: dict = {}
    print(f"python      {platform.python_version()} ({sys.executable}; prefix {sys.prefix})")
    print(f"platform    {platform.platform()}; {os.cpu_count()} CPUs")
    for mod, dist, role in PACKAGES:
        found, text = probe_package(mod, dist)
        have[mod.replace(".", "_")] = found
        print(f"{mod:<18} {'found ' + text if found else 'MISSING (' + text + ')'}   [{role}]")

    # tools: the cmake / ninja binaries (the Python packages ship them too)
    tools = {}
    cmake_bin = _tool_bin("cmake", have, lambda m: m.CMAKE_BIN_DIR)
    ninja_bin = _tool_bin("ninja", have, lambda m: m.BIN_DIR)
    tools["cmake_bin"] = cmake_bin
    tools["ninja_bin"] = ninja_bin
    tools["make_bin"] = shutil.which("make")
    tools["nvcc_bin"] = _which("nvcc")
    tools["sanitizer_bin"] = _which("compute-sanitizer")
    tools["nvidia_smi_bin"] = shutil.which("nvidia-smi")
    names = {"cmake_bin": "cmake binary", "ninja_bin": "ninja binary", "make_bin": "make", "nvcc_bin": "nvcc",
             "sanitizer_bin": "compute-sanitizer", "nvidia_smi_bin": "nvidia-smi"}
    for key, path in tools.items():
        name = names[key]
        if path is None:
            print(f"{name:<18} MISSING")
            continue
        if key == "nvidia_smi_bin":
            print(f"{name:<18} found {path}")
            continue
        lines, _ = _first_line([path, "--version"])
        ver = next((ln for ln in lines if "release" in ln), lines[0] if lines else "?") if key == "nvcc_bin" \
            else (lines[0] if lines else "?")
        print(f"{name:<18} found {path}: {ver.strip()}")
    have["cmake"] = have.get("cmake") or cmake_bin is not None
    have["ninja"] = ninja_bin is not None
    try:
        spec = importlib.util.find_spec("pixelforge")
        where = spec.origin if spec else None
    except Exception:  # noqa: BLE001
        where = None
    print(f"{'pixelforge':<18} {'importable from ' + where if where else 'not importable yet'}")

    if args.have:
        with open(args.have, "w") as f:
            for k, v in have.items():
                f.write(f"{k}={int(bool(v))}\n")
            for k, v in tools.items():
                f.write(f"{k}={v or ''}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
