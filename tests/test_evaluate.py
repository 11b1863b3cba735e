"""The digit-quality judge: real held-out digits score high, noise scores nothing, the
Fréchet distance matches a closed form for Gaussians, bad input raises."""
import numpy as np
import pytest

pytest.importorskip("sklearn")
from pixelforge.models import evaluate as ev  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def fresh_cache(tmp_path_factory):
    import os
    old = os.environ.get("PIXELFORGE_CACHE")
    os.environ["PIXELFORGE_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    ev._model = None
    yield
    ev._model = None
    if old is None:
        del os.environ["PIXELFORGE_CACHE"]
    else:
        os.environ["PIXELFORGE_CACHE"] = old


def test_real_held_out_digits_score_high():
    _, _, xt, yt = ev.split()
    q = ev.quality(xt.reshape(-1, 1, 8, 8), yt)
    assert q["confident"] >= 0.9
    assert q["class_match"] >= 0.95
    assert q["entropy"] >= 0.97 and q["classes_covered"] == 10
    assert q["frechet"] < 1e-6


def test_noise_and_blank_images_score_nothing():
    g = np.random.default_rng(0)
    assert ev.quality(g.random((300, 1, 8, 8)))["confident"] < 0.05
    blank = ev.quality(np.full((300, 1, 8, 8), 0.3))
    assert blank["confident"] < 0.05 and blank["entropy"] < 0.1


def test_one_repeated_digit_has_low_entropy_and_large_distance():
    _, _, xt, yt = ev.split()
    ones = np.repeat(xt[yt == 1][:1], 200, axis=0).reshape(-1, 1, 8, 8)
    q = ev.quality(ones)
    assert q["entropy"] < 0.2
    assert q["frechet"] > 10 * ev.quality(xt[:200].reshape(-1, 1, 8, 8))["frechet"]


def test_cache_round_trip_gives_same_model():
    a = ev.classifier()
    ev._model = None
    b = ev.classifier()  # loaded from the cache file
    np.testing.assert_array_equal(a.w1, b.w1)


def test_frechet_distance_closed_form():
    g = np.random.default_rng(1)
    f1 = g.standard_normal((20000, 3))
    f2 = g.standard_normal((20000, 3)) * 2 + 1
    # N(0, I) vs N(1, 4I): |mu|^2 + tr(I + 4I - 2*2I) = 3 + 3 = 6
    assert abs(ev.frechet_distance(f1, f2) - 6.0) < 0.3


def test_bad_input():
    with pytest.raises(ValueError, match="samples"):
        ev.quality(np.zeros((10, 3, 8, 8)))
    with pytest.raises(ValueError, match="samples"):
        ev.quality(np.zeros((1, 1, 8, 8)))
    with pytest.raises(ValueError, match="labels"):
        ev.quality(np.zeros((10, 1, 8, 8)), labels=np.zeros(3))
