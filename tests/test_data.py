"""pf.data: the bundled digits and the batch iterator."""
import numpy as np
import pytest

import pixelforge as pf


def test_load_digits():
    pytest.importorskip("sklearn")
    images, labels = pf.data.load_digits()
    assert images.shape == (1797, 1, 8, 8) and images.dtype == np.float32
    assert labels.shape == (1797,) and labels.dtype == np.int64
    assert images.min() == 0.0 and images.max() == 1.0
    assert set(np.unique(labels)) == set(range(10))
    from sklearn.datasets import load_digits
    np.testing.assert_array_equal(images[:, 0] * 16, load_digits().images)


def test_batches():
    it = pf.data.batches(10, 4, seed=1)
    first = [next(it) for _ in range(2)]  # one epoch with drop_last: 2 batches of 4
    assert all(len(b) == 4 for b in first)
    assert len(set(np.concatenate(first))) == 8
    it2 = pf.data.batches(10, 4, seed=1)
    np.testing.assert_array_equal(next(it2), first[0])
    with pytest.raises(ValueError, match="batch_size"):
        next(pf.data.batches(10, 0))
