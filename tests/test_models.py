"""The four generator families: a few training steps, sample shape/dtype/range, same seed same
bits, save/load identical samples, conditional labels, and bad input."""
import numpy as np
import pytest

import pixelforge as pf

FAMILIES = ["gan", "vae", "transformer", "diffusion"]
SAMPLE_KW = {"diffusion": {"steps": 3}}


@pytest.fixture(scope="module")
def digits():
    pytest.importorskip("sklearn")
    return pf.data.load_digits()


@pytest.mark.parametrize("family", FAMILIES)
def test_train_sample_save_load(family, digits, tmp_path):
    x, _ = digits
    m = pf.models.create(family, (1, 8, 8))
    hist = m.fit(x[:256], steps=3, batch_size=32, progress=False)
    losses = [k for k, v in hist.items() if isinstance(v, list)]
    assert losses and all(len(hist[k]) == 3 and np.isfinite(hist[k]).all() for k in losses)
    s = m.sample(6, seed=3, **SAMPLE_KW.get(family, {}))
    assert s.shape == (6, 1, 8, 8) and s.dtype == np.float32
    assert s.min() >= 0 and s.max() <= 1 and np.isfinite(s).all()
    np.testing.assert_array_equal(s, m.sample(6, seed=3, **SAMPLE_KW.get(family, {})))
    assert not np.array_equal(s, m.sample(6, seed=4, **SAMPLE_KW.get(family, {})))
    m.save(tmp_path / "run")
    m2 = pf.models.load(tmp_path / "run")
    assert type(m2) is type(m) and m2.config == m.config and m2.steps_trained == 3
    np.testing.assert_array_equal(m2.sample(6, seed=3, **SAMPLE_KW.get(family, {})), s)
    assert m.sample(0).shape == (0, 1, 8, 8)


@pytest.mark.parametrize("family", FAMILIES)
def test_conditional(family, digits):
    x, y = digits
    m = pf.models.create(family, (1, 8, 8), num_classes=10)
    m.fit(x[:128], y[:128], steps=2, batch_size=16, progress=False)
    s = m.sample(4, seed=0, labels=np.array([0, 1, 2, 3]), **SAMPLE_KW.get(family, {}))
    assert s.shape == (4, 1, 8, 8)
    with pytest.raises(ValueError, match="labels"):
        m.sample(2, labels=np.array([0, 10]))
    with pytest.raises(ValueError, match="labels"):
        m.sample(2, labels=np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="labels"):
        m.fit(x[:8], steps=1, progress=False)  # conditional model without labels


def test_training_reduces_the_loss(digits):
    x, _ = digits
    m = pf.models.create("vae", (1, 8, 8))
    h = m.fit(x, steps=60, batch_size=64, progress=False)
    assert np.mean(h["recon"][-10:]) < 0.8 * np.mean(h["recon"][:5])


def test_other_image_shapes():
    m = pf.models.create("diffusion", (3, 12, 12), base=16)
    x = np.random.default_rng(0).random((10, 3, 12, 12)).astype(np.float32)
    m.fit(x, steps=1, batch_size=4, progress=False)
    assert m.sample(2, steps=2).shape == (2, 3, 12, 12)


def test_bad_input(digits, tmp_path):
    x, y = digits
    with pytest.raises(ValueError, match="family"):
        pf.models.create("flow")
    with pytest.raises(TypeError, match="family"):
        pf.models.create(3)
    with pytest.raises(ValueError, match="config"):
        pf.models.create("gan", z_dimm=3)
    with pytest.raises(ValueError, match="image_shape"):
        pf.models.create("gan", (1, 8))
    with pytest.raises(ValueError, match="num_classes"):
        pf.models.create("gan", num_classes=1)
    m = pf.models.create("vae")
    with pytest.raises(ValueError, match="images"):
        m.fit(np.zeros((4, 1, 7, 8), np.float32), steps=1, progress=False)
    with pytest.raises(ValueError, match="images"):
        m.fit(x * 2, steps=1, progress=False)
    with pytest.raises(ValueError, match="labels"):
        m.fit(x, y, steps=1, progress=False)  # labels given to an unconditional model
    with pytest.raises(ValueError, match="n"):
        m.sample(-1)
    with pytest.raises(ValueError, match="steps"):
        m.fit(x, steps=-2, progress=False)
    with pytest.raises(FileNotFoundError, match="directory"):
        pf.models.load(tmp_path / "missing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.safetensors").write_bytes(b"\x10\x00\x00\x00not a checkpoint")
    with pytest.raises(Exception):
        pf.models.load(tmp_path / "bad")


def test_max_seconds_stops_training_early(digits):
    x, _ = digits
    m = pf.models.create("vae", (1, 8, 8))
    h = m.fit(x, steps=100000, batch_size=16, max_seconds=0.5, progress=False)
    assert 1 <= h["steps"] < 100000 and m.steps_trained == h["steps"]
    assert len(h["loss"]) == h["steps"]
    with pytest.raises(ValueError, match="max_seconds"):
        m.fit(x, steps=1, max_seconds=0, progress=False)


def test_vae_mixture_prior_recovers_a_known_mixture():
    from pixelforge.models.vae import MixturePrior
    rng = np.random.default_rng(3)
    true_means = np.array([[-4.0, 0.0, 1.0], [4.0, 1.0, -1.0]])
    scales = np.array([0.5, 1.5])
    comp = rng.integers(0, 2, 4000)
    z = true_means[comp] + scales[comp, None] * rng.standard_normal((4000, 3))
    prior = MixturePrior(1, 2, 3)
    prior.fit(z, np.zeros(len(z), np.int64))
    order = np.argsort(prior.means[0, :, 0])
    np.testing.assert_allclose(prior.means[0, order], true_means, atol=0.1)
    covs = prior.chol[0] @ prior.chol[0].transpose(0, 2, 1)
    np.testing.assert_allclose(covs[order], scales[:, None, None] ** 2 * np.eye(3), atol=0.15)
    np.testing.assert_allclose(prior.weights[0, order], [0.5, 0.5], atol=0.03)
    draws = prior.sample(20000, np.zeros(20000, np.int64), np.random.default_rng(0))
    assert abs(draws[:, 0].mean() - z[:, 0].mean()) < 0.1 and abs(draws[:, 0].std() - z[:, 0].std()) < 0.1


def test_vae_prior_choice_is_checked_and_saved(tmp_path):
    with pytest.raises(ValueError, match="prior"):
        pf.models.create("vae", (1, 8, 8), prior="flow")
    x, _ = pf.data.load_digits()
    m = pf.models.create("vae", (1, 8, 8), ch=16, z_dim=4)
    m.fit(x[:64], steps=2, progress=False)
    assert not np.allclose(m.prior.means, 0)  # fitted to the encodings
    m.save(tmp_path)
    np.testing.assert_array_equal(pf.models.load(tmp_path).sample(9, seed=1), m.sample(9, seed=1))
