"""The foundation: import is light and never fails, pf.info(), the dispatch table, shared
validation, the CLI, and that nvcc on PATH means the CUDA module was built."""
import ctypes.util
import os
import platform
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

import pixelforge as pf
from pixelforge import _dispatch, _validate
from opcheck import run_python


def test_import_is_fast_and_light():
    out = run_python("""
        import sys, time
        t0 = time.perf_counter()
        import pixelforge
        dt = time.perf_counter() - t0
        heavy = [m for m in ("numba", "cupy", "torch", "scipy", "pixelforge._cuda") if m in sys.modules]
        print(dt, ",".join(heavy) or "-")
    """)
    dt, heavy = out.split()
    assert heavy == "-", f"import pixelforge pulled in {heavy}"
    assert float(dt) < 1.0


def test_import_survives_missing_native_modules():
    out = run_python("""
        import sys, warnings
        sys.modules["pixelforge._cpu"] = None   # simulate a build without the native modules
        sys.modules["pixelforge._cuda"] = None
        import numpy as np, pixelforge as pf
        assert pf.info()["cpu"]["native"] is False and pf.info()["cuda"]["built"] is False
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            y = pf.ops.bias_act(np.ones((2, 3), np.float32), act="relu")
            y = pf.ops.bias_act(np.ones((2, 3), np.float32), act="relu")
        assert len([x for x in w if "falls back" in str(x.message)]) == 1, [str(x.message) for x in w]
        assert np.allclose(y, 2 ** 0.5)
        print(pf.available("bias_act"))
    """)
    assert "cpu" not in out and "numba" in out


def test_info_structure():
    info = pf.info()
    assert info["version"] == pf.__version__
    for key in ("native", "isa", "threads"):
        assert key in info["cpu"]
    for key in ("built", "archs", "devices"):
        assert key in info["cuda"]
    assert "numba" in info and "cupy" in info and "numba_cuda" in info
    if info["cpu"]["native"]:
        assert info["cpu"]["isa"] in ("generic", "avx2", "avx512")
        assert info["cpu"]["threads"] >= 1


def test_native_cpu_module_is_built():
    # The README install builds it; a silent fallback to Python would hide a broken build.
    assert pf.info()["cpu"]["native"], "pixelforge._cpu did not build"


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH")
def test_cuda_module_built_when_nvcc_present():
    if os.environ.get("PIXELFORGE_SANITIZED"):
        pytest.skip("the sanitizer build (.ci/sanitize.sh) is CPU-only")
    info = pf.info()
    assert info["cuda"]["built"], "nvcc is on PATH but pixelforge._cuda was not built"
    assert info["cuda"]["archs"]


def test_cuda_module_imports_without_gpu():
    mod = pf._backend.cuda_module()
    if mod is None:
        pytest.skip("_cuda not built")
    assert mod.device_count() >= 0  # 0 here, never an exception


def test_pixelforge_impl_env_override():
    out = run_python("""
        import numpy as np, pixelforge as pf
        from pixelforge import _dispatch
        print(_dispatch.resolve("bias_act", "cpu", "auto")[0], _dispatch.resolve("bias_act", "cpu", "cpu")[0])
    """, env={"PIXELFORGE_IMPL": "ref"})
    assert out.split() == ["ref", "cpu"] or "cpu" not in pf.available("bias_act")
    bad = subprocess.run([sys.executable, "-c", "import numpy as np, pixelforge as pf; "
                          "pf.ops.bias_act(np.ones(3, np.float32), dim=0)"],
                         env={**__import__("os").environ, "PIXELFORGE_IMPL": "turbo"}, capture_output=True, text=True)
    assert bad.returncode != 0 and "PIXELFORGE_IMPL" in bad.stderr


def test_dispatch_errors():
    with pytest.raises(ValueError, match="impl"):
        _dispatch.resolve("bias_act", "cpu", "gpu")
    with pytest.raises(ValueError, match="impl"):
        _dispatch.resolve("bias_act", "cpu", "cuda")
    with pytest.raises(ValueError):
        _dispatch.resolve("no_such_op", "cpu", "auto")
    with pytest.raises(ValueError):
        _dispatch.register("x", "tpu", "cpu")


def test_validation_helpers():
    with pytest.raises(TypeError, match="w"):
        _validate.float_array(np.arange(3), "w")
    with pytest.raises(TypeError, match="w"):
        _validate.float_array(None, "w")
    with pytest.raises(ValueError, match="w"):
        _validate.float_array(np.zeros((2, 2), np.float32), "w", ndim=3)
    a = _validate.float_array(np.zeros((4, 4), np.float32)[:, ::2], "w")
    assert a.flags.c_contiguous
    assert _validate.float_array([[1.0, 2.0]], "w", dtypes=("float64",)).dtype == np.float64
    with pytest.raises(TypeError, match="b"):
        _validate.same_dtype(a=np.zeros(2, np.float32), b=np.zeros(2, np.float64))
    with pytest.raises(ValueError, match="n"):
        _validate.integer(-1, "n", min_value=0)
    with pytest.raises(TypeError, match="n"):
        _validate.integer(1.5, "n")
    with pytest.raises(TypeError, match="n"):
        _validate.integer(True, "n")
    with pytest.raises(ValueError, match="r"):
        _validate.real_number(float("nan"), "r")
    with pytest.raises(ValueError, match="mode"):
        _validate.choice("z", "mode", ("a", "b"))
    assert _validate.axis(-1, 3) == 2


def test_cli_info_bench_and_demo_run(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pixelforge.cli", "info"], capture_output=True, text=True)
    assert out.returncode == 0 and "pixelforge" in out.stdout and "CPU module" in out.stdout
    out = subprocess.run([sys.executable, "-m", "pixelforge.cli", "bench", "--quick", "--op", "bias_act",
                          "--no-progress"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "bias_act" in out.stdout and "MISMATCH" not in out.stdout
    out = subprocess.run([sys.executable, "-m", "pixelforge.cli", "demo", "--quick", "--out", str(tmp_path)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    for family in ("gan", "vae", "transformer", "diffusion"):
        assert family in out.stdout
        assert (tmp_path / f"{family}.png").is_file()
    assert (tmp_path / "all.png").is_file()


def test_unknown_attribute_errors():
    with pytest.raises(AttributeError):
        pf.ops.not_an_op  # noqa: B018
    with pytest.raises(AttributeError):
        pf.not_a_module  # noqa: B018


def test_warning_once_per_op():
    _dispatch._warned.clear()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        _dispatch.resolve("bias_act", "cpu", "auto")
    assert not w or "falls back" in str(w[0].message)


def test_numba_kernel_cache_folder_is_keyed_by_sources(tmp_path, monkeypatch):
    pytest.importorskip("numba")
    from pixelforge.ops._numba import _jit
    monkeypatch.setenv("PIXELFORGE_CACHE", str(tmp_path))
    d = _jit._kernel_cache_dir()
    assert d is not None and d.startswith(str(tmp_path / "numba")) and os.access(d, os.W_OK)
    assert _jit._kernel_cache_dir() == d  # same sources, same folder
    monkeypatch.setenv("PIXELFORGE_NUMBA_CACHE", "0")
    assert _jit._kernel_cache_dir() is None


def _handler_name_module():
    return "numpy._core.multiarray" if int(np.__version__.split(".")[0]) >= 2 else "numpy.core.multiarray"


def test_pixelforge_changes_nothing_process_wide():
    """A good citizen in a shared process (torch beside it): importing pixelforge and training
    with it leaves the environment (which OpenMP runtimes loaded later read) and NumPy's
    allocator outside pixelforge's own work as they were."""
    out = run_python("""
        import os, numpy as np
        from %s import get_handler_name
        import sklearn      # the digits come from scikit-learn, which sets KMP_* variables itself
        before = dict(os.environ)
        import pixelforge as pf
        x, _ = pf.data.load_digits()
        m = pf.models.create("vae", (1, 8, 8))
        m.fit(x, steps=2, progress=False)
        m.sample(2)
        print(dict(os.environ) == before, get_handler_name(), get_handler_name(np.empty(1 << 20)))
    """ % _handler_name_module())
    assert out.split() == ["True", "default_allocator", "default_allocator"]


@pytest.mark.skipif(not pf.info()["cpu"]["native"], reason="the pool lives in the C++ module")
@pytest.mark.skipif(bool(os.environ.get("PIXELFORGE_SANITIZED")), reason="off under AddressSanitizer (it must see every free)")
def test_memory_pool_reuses_blocks_inside_its_scope_only():
    get_handler_name = __import__(_handler_name_module(), fromlist=["get_handler_name"]).get_handler_name
    from pixelforge import _memory
    with pf.memory_pool():
        assert get_handler_name() == "pixelforge_pool"
        a = np.empty(1 << 21, np.float32)
        p = a.ctypes.data
        del a
        b = np.empty(1 << 21, np.float32)             # the same block again (8 MiB)
        assert b.ctypes.data == p and get_handler_name(b) == "pixelforge_pool"
        b.fill(7.0)
        del b
        z = np.zeros(1 << 21, np.float32)             # a reused dirty block is zeroed all the same
        assert z.ctypes.data == p and not z.any()
        small = np.ones(10)
        with pf.memory_pool():                        # nesting restores the outer scope's handler
            pass
        assert get_handler_name() == "pixelforge_pool"
    assert get_handler_name() == "default_allocator" and get_handler_name(small) == "pixelforge_pool"
    del z
    assert _memory.stats()["cached_bytes"] >= 1 << 23     # freed outside the scope: back to the pool
    _memory.trim()
    assert _memory.stats()["cached_bytes"] == 0
    out = run_python("""
        import numpy as np, pixelforge as pf
        from %s import get_handler_name
        with pf.memory_pool():
            print(get_handler_name())
    """ % _handler_name_module(), env={"PIXELFORGE_MEMORY_POOL": "0"})
    assert out.strip() == "default_allocator"


@pytest.mark.skipif(not pf.info()["cpu"]["native"], reason="the pool lives in the C++ module")
@pytest.mark.parametrize("old,new", [(10, 100_000), (100_000, 300_000), (300_000, 40_000), (40_000, 20),
                                     (100_000, 100_001)])
def test_memory_pool_realloc_keeps_the_data(old, new):
    """ndarray.resize reallocates through the handler: small <-> pooled sizes both ways."""
    with pf.memory_pool():
        a = np.arange(old, dtype=np.float64)
        a.resize(new, refcheck=False)
        keep = min(old, new)
        np.testing.assert_array_equal(a[:keep], np.arange(keep, dtype=np.float64))
        assert not a[keep:].any()                     # NumPy zero-fills what grew
