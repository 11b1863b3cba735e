"""Editing and previews on every family: diffusion img2img / inpaint / invert against their
definitions (a hand-written loop on pf.samplers, diffusers' RePaint order where installed, an
exactly invertible network), interpolation endpoints and slerp's norms, callbacks and early
stop, VAE img2img and transformer completion identities, the CLI, and named errors."""
from __future__ import annotations

import numpy as np
import pytest

import pixelforge as pf
from pixelforge.models.base import slerp
from pixelforge.models.diffusion_edit import repaint_schedule

IMAGES, LABELS = pf.data.load_digits()


def _trained(family, conditional=False, **cfg):
    m = pf.models.create(family, (1, 8, 8), 10 if conditional else None, **cfg)
    m.fit(IMAGES[:128], LABELS[:128] if conditional else None, steps=2, batch_size=32, progress=False)
    return m


@pytest.fixture(scope="module")
def diff():
    return _trained("diffusion", base=8)


@pytest.fixture(scope="module")
def diff_cond():
    return _trained("diffusion", conditional=True, base=8)


# ----------------------------------------------------------------------------- img2img
def test_img2img_strength_0_and_1_identities(diff):
    x = IMAGES[:5]
    assert np.array_equal(diff.img2img(x, 0.0, steps=10), x)
    assert np.array_equal(diff.img2img(x, 1.0, seed=7, steps=10), diff.sample(5, seed=7, steps=10))


def test_img2img_is_the_last_steps_from_the_noised_input(diff):
    """SDEdit by hand: noise the input to timesteps[N - int(N s)] with add_noise and the noise
    sample() starts from, then run the remaining steps of a DDIMSampler on predict()."""
    n, steps, s = 4, 10, 0.55
    x = IMAGES[10:10 + n]
    c = diff.config
    got = diff.img2img(x, s, seed=3, steps=steps)
    smp = pf.samplers.DDIMSampler(diff.schedule, clip_sample=True, set_alpha_to_one=True)
    smp.set_timesteps(steps)
    start = steps - int(steps * s)
    noise = diff._latent(n, None, np.random.default_rng(3))     # the noise sample(seed=3) draws first
    acp = diff.schedule.alphas_cumprod.astype(np.float32)
    t0 = int(smp.timesteps[start])
    xt = pf.ops.add_noise(x * 2 - 1, noise, np.full(n, t0), acp)
    for t in smp.timesteps[start:]:
        xt = smp.step(diff.predict(xt, int(t)), int(t), xt)
    want = np.clip((xt + 1) / 2, 0, 1)
    assert c["sampler"] == "ddim" and c["eta"] == 0.0
    np.testing.assert_allclose(got, want, atol=2e-5)
    assert np.abs(got - x).max() > 0.05  # it did change the images


def test_img2img_guided_and_conditional(diff_cond):
    out = diff_cond.img2img(IMAGES[:3], 0.6, labels=[1, 2, 3], guidance_scale=2.0, steps=8)
    assert out.shape == (3, 1, 8, 8) and np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


# ----------------------------------------------------------------------------- inpainting
def test_inpaint_keeps_the_unmasked_pixels_bit_identical(diff):
    x = IMAGES[:4].copy()
    mask = np.zeros((8, 8))
    mask[2:6, 2:6] = 1                       # a centre square to repaint
    out = diff.inpaint(x, mask, steps=10, jump_length=2, jump_n_sample=2)
    keep = np.broadcast_to(mask == 0, out.shape)
    assert np.array_equal(out[keep], x[keep])
    assert np.abs(out[~keep] - x[~keep]).max() > 0.05
    # per-image masks, one channel or C channels
    per = np.zeros((4, 1, 8, 8))
    per[:, :, :, 4:] = 1
    out2 = diff.inpaint(x, per, steps=5)
    assert np.array_equal(out2[..., :4], x[..., :4])


def test_repaint_schedule_matches_diffusers():
    diffusers = pytest.importorskip("diffusers")
    for steps, jl, jn in [(10, 1, 1), (20, 2, 3), (25, 5, 2), (12, 3, 1)]:
        sch = diffusers.RePaintScheduler(num_train_timesteps=1000)
        sch.set_timesteps(steps, jump_length=jl, jump_n_sample=jn)
        ratio = 1000 // steps
        # ours in diffusers' terms: position p (steps done) is timestep (N - 1 - p) * ratio before
        # step p; diffusers lists the timestep each operation moves to / starts from
        want = [int(t) for t in sch.timesteps]
        got, r = [], steps
        for op, i in repaint_schedule(steps, jl, jn):
            got.append((steps - 1 - i) * ratio if op == "step" else (steps - i) * ratio)
        assert got == want, (steps, jl, jn)


def test_repaint_schedule_counts():
    ops = repaint_schedule(20, 2, 3)
    undos = sum(op == "undo" for op, _ in ops)
    assert undos == 2 * 2 * len(range(0, 20 - 2, 2))
    assert sum(op == "step" for op, _ in ops) == 20 + undos


# ----------------------------------------------------------------------------- inversion
def test_invert_then_sample_reconstructs_with_an_exactly_invertible_network(diff):
    """With conv_out's weights zeroed the network predicts a constant noise (its bias), so each
    DDIM step is an exact affine map and inversion must undo it to float32 rounding."""
    m = pf.models.create("diffusion", (1, 8, 8), base=8, clip_sample=False)
    g = np.random.default_rng(0)
    m.ema_unet.conv_out.weight.data[...] = 0
    m.ema_unet.conv_out.bias.data[...] = g.standard_normal(1).astype(np.float32) * 0.3
    x = IMAGES[:6]
    for steps in (10, 50):
        z = m.invert(x, steps=steps)
        back = m.sample(6, init_noise=z, steps=steps, sampler="ddim")
        assert np.abs(back - x).max() < 2e-4, steps
    # a trained network: finite, and x -> z -> x closer than a fresh noise would land
    z = diff.invert(x, steps=20)
    assert np.isfinite(z).all()


# ----------------------------------------------------------------------------- interpolation
@pytest.mark.parametrize("family", ["gan", "vae", "diffusion"])
def test_interpolation_endpoints_are_the_seeds_samples(family):
    m = _trained(family, **({"base": 8} if family == "diffusion" else {}))
    kw = {"steps": 6} if family == "diffusion" else {}
    frames = m.interpolate(3, 9, 5, **kw)
    skw = {"steps": 6, "sampler": "ddim"} if family == "diffusion" else {}
    assert frames.shape == (5, 1, 8, 8)
    np.testing.assert_allclose(frames[0], m.sample(1, seed=3, **skw)[0], atol=1e-6)
    np.testing.assert_allclose(frames[-1], m.sample(1, seed=9, **skw)[0], atol=1e-6)
    assert np.abs(frames[2] - frames[0]).max() > 1e-5 and np.abs(frames[2] - frames[-1]).max() > 1e-5


def test_slerp_keeps_a_gaussian_draws_norm():
    g = np.random.default_rng(1)
    d = 4096
    a, b = g.standard_normal((1, d)), g.standard_normal((1, d))
    out = slerp(a, b, np.linspace(0, 1, 9))
    assert np.array_equal(out[0], a[0]) and np.array_equal(out[-1], b[0])
    norms = np.linalg.norm(out, axis=1) / np.sqrt(d)
    assert np.all(np.abs(norms - 1) < 0.05), norms
    lerp_mid = np.linalg.norm((a + b) / 2) / np.sqrt(d)
    assert lerp_mid < 0.8  # what slerp avoids: a linear midpoint has ~0.71 of the norm


def test_transformer_cannot_interpolate_and_says_why():
    m = pf.models.create("transformer", (1, 8, 8))
    with pytest.raises(NotImplementedError, match="continuous latent"):
        m.interpolate(1, 2, 4)


# ----------------------------------------------------------------------------- callbacks
def test_diffusion_callback_order_previews_and_early_stop(diff):
    calls = []
    full = diff.sample(3, seed=2, steps=7, callback=lambda s, t, p: calls.append((s, t, p.copy())))
    assert [c[0] for c in calls] == list(range(1, 8)) and all(c[1] == 7 for c in calls)
    assert all(c[2].shape == (3, 1, 8, 8) and c[2].min() >= 0 and c[2].max() <= 1 for c in calls)
    assert np.array_equal(full, diff.sample(3, seed=2, steps=7))   # a callback changes nothing
    seen = []

    def stop_at_3(step, total, preview):
        seen.append(step)
        return step < 3

    early = diff.sample(3, seed=2, steps=7, callback=stop_at_3)
    assert seen == [1, 2, 3]
    np.testing.assert_array_equal(early, calls[2][2])


def test_transformer_callback_previews_grey_for_undecided_pixels():
    m = pf.models.create("transformer", (1, 8, 8))
    calls = []
    out = m.sample(2, seed=1, callback=lambda s, t, p: calls.append((s, t, p.copy())))
    assert len(calls) == 64 and calls[0][:2] == (1, 64)
    p10 = calls[9][2].reshape(2, -1)
    assert np.all(p10[:, 10:] == 0.5)
    np.testing.assert_array_equal(p10[:, :10], out.reshape(2, -1)[:, :10])
    stopped = m.sample(2, seed=1, callback=lambda s, t, p: s < 5)
    assert np.all(stopped.reshape(2, -1)[:, 5:] == 0.5)


@pytest.mark.parametrize("family", ["gan", "vae"])
def test_one_shot_families_call_back_once_with_the_result(family):
    m = pf.models.create(family, (1, 8, 8))
    calls = []
    out = m.sample(4, seed=0, callback=lambda s, t, p: calls.append((s, t, p)))
    assert len(calls) == 1 and calls[0][:2] == (1, 1) and np.array_equal(calls[0][2], out)


# ----------------------------------------------------------------------------- VAE and transformer
def test_vae_img2img_identities():
    m = _trained("vae")
    x = IMAGES[:4]
    np.testing.assert_array_equal(m.img2img(x, 1.0, seed=5), m.sample(4, seed=5))
    np.testing.assert_allclose(m.img2img(x, 0.0), m.reconstruct(x), atol=1e-6)
    mid = m.img2img(x, 0.5, seed=5)
    assert mid.shape == x.shape and 0 <= mid.min() and mid.max() <= 1


def test_transformer_complete_keeps_rows_and_rows_0_is_sample():
    m = _trained("transformer")
    x = IMAGES[:3]
    np.testing.assert_array_equal(m.complete(x, 0, seed=4), m.sample(3, seed=4))
    out = m.complete(x, 3, seed=4)
    np.testing.assert_array_equal(out[:, :, :3], np.rint(x[:, :, :3] * 16) / 16)
    with pytest.raises(ValueError, match="known_rows"):
        m.complete(x, 9)


# ----------------------------------------------------------------------------- errors
def test_errors_name_the_argument(diff, tmp_path):
    x = IMAGES[:2]
    with pytest.raises(ValueError, match="strength"):
        diff.img2img(x, 1.5)
    with pytest.raises(ValueError, match="strength"):
        diff.img2img(x, -0.1)
    with pytest.raises(ValueError, match="images"):
        diff.img2img(np.zeros((2, 3, 8, 8), np.float32), 0.5)
    with pytest.raises(ValueError, match="mask"):
        diff.inpaint(x, np.zeros((7, 8)))
    with pytest.raises(ValueError, match="mask"):
        diff.inpaint(x, np.full((8, 8), 0.5))
    with pytest.raises(ValueError, match="jump_length"):
        diff.inpaint(x, np.zeros((8, 8)), jump_length=0)
    with pytest.raises(TypeError, match="callback"):
        diff.sample(2, callback=3)
    with pytest.raises(ValueError, match="guidance_scale"):
        diff.img2img(x, 0.5, guidance_scale=3.0)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match="bad.png"):
        pf.io.load_image(bad, (1, 8, 8))
    with pytest.raises(ValueError, match="bad.png"):
        pf.io.load_mask(bad, (1, 8, 8))


# ----------------------------------------------------------------------------- CLI
def test_cli_edit_interpolate_complete(tmp_path, diff):
    from PIL import Image

    from pixelforge import cli

    run = tmp_path / "d"
    diff.save(run)
    t = _trained("transformer")
    trun = tmp_path / "t"
    t.save(trun)
    Image.fromarray((np.random.default_rng(0).random((30, 20, 3)) * 255).astype(np.uint8)).save(tmp_path / "in.png")
    mask = np.zeros((16, 16), np.uint8)
    mask[:, 8:] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    for argv in (["edit", str(run), "--input", str(tmp_path / "in.png"), "--out", str(tmp_path / "e.png"),
                  "--strength", "0.5", "--steps", "6"],
                 ["edit", str(run), "--input", str(tmp_path / "in.png"), "--mask", str(tmp_path / "mask.png"),
                  "--out", str(tmp_path / "i.png"), "--steps", "6"],
                 ["interpolate", str(run), "--seeds", "1", "2", "--frames", "4", "--out", str(tmp_path / "s.gif"),
                  "--steps", "4"],
                 ["complete", str(trun), "--input", str(tmp_path / "in.png"), "--rows", "3",
                  "--out", str(tmp_path / "c.png")]):
        assert cli.main(argv) == 0, argv
    with Image.open(tmp_path / "s.gif") as gif:
        assert gif.n_frames == 4
    with Image.open(tmp_path / "i.png") as im:
        assert im.size == (32, 32)
    # inpainting from the CLI keeps the black half of the mask: the input's pixels there
    want = pf.io.load_image(tmp_path / "in.png", (1, 8, 8))[0, 0, :, :4]
    got = np.asarray(Image.open(tmp_path / "i.png"), np.float32)[::4, ::4][:, :4] / 255
    np.testing.assert_allclose(got, want, atol=1 / 255 + 1e-6)
    (tmp_path / "bad.png").write_bytes(b"nope")
    assert cli.main(["edit", str(run), "--input", str(tmp_path / "bad.png"), "--out", str(tmp_path / "x.png")]) == 2
    assert cli.main(["edit", str(trun), "--input", str(tmp_path / "in.png"), "--out", str(tmp_path / "x.png")]) == 2
    assert cli.main(["interpolate", str(trun), "--seeds", "1", "2", "--out", str(tmp_path / "x.png")]) == 2
