"""Shared pytest setup: the ``gpu`` marker skips without a GPU; helpers live in opcheck.py."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))


# PIXELFORGE_TEST_FAKE_GPU=1: tests/fakecupy.py stands in for CuPy in the whole session, so the
# GPU tests that only need the device *plumbing* (families, autograd, optimizers: the ops run
# their references there) run on the CPU. test_gpu_plumbing.py runs them that way in CI; it is
# never GPU truth (no CUDA kernel runs), and the kernel tests of tests/gpu are not among them.
if os.environ.get("PIXELFORGE_TEST_FAKE_GPU") == "1":
    import fakecupy
    from pixelforge import _backend as _pf_backend
    sys.modules["cupy"] = fakecupy.fake
    for _name, _mod in fakecupy._cupyx().items():
        sys.modules[_name] = _mod
    _pf_backend.cupy = lambda: fakecupy.fake


def _gpu_present():
    from pixelforge import _backend
    if os.environ.get("PIXELFORGE_TEST_FAKE_GPU") == "1":
        return True
    return _backend.cuda_device_count() > 0 and _backend.cupy() is not None


def pytest_collection_modifyitems(config, items):
    if any("gpu" in item.keywords for item in items) and not _gpu_present():
        skip = pytest.mark.skip(reason="needs an NVIDIA GPU with CuPy")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def studio_run_dir(tmp_path_factory):
    """Four briefly trained digits runs saved as folders, as `pixelforge serve` reads them
    (gan, vae, transformer unconditional; diffusion conditional): the studio tests serve them."""
    import pixelforge as pf
    root = tmp_path_factory.mktemp("studio-runs")
    x, y = pf.data.load_digits()
    for family, steps, cond in (("gan", 20, False), ("vae", 20, False), ("transformer", 10, False),
                                ("diffusion", 40, True)):
        m = pf.models.create(family, (1, 8, 8), num_classes=10 if cond else None)
        m.fit(x, y if cond else None, steps=steps, progress=False)
        m.save(root / family)
    return root
