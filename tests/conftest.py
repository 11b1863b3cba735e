"""Shared pytest setup: the ``gpu`` marker skips without a GPU; helpers live in opcheck.py."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))


def _gpu_present():
    from pixelforge import _backend
    return _backend.cuda_device_count() > 0 and _backend.cupy() is not None


def pytest_collection_modifyitems(config, items):
    if any("gpu" in item.keywords for item in items) and not _gpu_present():
        skip = pytest.mark.skip(reason="needs an NVIDIA GPU with CuPy")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
