"""pf.samplers.DDPMSampler / DDIMSampler: timesteps, every impl against the float64 reference,
on every device too (the numba.cuda kernel with the CPU kernel's bits: marker ``gpu``), the
diffusers schedulers' step (float64: exact formulas; float32: default configs), noise drawn in
the kernel equal to noise passed in, edge shapes and error inputs."""
import numpy as np
import pytest

import pixelforge as pf
from opcheck import TOL, assert_close, built_impls, device_of, impl_dtype_params, noncontig, to_device
from pixelforge._backend import to_host

pf.samplers  # noqa: B018 - loads the module, which registers its impls
SCHED = pf.schedules.NoiseSchedule()
PREDS = ["epsilon", "v_prediction", "sample"]


def _data(shape, dtype, rng):
    return tuple(rng.standard_normal(shape).astype(dtype) for _ in range(3))   # sample, model_output, noise


def _make(kind, pred, clip=True, eta=0.0, n=50):
    if kind == "ddpm":
        s = pf.samplers.DDPMSampler(SCHED, prediction_type=pred, clip_sample=clip)
    else:
        s = pf.samplers.DDIMSampler(SCHED, prediction_type=pred, clip_sample=clip, eta=eta)
    if n:
        s.set_timesteps(n)
    return s


@pytest.mark.parametrize("n", [1, 7, 50, 1000])
def test_leading_timesteps(n):
    for kind in ("ddpm", "ddim"):
        s = _make(kind, "epsilon", n=n)
        assert s.timesteps.dtype == np.int64 and s.timesteps.shape == (n,)
        np.testing.assert_array_equal(s.timesteps, (np.arange(n) * (1000 // n))[::-1])


@pytest.mark.parametrize("kind, eta", [("ddpm", 0.0), ("ddim", 0.0), ("ddim", 0.8)])
@pytest.mark.parametrize("pred", PREDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("impl", built_impls("sampler_step"))
def test_step_against_reference(kind, eta, pred, dtype, impl):
    rng = np.random.default_rng()
    smp = _make(kind, pred, clip=bool(rng.integers(2)), eta=eta)
    sample, model, noise = _data((3, 2, 5, 7), dtype, rng)
    for t in (int(smp.timesteps[0]), int(smp.timesteps[25]), 0):
        stochastic = (kind == "ddpm" and t > 0) or (kind == "ddim" and eta > 0)
        got = smp.step(model, t, sample, noise=noise if stochastic else None, impl=impl)
        want = smp.step(model, t, sample, noise=noise if stochastic else None, impl="ref")
        assert got.shape == sample.shape and got.dtype == sample.dtype
        # epsilon: x0 = (s - sqrt(b_t) m) / sqrt(a_t) reaches ~160 x the O(1) inputs before clipping
        # and is rounded to float32 (as diffusers does): up to ~1e-5 absolute at the output's O(1)
        # scale, so atol is 10x the default there; rtol stays at the default
        rtol, atol = TOL[dtype]
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * (10 if pred == "epsilon" else 1),
                                   err_msg=f"{kind} {pred} t={t}")


def _kernel_dtypes(device, impl):
    """float32 on every device (the GPU's one dtype for the steps) and float64 on the CPU, less
    the CPU reference in float64 (the float64 reference itself)."""
    return ["float32"] if device == "cuda" or impl == "ref" else ["float32", "float64"]


@pytest.mark.parametrize("device,impl,dtype", impl_dtype_params("sampler_step", dtypes=_kernel_dtypes))
@pytest.mark.parametrize("kind", ["ddpm", "ddim"])
def test_every_device_steps_against_reference_and_cpu_bits(device, impl, dtype, kind):
    """DDPM (epsilon, clipped) and DDIM (eta 0.7, v_prediction) from t = 980, 400 and 0 on
    (4, 3, 64, 65) on ``device``, with noise drawn in the kernel (seed=5, offset=3) and passed in:
    against the float64 reference (at test_step_against_reference's tolerances); off the CPU
    the numba kernel also gives the CPU kernel's bits."""
    rng = np.random.default_rng(0)
    sample, noise, model = (rng.standard_normal((4, 3, 64, 65)).astype(dtype) for _ in range(3))
    pred = "epsilon" if kind == "ddpm" else "v_prediction"
    smp = _make(kind, pred, eta=0.7)
    seeded = pf.random.randn(sample.shape, seed=5, offset=3, dtype=dtype)  # what seed=5, offset=3 draws
    rtol, atol = TOL[dtype]
    atol *= 10 if pred == "epsilon" else 1
    s_d, n_d, m_d = (to_device(a, device) for a in (sample, noise, model))
    for t in (980, 400, 0):
        for how, kw, host_kw, used in (("seed", dict(seed=5, offset=3), dict(seed=5, offset=3), seeded),
                                       ("noise", dict(noise=n_d), dict(noise=noise), noise)):
            got = smp.step(m_d, t, s_d, impl=impl, **kw)
            assert device_of(got) == device and got.shape == sample.shape and got.dtype == sample.dtype
            want = smp.step(model.astype(np.float64), t, sample.astype(np.float64), noise=used.astype(np.float64),
                            impl="ref")
            what = f"{kind} {device}/{impl}/{dtype} t={t} {how}"
            np.testing.assert_allclose(to_host(got), want, rtol=rtol, atol=atol, err_msg=what)
            if device != "cpu" and impl == "numba":
                np.testing.assert_array_equal(to_host(got), smp.step(model, t, sample, impl="numba", **host_kw),
                                              err_msg=what)


def _diffusers(kind, pred, eta=0.0, float64=False):
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    cls = diffusers.DDPMScheduler if kind == "ddpm" else diffusers.DDIMScheduler
    d = cls(prediction_type=pred)
    d.set_timesteps(50)
    if float64:   # the same formulas in float64 on our float64 alphas_cumprod
        d.alphas_cumprod = torch.from_numpy(SCHED.alphas_cumprod)
        d.one = torch.tensor(1.0, dtype=torch.float64)
        d.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
    return torch, d


def _diffusers_step(torch, d, kind, model, t, sample, noise, eta):
    tm, ts = torch.from_numpy(model), torch.from_numpy(sample)
    if kind == "ddim":
        return d.step(tm, t, ts, eta=eta, variance_noise=torch.from_numpy(noise)).prev_sample.numpy()
    import diffusers.schedulers.scheduling_ddpm as mod   # DDPM takes no noise argument: feed ours
    orig = mod.randn_tensor
    mod.randn_tensor = lambda *a, **k: torch.from_numpy(noise)
    try:
        return d.step(tm, t, ts).prev_sample.numpy()
    finally:
        mod.randn_tensor = orig


@pytest.mark.parametrize("kind, eta", [("ddpm", 0.0), ("ddim", 0.0), ("ddim", 1.0)])
@pytest.mark.parametrize("pred", PREDS)
def test_step_equals_diffusers_float64(kind, eta, pred):
    torch, d = _diffusers(kind, pred, eta, float64=True)
    smp = _make(kind, pred, eta=eta)
    rng = np.random.default_rng()
    sample, model, noise = _data((2, 3, 4, 4), "float64", rng)
    for t in smp.timesteps[::7].tolist() + [0]:
        want = _diffusers_step(torch, d, kind, model, t, sample, noise, eta)
        stochastic = (kind == "ddpm" and t > 0) or eta > 0
        for impl in built_impls("sampler_step"):
            got = smp.step(model, t, sample, noise=noise if stochastic else None, impl=impl)
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=f"{impl} t={t}")


@pytest.mark.parametrize("kind, eta", [("ddpm", 0.0), ("ddim", 0.0), ("ddim", 0.5)])
def test_step_equals_diffusers_float32_defaults(kind, eta):
    torch, d = _diffusers(kind, "epsilon", eta)
    smp = _make(kind, "epsilon", eta=eta)
    rng = np.random.default_rng()
    sample, model, noise = _data((2, 3, 8, 8), "float32", rng)
    for t in smp.timesteps[::5].tolist() + [0]:
        want = _diffusers_step(torch, d, kind, model, t, sample, noise, eta)
        stochastic = (kind == "ddpm" and t > 0) or eta > 0
        got = smp.step(model, t, sample, noise=noise if stochastic else None)
        # diffusers runs float32 end to end on a float32 cumprod (~1e-6 relative drift at large t);
        # x0 is O(1) after clipping and the step coefficients are O(1): a few float32 ulps of 1
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-5, err_msg=f"t={t}")


@pytest.mark.parametrize("kind", ["ddpm", "ddim"])
@pytest.mark.parametrize("impl", built_impls("sampler_step"))
def test_seeded_noise_is_the_random_stream(kind, impl):
    rng = np.random.default_rng()
    smp = _make(kind, "epsilon", eta=1.0)
    shape = (3, 5, 11)
    sample, model, _ = _data(shape, "float32", rng)
    t = int(smp.timesteps[10])
    for offset in (0, 3, 12345):
        got = smp.step(model, t, sample, seed=77, offset=offset, impl=impl)
        want = smp.step(model, t, sample, noise=pf.random.randn(shape, seed=77, offset=offset), impl=impl)
        np.testing.assert_array_equal(got, want)
    assert not np.array_equal(smp.step(model, t, sample, seed=1, impl=impl), smp.step(model, t, sample, seed=2,
                                                                                       impl=impl))


def test_deterministic_steps_ignore_noise_arguments():
    rng = np.random.default_rng()
    sample, model, noise = _data((2, 3), "float32", rng)
    ddpm = _make("ddpm", "epsilon")
    a = ddpm.step(model, 0, sample)                      # t == 0 adds no noise
    np.testing.assert_array_equal(a, ddpm.step(model, 0, sample, seed=5))
    ddim = _make("ddim", "epsilon")
    np.testing.assert_array_equal(ddim.step(model, 500, sample), ddim.step(model, 500, sample, noise=noise))


def test_ddpm_without_set_timesteps_walks_every_step():
    smp = pf.samplers.DDPMSampler(SCHED)
    assert smp.timesteps.shape == (1000,) and smp.timesteps[0] == 999
    rng = np.random.default_rng()
    sample, model, noise = _data((2, 4), "float64", rng)
    a_t, a_p = SCHED.alphas_cumprod[500], SCHED.alphas_cumprod[499]
    x0 = np.clip((sample - np.sqrt(1 - a_t) * model) / np.sqrt(a_t), -1, 1)
    beta = 1 - a_t / a_p
    want = (np.sqrt(a_p) * beta / (1 - a_t) * x0 + np.sqrt(1 - beta) * (1 - a_p) / (1 - a_t) * sample
            + np.sqrt((1 - a_p) / (1 - a_t) * beta) * noise)
    for impl in built_impls("sampler_step"):
        np.testing.assert_allclose(smp.step(model, 500, sample, noise=noise, impl=impl), want, rtol=1e-12)


def test_edge_shapes():
    rng = np.random.default_rng()
    smp = _make("ddim", "v_prediction", eta=0.3)
    t = int(smp.timesteps[3])
    for shape in [(0, 3), (1,), (1, 1, 1), (5, 3, 33, 17)]:
        sample, model, _ = _data(shape, "float32", rng)
        got = smp.step(model, t, sample, seed=4)
        want = smp.step(model, t, sample, seed=4, impl="ref")
        assert got.shape == shape
        assert_close(got, want, "float32", str(shape))
    sample, model, noise = _data((3, 4, 5), "float32", rng)
    np.testing.assert_array_equal(smp.step(noncontig(model), t, noncontig(sample), noise=noncontig(noise)),
                                  smp.step(model, t, sample, noise=noise))


def test_errors():
    rng = np.random.default_rng()
    sample, model, noise = _data((2, 3), "float32", rng)
    ddpm, ddim = _make("ddpm", "epsilon"), _make("ddim", "epsilon", eta=0.5)
    cases = [
        (lambda: ddpm.step(model, 1000, sample, seed=0), ValueError, "t"),
        (lambda: ddpm.step(model, -1, sample, seed=0), ValueError, "t"),
        (lambda: ddpm.step(model, 3, sample, seed=0), ValueError, "t"),          # not one of the 50 timesteps
        (lambda: ddpm.step(model, 2.5, sample, seed=0), TypeError, "t"),
        (lambda: ddpm.step(model, 980, sample), ValueError, "seed"),              # stochastic, no noise source
        (lambda: ddim.step(model, 980, sample, seed=1, noise=noise), ValueError, "noise"),
        (lambda: ddim.step(model, 980, sample, seed=-1), ValueError, "seed"),
        (lambda: ddim.step(model[:1], 980, sample, seed=1), ValueError, "model_output"),
        (lambda: ddim.step(model, 980, sample, noise=noise[:, :2]), ValueError, "noise"),
        (lambda: ddim.step(model.astype(np.float64), 980, sample, seed=1), TypeError, "model_output"),
        (lambda: ddim.step(model, 980, sample, seed=1, impl="cuda"), ValueError, "impl"),
        (lambda: ddpm.set_timesteps(1001), ValueError, "num_inference_steps"),
        (lambda: ddpm.set_timesteps(0), ValueError, "num_inference_steps"),
        (lambda: pf.samplers.DDIMSampler(SCHED).step(model, 10, sample), ValueError, "set_timesteps"),
        (lambda: pf.samplers.DDIMSampler(SCHED, prediction_type="x0"), ValueError, "prediction_type"),
        (lambda: pf.samplers.DDPMSampler(SCHED, prediction_type="eps"), ValueError, "prediction_type"),
        (lambda: pf.samplers.DDIMSampler(SCHED, eta=-0.1), ValueError, "eta"),
        (lambda: pf.samplers.DDPMSampler(SCHED, clip_sample_range=0), ValueError, "clip_sample_range"),
        (lambda: pf.samplers.DDPMSampler("linear"), TypeError, "schedule"),
    ]
    for call, exc, word in cases:
        with pytest.raises(exc, match=word):
            call()
