"""The families' GPU path, proven on the CPU with a stand-in device (tests/fakecupy.py).

fakecupy registers itself as pixelforge's GPU array module for each test: its arrays refuse
implicit conversion to NumPy (as CuPy's do) and count every host read-back. A training step
and sampling run end to end on it, so a silent host round trip in the plumbing fails here,
and the device run must give the CPU run's losses and images (same Philox noise; the ops run
their references on the stand-in, float32 rounding apart). This is plumbing, not GPU truth:
tests/gpu runs the same on a real GPU.
"""
import numpy as np
import pytest

import fakecupy
import pixelforge as pf

SMALL = {"gan": dict(z_dim=8, g_ch=16, d_ch=8),
         "vae": dict(ch=8, z_dim=4, prior_components=2),
         "transformer": dict(d_model=16, heads=2, layers=1),
         "diffusion": dict(base=8, emb_dim=16, heads=2, sample_steps=4)}


@pytest.fixture
def device(monkeypatch):
    return fakecupy.install(monkeypatch)


@pytest.fixture(scope="module")
def digits():
    images, labels = pf.data.load_digits()
    return images[:96], labels[:96]


def _is_device_array(a):
    return isinstance(a, fakecupy.ndarray)


def _pair(family, conditional, **kw):
    cfg = dict(SMALL[family], **kw)
    nc = 10 if conditional else None
    return (pf.models.create(family, (1, 8, 8), nc, **cfg),
            pf.models.create(family, (1, 8, 8), nc, device="cuda", **cfg))


@pytest.mark.filterwarnings("ignore:pixelforge.*falls back:RuntimeWarning")
@pytest.mark.parametrize("conditional", [False, True], ids=["uncond", "cond"])
@pytest.mark.parametrize("family", list(SMALL))
def test_training_and_sampling_run_on_the_device(device, digits, family, conditional):
    images, labels = digits
    y = labels if conditional else None
    cpu, dev = _pair(family, conditional)
    assert dev.device == "cuda" and all(_is_device_array(v) for v in dev.state_dict().values())
    steps = 2 * dev.LOG_EVERY + 3
    hc = cpu.fit(images, y, steps=steps, batch_size=16, progress=False, seed=3)
    before = fakecupy.SYNCS["count"]
    hd = dev.fit(images, y, steps=steps, batch_size=16, progress=False, seed=3)
    syncs = fakecupy.SYNCS["count"] - before
    # the step itself never reads the device back: the losses come over once per LOG_EVERY
    # steps (3 times here), plus what fit does once after the loop (the VAE's mixture prior)
    assert syncs <= 3 + (2 if family == "vae" else 0), syncs
    assert all(_is_device_array(v) for v in dev.state_dict().values())
    names = [k for k in hc if isinstance(hc[k], list)]
    assert names and sorted(names) == sorted(k for k in hd if isinstance(hd[k], list))
    for k in names:
        assert len(hd[k]) == steps
        # the first step's loss: same weights, batch and noise bits; the ops differ only in
        # float32 rounding (C++ kernels on the CPU, float64 references on the stand-in)
        np.testing.assert_allclose(hd[k][0], hc[k][0], rtol=1e-4, atol=1e-5, err_msg=k)
        np.testing.assert_allclose(hd[k], hc[k], rtol=2e-2, atol=2e-3, err_msg=k)
    sc = cpu.sample(6, seed=5)
    sd = dev.sample(6, seed=5)
    assert isinstance(sd, np.ndarray) and sd.dtype == np.float32 and sd.shape == (6, 1, 8, 8)
    assert sd.min() >= 0 and sd.max() <= 1
    np.testing.assert_array_equal(sd, dev.sample(6, seed=5))  # a seed gives the same images
    if family != "transformer":  # the transformer's discrete choices may flip on a rounding
        np.testing.assert_allclose(sd, sc, atol=5e-3)


@pytest.mark.filterwarnings("ignore:pixelforge.*falls back:RuntimeWarning")
def test_save_load_and_to_move_weights_and_optimizer_state(device, digits, tmp_path):
    images, _ = digits
    cpu, dev = _pair("gan", False)
    cpu.fit(images, steps=3, batch_size=16, progress=False)
    dev.fit(images, steps=3, batch_size=16, progress=False)
    dev.save(tmp_path / "run")
    back = pf.models.load(tmp_path / "run", device="cuda")
    assert back.device == "cuda" and _is_device_array(back.G_ema.fc.weight.data)
    np.testing.assert_array_equal(back.sample(4, seed=1), dev.sample(4, seed=1))
    host = pf.models.load(tmp_path / "run")
    np.testing.assert_allclose(host.sample(4, seed=1), dev.sample(4, seed=1), atol=1e-5)
    # moving a trained model keeps its optimizer moments and EMA: continuing on the CPU
    # follows the CPU-only run
    dev.to("cpu")
    assert dev.device == "cpu" and isinstance(dev.opt_g._groups[0].state["exp_avg"], np.ndarray)
    assert dev.ema.num_updates == cpu.ema.num_updates == 3
    hc = cpu.fit(images, steps=2, batch_size=16, progress=False, seed=9)
    hd = dev.fit(images, steps=2, batch_size=16, progress=False, seed=9)
    np.testing.assert_allclose(hd["g_loss"], hc["g_loss"], rtol=1e-3)
    for (name, a), b in zip(cpu.state_dict().items(), dev.state_dict().values()):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5, err_msg=name)


def test_the_stand_in_refuses_implicit_host_conversion(device):
    a = device.asarray(np.arange(4, dtype=np.float32))
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)
    with pytest.raises(TypeError):
        np.exp(a)
    with pytest.raises(TypeError):
        a + np.ones(4, np.float32)
    assert isinstance(a.sum(), fakecupy.ndarray)  # reductions stay on the device
    before = fakecupy.SYNCS["count"]
    assert float(a.sum()) == 6.0 and fakecupy.SYNCS["count"] == before + 1


def test_cuda_without_a_gpu_is_a_clear_error():
    from pixelforge import _backend
    if _backend.cupy() is not None:
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="device: 'cuda' needs CuPy"):
        pf.models.create("vae", device="cuda")
    m = pf.models.create("vae", **SMALL["vae"])
    with pytest.raises(ValueError, match="device: 'cuda' needs CuPy"):
        m.to("cuda")
    with pytest.raises(ValueError, match="device: expected 'cpu' or 'cuda'"):
        m.to("tpu")
    assert m.device == "cpu"


@pytest.mark.filterwarnings("ignore:pixelforge.*falls back:RuntimeWarning")
def test_cli_trains_and_samples_on_the_device(device, tmp_path, capsys):
    import json

    from pixelforge import cli
    run = tmp_path / "run"
    assert cli.main(["train", "vae", "--out", str(run), "--steps", "3", "--device", "cuda", "--quiet",
                     "--config", json.dumps(SMALL["vae"])]) == 0
    assert (run / "model.safetensors").is_file() and (run / "samples.png").is_file()
    assert cli.main(["sample", str(run), "--n", "4", "--out", str(tmp_path / "g.png"), "--device", "cuda"]) == 0
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_device_cuda_without_a_gpu(tmp_path, capsys):
    from pixelforge import _backend, cli
    if _backend.cupy() is not None:
        pytest.skip("a GPU is present")
    assert cli.main(["train", "vae", "--out", str(tmp_path / "r"), "--steps", "1", "--device", "cuda",
                     "--quiet"]) == 2
    assert "device: 'cuda' needs CuPy" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
