"""Autoguidance of unconditional diffusion models (a weaker copy of the network, the EMA frozen at
``guide_at`` of the run, guides it: eps = eps_guide + g (eps - eps_guide)) and the guidance
defaults for images larger than 16x16: the combination against the two networks' own outputs,
the guide against the EMA a checkpoint recorded at that step, resume bit for bit across the
snapshot, early stops, weights saved without a guide, bad config values."""
from __future__ import annotations

import json

import numpy as np
import pytest

import pixelforge as pf
from pixelforge.tensor import Tensor, no_grad

IMAGES, LABELS = pf.data.load_digits()
SMALL = {"base": 8, "emb_dim": 16}


def _model(shape=(1, 8, 8), num_classes=None, **cfg):
    return pf.models.create("diffusion", shape, num_classes, **{**SMALL, **cfg})


def _fit(m, steps=6, **kw):
    return m.fit(IMAGES[:64], None, steps=steps, batch_size=8, progress=False, **kw)


def _state(module):
    return {k: np.array(v) for k, v in module.state_dict().items()}


def test_guided_output_is_the_extrapolation_from_the_guide():
    m = _model(autoguidance=2.5, guide_at=0.5)
    _fit(m)
    x = np.random.default_rng(1).standard_normal((3, 1, 8, 8)).astype(np.float32)
    t = np.array([999, 500, 3])
    got = m.predict(x, t)
    with no_grad():
        m.ema_unet.eval(), m.guide_unet.eval()
        good = np.asarray(m.ema_unet(Tensor(x), t, None).data, np.float64)
        weak = np.asarray(m.guide_unet(Tensor(x), t, None).data, np.float64)
    assert np.abs(good - weak).max() > 1e-3          # the two networks differ: the test can fail
    np.testing.assert_allclose(got, weak + 2.5 * (good - weak), rtol=1e-5, atol=1e-5)
    assert m.sample(2, steps=4).shape == (2, 1, 8, 8)


def test_the_guide_is_the_ema_at_guide_at(tmp_path):
    m = _model(autoguidance=2.0, guide_at=0.5)
    _fit(m, checkpoint_dir=tmp_path, checkpoint_every=3)
    # the step-3 checkpoint holds the EMA after 3 of the 6 steps
    (tmp_path / "ckpt-00000006.safetensors").unlink()
    _, tensors, meta = pf.models.checkpoint.latest(tmp_path)
    assert meta["step"] == 3
    ema3 = {k[len("opt.ema."):]: v for k, v in tensors.items() if k.startswith("opt.ema.")}
    guide = _state(m.guide_unet)
    assert ema3 and set(ema3) <= set(guide)
    for k, v in ema3.items():
        np.testing.assert_array_equal(guide[k], v)
    final = _state(m.ema_unet)
    assert any(not np.array_equal(final[k], guide[k]) for k in ema3)


@pytest.mark.parametrize("killed_after", [4, 8], ids=["before-the-snapshot", "after-it"])
def test_resume_across_the_snapshot_is_bit_identical(killed_after, tmp_path):
    ref = _model(autoguidance=2.0, guide_at=0.5)
    _fit(ref, steps=12)
    m = _model(autoguidance=2.0, guide_at=0.5)
    _fit(m, steps=12, checkpoint_dir=tmp_path, checkpoint_every=4)
    for p in tmp_path.glob("ckpt-*.safetensors"):
        if int(p.stem.split("-")[1]) > killed_after:
            p.unlink()
    got = _model(autoguidance=2.0, guide_at=0.5)
    _fit(got, steps=12, checkpoint_dir=tmp_path, resume=True)
    a, b = ref.state_dict(), got.state_dict()
    assert any(k.startswith("guide_unet.") for k in a) and a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    np.testing.assert_array_equal(ref.sample(3, seed=2, steps=4), got.sample(3, seed=2, steps=4))


def test_a_fit_stopped_before_guide_at_is_not_guided_by_its_initial_weights():
    m = _model(autoguidance=3.0, guide_at=0.9)
    h = _fit(m, steps=1000, max_seconds=1e-3)
    assert h["steps"] < 900
    guide, final = _state(m.guide_unet), _state(m.ema_unet)
    assert all(np.array_equal(guide[k], final[k]) for k in final)


def test_defaults_by_size_and_kind():
    big = _model((1, 28, 28))
    assert big.config["autoguidance"] == 2.0 and big.guide_unet is not None
    cond = _model((1, 28, 28), 10)
    assert cond.config["autoguidance"] == 1.0 and cond.guide_unet is None and cond.config["guidance_scale"] == 1.5
    small = _model()
    assert small.config["autoguidance"] == 1.0 and small.guide_unet is None
    assert small.config["guidance_scale"] == 1.0
    off = _model((1, 28, 28), autoguidance=1.0)
    assert off.guide_unet is None and "guide_unet.conv_in.weight" not in off.state_dict()


def test_conditional_models_sample_with_the_configured_guidance_by_default():
    m = _model((1, 28, 28), 10)
    x = np.random.default_rng(0).random((32, 1, 28, 28)).astype(np.float32)
    m.fit(x, LABELS[:32], steps=2, batch_size=8, progress=False)
    labels = [1, 2]
    np.testing.assert_array_equal(m.sample(2, labels=labels, steps=3),
                                  m.sample(2, labels=labels, steps=3, guidance_scale=1.5))
    assert not np.array_equal(m.sample(2, labels=labels, steps=3),
                              m.sample(2, labels=labels, steps=3, guidance_scale=1.0))
    # an unconditional model of the same size ignores the config's guidance_scale
    u = _model((1, 28, 28), autoguidance=1.0)
    assert u.config["guidance_scale"] == 1.5 and u.sample(1, steps=2).shape == (1, 1, 28, 28)
    with pytest.raises(ValueError, match="guidance_scale"):
        u.sample(1, steps=2, guidance_scale=1.5)


def test_weights_saved_without_a_guide_load_unguided(tmp_path):
    m = _model((1, 28, 28), autoguidance=1.0)
    m.save(tmp_path)
    # rewrite the file as a model saved before autoguidance existed: no guide keys in the config
    path = tmp_path / "model.safetensors"
    tensors, meta = pf.io.load(str(path)), pf.io.load_metadata(str(path))
    cfg = json.loads(meta["model_config"])
    del cfg["autoguidance"], cfg["guide_at"]
    pf.io.save(tensors, str(path), metadata={**meta, "model_config": json.dumps(cfg)})
    old = pf.models.load(tmp_path)
    assert old.guide_unet is None and old.config["autoguidance"] == 1.0
    np.testing.assert_array_equal(old.sample(2, seed=3, steps=3), m.sample(2, seed=3, steps=3))


@pytest.mark.parametrize("cfg, name", [({"autoguidance": -1.0}, "autoguidance"), ({"autoguidance": "2"}, "autoguidance"),
                                       ({"autoguidance": float("nan")}, "autoguidance"),
                                       ({"guide_at": 0.0}, "guide_at"), ({"guide_at": 1.0}, "guide_at"),
                                       ({"guide_at": True}, "guide_at")])
def test_bad_config_is_named(cfg, name):
    with pytest.raises(ValueError, match=name):
        _model(**cfg)
