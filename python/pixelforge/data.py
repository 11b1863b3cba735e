"""Datasets. ``load_digits``: scikit-learn's bundled 8x8 handwritten digits (no network)."""
from __future__ import annotations

import numpy as np

__all__ = ["load_digits", "batches"]


def load_digits():
    """The 1797 UCI digits as images float32 (1797, 1, 8, 8) in [0, 1] (grey levels 0..16 / 16)
    and labels int64 (1797,) in 0..9. Needs scikit-learn (reads its bundled copy)."""
    try:
        from sklearn.datasets import load_digits as sk_load  # noqa: PLC0415
    except ImportError as e:
        raise ImportError("pixelforge.data.load_digits needs scikit-learn (pip install scikit-learn)") from e
    d = sk_load()
    images = (np.asarray(d.images, np.float32) / np.float32(16.0)).reshape(-1, 1, 8, 8)
    return np.ascontiguousarray(images), np.asarray(d.target, np.int64)


def batches(n, batch_size, *, seed=0, drop_last=True):
    """Endless shuffled index batches over ``range(n)`` (a new permutation each epoch)."""
    if batch_size < 1 or n < 1:
        raise ValueError(f"batch_size/n: expected >= 1, got {batch_size}, {n}")
    rng = np.random.default_rng(seed)
    while True:
        perm = rng.permutation(n)
        stop = n - batch_size + 1 if drop_last and n >= batch_size else n
        for i in range(0, stop, batch_size):
            yield perm[i:i + batch_size]
