"""diffusers' folder format both ways: pf.models.load_diffusers and Diffusion.save_diffusers.

Against diffusers where installed: a folder pixelforge writes loads in DiffusionPipeline and
its UNet predicts what pixelforge predicts; a pipeline diffusers writes loads here, and DDIM and
DDPM loops from the same initial noise (DDPM: the same step noise) give diffusers' images. Without
diffusers: pixelforge's own round trip, float16 weights, old attention names and the errors."""
import json

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import pixelforge as pf

UNET = dict(block_out_channels=(16, 32), down_block_types=("DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=8, attention_head_dim=8)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small conditional-free model trained a few steps by pixelforge, and its export."""
    x, _ = pf.data.load_digits()
    m = pf.models.create("diffusion", (1, 8, 8), unet=UNET, sample_steps=10)
    m.fit(x[:128], steps=4, batch_size=16, progress=False)
    path = tmp_path_factory.mktemp("export") / "pipe"
    m.save_diffusers(path)
    return m, path


def _weights(path):
    return path / "unet" / "diffusion_pytorch_model.safetensors"


def test_export_layout_and_pixelforge_round_trip(trained):
    m, path = trained
    idx = json.loads((path / "model_index.json").read_text())
    assert idx["_class_name"] == "DDIMPipeline" and idx["unet"] == ["diffusers", "UNet2DModel"]
    cfg = json.loads((path / "unet" / "config.json").read_text())
    assert cfg["_class_name"] == "UNet2DModel" and cfg["block_out_channels"] == [16, 32] and cfg["sample_size"] == 8
    sched = json.loads((path / "scheduler" / "scheduler_config.json").read_text())
    assert sched["_class_name"] == "DDIMScheduler" and sched["num_train_timesteps"] == 1000
    state = load_file(str(_weights(path)))
    ema = m.ema_unet.state_dict()
    assert set(state) == set(ema)
    for k, v in state.items():
        np.testing.assert_array_equal(v, ema[k])
    m2 = pf.models.load_diffusers(path)
    assert m2.image_shape == (1, 8, 8) and not m2.conditional
    g = np.random.default_rng(0)
    x = g.standard_normal((3, 1, 8, 8)).astype(np.float32)
    t = np.array([0, 321, 999])
    np.testing.assert_array_equal(m2.predict(x, t), m.predict(x, t))
    np.testing.assert_array_equal(m2.sample(3, seed=5, steps=10), m.sample(3, seed=5))
    # the loaded model trains on (its EMA starts from the loaded weights)
    xs, _ = pf.data.load_digits()
    m2.fit(xs[:64], steps=1, batch_size=16, progress=False)


def test_diffusers_loads_our_export_and_predicts_the_same(trained):
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    m, path = trained
    pipe = diffusers.DiffusionPipeline.from_pretrained(str(path))
    assert type(pipe).__name__ == "DDIMPipeline" and type(pipe.scheduler).__name__ == "DDIMScheduler"
    g = np.random.default_rng(1)
    x = g.standard_normal((4, 1, 8, 8)).astype(np.float32)
    t = np.array([1, 50, 500, 999])
    with torch.no_grad():
        want = pipe.unet(torch.from_numpy(x), torch.from_numpy(t)).sample.numpy()
    got = m.predict(x, t)
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


def _diffusers_pipeline(tmp_path, scheduler_kind, **sched_kw):
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(sample_size=8, in_channels=1, out_channels=1, **UNET)
    with torch.no_grad():  # away from the zero-initialised defaults, so every weight matters
        for p in unet.parameters():
            p.add_(0.05 * torch.randn_like(p))
    cls = getattr(diffusers, scheduler_kind)
    sched = cls(**sched_kw)
    pipe = (diffusers.DDIMPipeline if scheduler_kind == "DDIMScheduler" else diffusers.DDPMPipeline)(unet, sched)
    pipe.save_pretrained(str(tmp_path / "pipe"))
    return torch, unet, cls, tmp_path / "pipe"


def test_ddim_loop_matches_diffusers(tmp_path):
    torch, unet, cls, path = _diffusers_pipeline(tmp_path, "DDIMScheduler", steps_offset=1,
                                                 set_alpha_to_one=False, beta_schedule="scaled_linear",
                                                 beta_start=0.0008, beta_end=0.012)
    m = pf.models.load_diffusers(path)
    assert m.config["sampler"] == "ddim" and m.config["steps_offset"] == 1
    noise = np.random.default_rng(2).standard_normal((3, 1, 8, 8)).astype(np.float32)
    sched = cls.from_pretrained(str(path / "scheduler"))
    sched.set_timesteps(20)

    def diffusers_images(dtype):
        net = unet.to(dtype)
        x = torch.from_numpy(noise).to(dtype)
        with torch.no_grad():
            for t in sched.timesteps:
                x = sched.step(net(x, t).sample, t, x).prev_sample
        return (x / 2 + 0.5).clamp(0, 1).double().numpy()

    want, truth = diffusers_images(torch.float32), diffusers_images(torch.float64)
    got = m.sample(3, steps=20, init_noise=noise)
    # 20 steps through a random UNet amplify float32 rounding (diffusers' own float32 run is
    # ~1e-4 from its float64 run here): ours must be as close to the float64 truth as diffusers'
    own = np.abs(want - truth).max()
    assert np.abs(got - truth).max() <= 3 * own + 1e-6, (np.abs(got - truth).max(), own)
    np.testing.assert_allclose(got, want, atol=1e-3)


def test_ddpm_loop_with_the_same_noise_matches_diffusers(tmp_path):
    torch, unet, cls, path = _diffusers_pipeline(tmp_path, "DDPMScheduler", timestep_spacing="trailing")
    m = pf.models.load_diffusers(path)
    assert m.config["sampler"] == "ddpm" and m.config["timestep_spacing"] == "trailing"
    x0 = np.random.default_rng(3).standard_normal((2, 1, 8, 8)).astype(np.float32)
    sched = cls.from_pretrained(str(path / "scheduler"))
    sched.set_timesteps(25)
    ours = m._sampler("ddpm", clip=True)
    ours.set_timesteps(25)
    np.testing.assert_array_equal(ours.timesteps, sched.timesteps.numpy())
    g_ref, g_ours = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    x, y = torch.from_numpy(x0), x0
    with torch.no_grad():
        for t in sched.timesteps:
            x = sched.step(unet(x, t).sample, t, x, generator=g_ref).prev_sample
            noise = torch.randn(y.shape, generator=g_ours).numpy() if int(t) > 0 else None
            y = ours.step(m.predict(y, int(t)), int(t), y, noise=noise)
    np.testing.assert_allclose(y, x.numpy(), atol=5e-5)


def test_float16_weights_and_old_attention_names(trained, tmp_path):
    m, path = trained
    state = load_file(str(_weights(path)))
    renamed = {}
    for k, v in state.items():
        for new, old in (("to_q", "query"), ("to_k", "key"), ("to_v", "value"), ("to_out.0", "proj_attn")):
            k = k.replace(f".{new}.", f".{old}.")
        renamed[k] = v.astype(np.float16)
    folder = tmp_path / "unet16"
    folder.mkdir()
    (folder / "config.json").write_text((path / "unet" / "config.json").read_text())
    save_file(renamed, str(folder / "diffusion_pytorch_model.fp16.safetensors"))
    m16 = pf.models.load_diffusers(folder)
    for k, v in m16.ema_unet.state_dict().items():
        assert v.dtype == np.float32
        np.testing.assert_array_equal(v, state[k].astype(np.float16).astype(np.float32))


def _copy_unet(path, dst):
    dst.mkdir()
    (dst / "config.json").write_text((path / "unet" / "config.json").read_text())
    return dst


def test_errors_name_the_file_or_tensor(trained, tmp_path):
    m, path = trained
    with pytest.raises(FileNotFoundError, match="not a folder"):
        pf.models.load_diffusers(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        pf.models.load_diffusers(tmp_path / "empty")
    d = _copy_unet(path, tmp_path / "noweights")
    with pytest.raises(FileNotFoundError, match="diffusion_pytorch_model.safetensors"):
        pf.models.load_diffusers(d)
    (d / "diffusion_pytorch_model.bin").write_bytes(b"\x80\x02}q\x00.")  # a pickle: never opened
    with pytest.raises(ValueError, match="safetensors"):
        pf.models.load_diffusers(d)
    data = _weights(path).read_bytes()
    d = _copy_unet(path, tmp_path / "truncated")
    (d / "diffusion_pytorch_model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        pf.models.load_diffusers(d)
    state = load_file(str(_weights(path)))
    d = _copy_unet(path, tmp_path / "missing")
    save_file({k: v for k, v in state.items() if k != "conv_out.weight"}, str(d / "diffusion_pytorch_model.safetensors"))
    with pytest.raises(ValueError, match="conv_out.weight"):
        pf.models.load_diffusers(d)
    d = _copy_unet(path, tmp_path / "shape")
    bad = dict(state)
    bad["conv_in.bias"] = np.zeros(3, np.float32)
    save_file(bad, str(d / "diffusion_pytorch_model.safetensors"))
    with pytest.raises(ValueError, match="conv_in.bias"):
        pf.models.load_diffusers(d)
    d = _copy_unet(path, tmp_path / "badkey")
    cfg = json.loads((d / "config.json").read_text())
    cfg["cross_attention_dim"] = 64
    (d / "config.json").write_text(json.dumps(cfg))
    save_file(state, str(d / "diffusion_pytorch_model.safetensors"))
    with pytest.raises(ValueError, match="cross_attention_dim"):
        pf.models.load_diffusers(d)
    sched = path / "scheduler" / "scheduler_config.json"
    original = sched.read_text()
    try:
        for patch, word in ((dict(_class_name="PNDMScheduler"), "PNDMScheduler"),
                            (dict(variance_type="learned"), "variance_type"),
                            (dict(thresholding=True), "thresholding"),
                            (dict(karras_sigmas=True), "karras_sigmas")):
            sched.write_text(json.dumps({**json.loads(original), **patch}))
            with pytest.raises(ValueError, match=word):
                pf.models.load_diffusers(path)
    finally:
        sched.write_text(original)


def test_conditional_export(tmp_path):
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    m = pf.models.create("diffusion", (1, 8, 8), num_classes=3, unet=UNET, sampler="ddpm")
    m.save_diffusers(tmp_path / "c")
    unet = diffusers.UNet2DModel.from_pretrained(str(tmp_path / "c" / "unet"))
    assert unet.config.num_class_embeds == 4
    x = np.random.default_rng(4).standard_normal((4, 1, 8, 8)).astype(np.float32)
    y = np.array([0, 1, 2, 3])  # 3: the "no label" row
    t = np.array([10, 20, 30, 40])
    with torch.no_grad():
        want = unet(torch.from_numpy(x), torch.from_numpy(t), class_labels=torch.from_numpy(y)).sample.numpy()
    got = m.predict(x, t, labels=y[:3].tolist() + [0])
    np.testing.assert_allclose(got[:3], want[:3], rtol=1e-5, atol=1e-5 * np.abs(want).max())
    np.testing.assert_allclose(m.predict(x, t)[3], want[3], rtol=1e-5, atol=1e-5 * np.abs(want).max())
    m2 = pf.models.load_diffusers(tmp_path / "c")
    assert m2.num_classes == 3 and m2.config["sampler"] == "ddpm"
