"""The Fashion-MNIST / emoji judge (models/fashion_judge.py) and the families' size rules:
closed forms for the blur, total variation and nearest distances, the judge trained end to end
on a small IDX set written here (and its real figures where Debian's dataset-fashion-mnist is
installed), `pixelforge eval` choosing the judge by shape, k-means and the transformer's patch
tokens, and how many stages each family builds per resolution."""
from __future__ import annotations

import json

import numpy as np
import pytest

import pixelforge as pf
from pixelforge.data import fashion_mnist as fm
from pixelforge.models import evaluate
from pixelforge.models import fashion_judge as fj
from pixelforge.models.base import halvings
from pixelforge.models.transformer import kmeans

from test_data_real import _write_set


# ----------------------------------------------------------------------------- closed forms
def test_gaussian_blur_closed_form():
    x = np.zeros((1, 1, 15, 15), np.float32)
    x[0, 0, 7, 7] = 1.0
    out = fj.gaussian_blur(x, 1.0)[0, 0]
    k = np.exp(-0.5 * np.arange(-3, 4) ** 2)
    k /= k.sum()
    np.testing.assert_allclose(out[4:11, 4:11], np.outer(k, k), rtol=1e-5, atol=1e-7)
    assert out.sum() == pytest.approx(1.0, abs=1e-6)
    const = np.full((2, 3, 9, 9), 0.3, np.float32)
    np.testing.assert_allclose(fj.gaussian_blur(const), const, rtol=1e-6)


def test_total_variation_closed_form():
    x = np.zeros((2, 1, 4, 4), np.float32)
    x[1, 0, :, ::2] = 1.0  # vertical stripes: every horizontal step changes by 1, no vertical one
    tv = fj.total_variation(x)
    assert tv[0] == 0.0
    assert tv[1] == pytest.approx((1.0 + 0.0) / 2)


def test_nearest_distance_against_brute_force():
    g = np.random.default_rng(0)
    a, b = g.random((7, 3, 4, 4)), g.random((11, 3, 4, 4))
    want = [min(np.sqrt(((ai - bj) ** 2).mean()) for bj in b) for ai in a]
    np.testing.assert_allclose(fj.nearest_distance(a, b), want, rtol=1e-9)
    self_want = [min(np.sqrt(((b[i] - b[j]) ** 2).mean()) for j in range(len(b)) if j != i) for i in range(len(b))]
    np.testing.assert_allclose(fj.nearest_distance(b, b, exclude_self=True), self_want, rtol=1e-7)


# ----------------------------------------------------------------------------- the judge, small
@pytest.fixture
def tiny_fashion(tmp_path, monkeypatch):
    """A 300-image IDX set whose classes are bright bars at class-dependent rows, a fresh cache."""
    g = np.random.default_rng(0)
    _write_set(tmp_path / "fashion-mnist", n_train=2, n_test=2)
    import gzip
    from test_data_real import _idx

    def images(n):
        y = g.integers(0, 10, n).astype(np.uint8)
        x = (g.random((n, 28, 28)) * 40).astype(np.uint8)
        for i, c in enumerate(y):
            x[i, 2 + 2 * c:4 + 2 * c, 4:24] = 255
        return x, y
    for stem, n in (("train", 300), ("t10k", 100)):
        x, y = images(n)
        (tmp_path / "fashion-mnist" / f"{stem}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(x)))
        (tmp_path / "fashion-mnist" / f"{stem}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(y)))
    monkeypatch.setenv("PIXELFORGE_DATA", str(tmp_path))
    monkeypatch.setenv("PIXELFORGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(fj, "_model", None)
    monkeypatch.setattr(fj, "_memo", {})
    real = fj.train_classifier
    monkeypatch.setattr(fj, "train_classifier", lambda **kw: real(epochs=6, batch=32, **kw))
    return tmp_path


def test_judge_trains_caches_and_scores(tiny_fashion):
    clf = fj.classifier()
    assert (tiny_fashion / "cache" / f"fashion_classifier_v{fj._VERSION}.safetensors").exists()
    info = fj.judge_info()
    assert info["test_accuracy"] > 0.9  # the bars are easy to tell apart
    x, y = pf.data.load_fashion_mnist("test")
    q = fj.quality(x, y)
    assert q["class_match"] == pytest.approx(float((clf.probabilities(x)[:, :10].argmax(1) == y).mean()))
    assert q["frechet"] < 1e-6 + fj.frechet_distance(fj._test_set()["features"], clf.features(x)) + 1e-6
    noise = np.random.default_rng(1).random((100, 1, 28, 28)).astype(np.float32)
    assert fj.quality(noise)["broken"] > 0.9
    refs = fj.references(n=100)
    assert refs["B"]["frechet"] > refs["R"]["frechet"]
    # a second process reads the cache: the same weights
    fj._model = None
    again = fj.classifier()
    np.testing.assert_array_equal(again.fc2.weight.data, clf.fc2.weight.data)


def test_judge_errors(tiny_fashion):
    with pytest.raises(ValueError, match="samples"):
        fj.quality(np.zeros((5, 1, 8, 8), np.float32))
    with pytest.raises(ValueError, match="samples"):
        fj.quality(np.zeros((1, 1, 28, 28), np.float32))
    with pytest.raises(ValueError, match="labels"):
        fj.quality(np.zeros((4, 1, 28, 28), np.float32), labels=[1, 2])
    with pytest.raises(ValueError, match="samples"):
        fj.quality_emoji(np.zeros((4, 1, 32, 32), np.float32), np.zeros((4, 3, 32, 32), np.float32))
    with pytest.raises(ValueError, match="data"):
        evaluate.judge_for((1, 28, 28), "cifar")
    with pytest.raises(ValueError, match="no judge"):
        evaluate.judge_for((1, 16, 16))
    assert evaluate.judge_for((1, 28, 28)) == "fashion-mnist" and evaluate.judge_for((3, 32, 32)) == "emoji"


def test_cli_eval_uses_the_judge_of_the_run(tiny_fashion, capsys):
    from pixelforge import cli
    run = tiny_fashion / "run"
    assert cli.main(["train", "vae", "--data", "fashion-mnist", "--out", str(run), "--steps", "3", "--quiet",
                     "--conditional"]) == 0
    capsys.readouterr()
    assert cli.main(["eval", str(run), "--n", "40", "--json"]) == 0
    q = json.loads(capsys.readouterr().out)
    assert q["n"] == 40 and {"confident", "entropy", "class_match", "frechet", "broken"} <= set(q)
    assert set(q["references"]) == {"R", "B", "judge_accuracy"} and q["references"]["R"]["n"] == 40
    assert cli.main(["eval", str(run), "--n", "20"]) == 0
    text = capsys.readouterr().out
    assert "R (real)" in text and "B (blur)" in text and "fashion-mnist judge" in text


def test_emoji_quality_detects_copies(tiny_fashion):
    g = np.random.default_rng(0)
    train = g.random((30, 3, 32, 32)).astype(np.float32)
    copies = fj.quality_emoji(train[:10], train)
    fresh = fj.quality_emoji(g.random((10, 3, 32, 32)).astype(np.float32), train)
    assert copies["nearest"] < 1e-6 < fresh["nearest"]
    assert fresh["nearest_train"] > 0 and copies["frechet"] >= 0


@pytest.mark.slow
@pytest.mark.skipif(not any(p.exists() for p in fm._candidates(None)) or not fm._candidates(None)[-1].exists(),
                    reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
def test_real_judge_figures():
    """On the real set: accuracy ~0.90, and blurred images score clearly worse than real ones."""
    info = fj.judge_info()
    assert info["test_accuracy"] > 0.88
    refs = fj.references(n=1000)
    r, b = refs["R"], refs["B"]
    assert r["confident"] > b["confident"] and r["frechet"] * 4 < b["frechet"]
    assert r["entropy"] > 0.98 and r["broken"] <= 0.005


# ----------------------------------------------------------------------------- sizes and tokens
@pytest.mark.parametrize("hw,k", [((8, 8), 2), ((16, 16), 2), ((28, 28), 2), ((32, 32), 3), ((64, 64), 4),
                                  ((12, 20), 2), ((32, 64), 3)])
def test_halvings(hw, k):
    assert halvings(*hw) == k
    assert hw[0] >> k >= 2 and (hw[0] >> k) << k == hw[0] and (hw[1] >> k) << k == hw[1]


@pytest.mark.parametrize("shape,levels", [((1, 8, 8), 2), ((1, 28, 28), 3), ((3, 32, 32), 3), ((1, 16, 16), 2)])
def test_default_unet_levels_follow_the_size(shape, levels):
    cfg = pf.models.create("diffusion", shape).unet_config()
    assert len(cfg["block_out_channels"]) == levels
    assert shape[1] >> (levels - 1) in (4, 7, 8)  # the mid block's (attention's) resolution


@pytest.mark.parametrize("shape,stages", [((1, 8, 8), 2), ((1, 28, 28), 2), ((3, 32, 32), 3)])
def test_gan_and_vae_stages_follow_the_size(shape, stages):
    gan = pf.models.create("gan", shape)
    vae = pf.models.create("vae", shape)
    assert gan.G.k == gan.D.k == vae.enc.k == vae.dec.k == stages
    assert f"up{stages}.weight" in dict(gan.G.named_parameters()) and f"up{stages + 1}.weight" not in \
        dict(gan.G.named_parameters())


def test_kmeans_recovers_separated_centres():
    g = np.random.default_rng(0)
    true = np.array([[0, 0], [5, 5], [0, 5], [5, 0]], np.float64)
    pts = np.concatenate([c + 0.1 * g.standard_normal((200, 2)) for c in true])
    got = kmeans(pts, 4, seed=3)
    order = np.lexsort(np.round(got).T[::-1])
    np.testing.assert_allclose(got[order], true[np.lexsort(true.T[::-1])], atol=0.05)
    np.testing.assert_array_equal(kmeans(pts, 4, seed=3), got)  # deterministic


def test_transformer_patch_tokens_round_trip_and_complete():
    g = np.random.default_rng(0)
    m = pf.models.create("transformer", (3, 32, 32), levels=16, d_model=16, layers=1, heads=2)
    assert m.patch == 2 and m.seq_len == 256
    x = g.random((6, 3, 32, 32)).astype(np.float32)
    m.fit(x, steps=1, batch_size=4, progress=False)
    cb = m.net.codebook
    tok = m._tokens(x)
    # each token is the nearest code of its 2x2x3 patch (float64 brute force)
    patch = x[:, :, 2:4, 4:6].reshape(6, -1)  # token (row 1, col 2) = index 1 * 16 + 2
    want = ((patch[:, None, :].astype(np.float64) - cb[None]) ** 2).sum(-1).argmin(1)
    np.testing.assert_array_equal(tok[:, 18], want)
    rec = m._images(tok)
    np.testing.assert_array_equal(rec[:, :, 2:4, 4:6].reshape(6, -1), cb[tok[:, 18]])
    out = m.complete(x[:2], 5, seed=0)  # rounded down to 2 patch rows = 4 pixel rows
    np.testing.assert_array_equal(out[:, :, :4], np.clip(rec[:2, :, :4], 0, 1))
    assert pf.models.create("transformer", (1, 8, 8)).patch == 1
    with pytest.raises(ValueError, match="patch"):
        pf.models.create("transformer", (1, 28, 28), patch=3)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_min_snr_weighting_closed_form(prediction_type):
    """snr_gamma: the loss is mean_n(w_n * mean_pixels((pred - target)^2)) with w = min(SNR, g)
    / SNR (epsilon) or / (SNR + 1) (v), recomputed here in float64 from the same draws."""
    from pixelforge import ops
    from pixelforge.tensor import Tensor, no_grad
    g = np.random.default_rng(0)
    x = g.random((6, 1, 8, 8)).astype(np.float32)
    m = pf.models.create("diffusion", (1, 8, 8), snr_gamma=2.0, lr=0.0, prediction_type=prediction_type)
    got = float(m._train_step(x, None, np.random.default_rng(5), 0, 10)["loss"])
    rng = np.random.default_rng(5)
    t = rng.integers(0, 1000, 6)
    noise = m._randn(x.shape, rng)
    x0 = x * 2 - 1
    xt = ops.add_noise(x0, noise, t, m._acp)
    target = noise if prediction_type == "epsilon" else ops.get_velocity(x0, noise, t, m._acp)
    with no_grad():
        pred = m.unet(Tensor(xt), t).data.astype(np.float64)
    acp = m._acp[t].astype(np.float64)
    snr = acp / (1 - acp)
    w = np.minimum(snr, 2.0) / (snr if prediction_type == "epsilon" else snr + 1)
    want = (w * ((pred - target) ** 2).mean(axis=(1, 2, 3))).mean()
    assert got == pytest.approx(want, rel=1e-4)


def test_size_defaults_and_overrides():
    tf = pf.models.create("transformer", (1, 28, 28))
    assert (tf.patch, tf.levels, tf.config["temperature"], tf.default_steps) == (2, 256, 1.0, 1500)
    assert pf.models.create("transformer", (3, 32, 32)).levels == 512
    assert pf.models.create("transformer", (1, 28, 28), patch=1, levels=8).seq_len == 784  # config wins
    assert pf.models.create("transformer", (1, 8, 8)).config["temperature"] == 0.9  # digits unchanged
    gan = pf.models.create("gan", (1, 8, 8))
    assert gan.default_steps == type(gan).DEFAULT_STEPS and gan.default_steps != type(gan).LARGE_STEPS
    nosn = pf.models.create("gan", (1, 28, 28), spectral_norm=False)
    nosn.fit(np.random.default_rng(0).random((8, 1, 28, 28)).astype(np.float32), steps=1, batch_size=4,
             progress=False)
    assert not nosn.D.c1.enabled
