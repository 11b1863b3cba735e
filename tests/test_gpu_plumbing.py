"""The GPU tests that need only the device plumbing, run on every CI machine: tests/gpu's
families and autograd/optimizer files, in a child pytest where tests/fakecupy.py stands in for
CuPy (PIXELFORGE_TEST_FAKE_GPU=1, see conftest.py). No CUDA kernel runs here, so this is not
GPU truth; it proves those tests and the code paths they drive (device arrays through the
layers, optimizers, sampling, save/load) before a GPU does, so the first GPU run tests kernels,
not plumbing."""
import os
import re
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
FILES = ["gpu/test_families_gpu.py", "gpu/test_autograd_gpu.py"]


@pytest.mark.slow  # a child pytest of ~30 s (the sanitizer run skips it: no C++ of its own)
def test_gpu_plumbing_tests_pass_on_the_stand_in():
    pytest.importorskip("scipy")  # the stand-in's erf (GELU's reference) comes from SciPy
    env = dict(os.environ, PIXELFORGE_TEST_FAKE_GPU="1")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W",
                           "ignore:pixelforge.*falls back:RuntimeWarning",
                           *(os.path.join(HERE, f) for f in FILES)],
                          cwd=os.path.dirname(HERE), env=env, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    passed = re.search(r"(\d+) passed", out)
    assert passed and int(passed.group(1)) >= 13 and "skipped" not in out, out[-2000:]
