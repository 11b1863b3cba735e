"""pf.ops.add_noise / get_velocity: every impl against the float64 reference, on every device too
(the numba.cuda kernel with the CPU kernel's bits: marker ``gpu``), diffusers where installed,
per-sample timesteps, edge shapes and error inputs."""
import numpy as np
import pytest

import pixelforge as pf
from opcheck import assert_close, built_impls, device_of, impl_dtype_params, noncontig, to_device
from pixelforge._backend import to_host

pf.ops.add_noise  # noqa: B018 - loads the module, which registers its impls
SCHED = pf.schedules.NoiseSchedule()
AC = SCHED.alphas_cumprod
OPS = ["add_noise", "get_velocity"]


def _inputs(shape, dtype, rng):
    return rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)


def _closed_form(op, x0, noise, ts):
    a = AC[ts].reshape((-1,) + (1,) * (x0.ndim - 1))
    x0, noise = x0.astype(np.float64), noise.astype(np.float64)
    if op == "add_noise":
        return np.sqrt(a) * x0 + np.sqrt(1 - a) * noise
    return np.sqrt(a) * noise - np.sqrt(1 - a) * x0


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("impl", built_impls("add_noise"))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(3, 5, 7), (1, 1), (4, 1, 9, 2), (0, 3), (2,), (5, 3, 33, 17)])
def test_against_reference(op, impl, dtype, shape):
    rng = np.random.default_rng()
    x0, noise = _inputs(shape, dtype, rng)
    ts = rng.integers(0, len(AC), shape[0])
    got = getattr(pf.ops, op)(x0, noise, ts, AC, impl=impl)
    assert got.shape == x0.shape and got.dtype == x0.dtype
    want = _closed_form(op, x0, noise, ts)
    assert_close(got, want, dtype, f"{op} {impl}")
    if impl != "ref":
        ref = getattr(pf.ops, op)(x0, noise, ts, AC, impl="ref")
        assert_close(got, ref, dtype, f"{op} {impl} vs ref")


def _kernel_dtypes(device, impl):
    """float32 on every device (the GPU's one dtype for these ops) and float64 on the CPU, less
    the CPU reference in float64 (the float64 reference itself)."""
    return ["float32"] if device == "cuda" or impl == "ref" else ["float32", "float64"]


@pytest.mark.parametrize("device,impl,dtype", impl_dtype_params("add_noise", dtypes=_kernel_dtypes))
@pytest.mark.parametrize("op", OPS)
def test_every_device_against_reference_and_cpu_bits(device, impl, dtype, op):
    """(4, 3, 64, 65) at timesteps 0, 10, 500, 999 on ``device`` against the float64 closed form;
    off the CPU the numba kernel also gives the CPU kernel's bits (coefficients rounded to 29
    bits: every product is exact, so the GPU's fused multiply-adds cannot change a bit)."""
    rng = np.random.default_rng(0)
    x0, noise = _inputs((4, 3, 64, 65), dtype, rng)
    ts = np.array([0, 10, 500, 999])
    got = getattr(pf.ops, op)(to_device(x0, device), to_device(noise, device), ts, AC, impl=impl)
    assert device_of(got) == device and got.shape == x0.shape and got.dtype == x0.dtype
    assert_close(got, _closed_form(op, x0, noise, ts), dtype, f"{op} {device}/{impl}")
    if device != "cpu" and impl == "numba":
        np.testing.assert_array_equal(to_host(got), getattr(pf.ops, op)(x0, noise, ts, AC, impl="numba"))


@pytest.mark.parametrize("op", OPS)
def test_noncontiguous_and_scalar_timestep(op):
    rng = np.random.default_rng()
    x0, noise = _inputs((4, 3, 6), "float32", rng)
    f = getattr(pf.ops, op)
    got = f(noncontig(x0), noncontig(noise), 17, AC)
    assert_close(got, _closed_form(op, x0, noise, np.full(4, 17)), "float32")
    got = f(x0, noise, np.int64(999), AC)
    assert_close(got, _closed_form(op, x0, noise, np.full(4, 999)), "float32")


@pytest.mark.parametrize("op", OPS)
def test_matches_diffusers(op):
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.DDPMScheduler()
    rng = np.random.default_rng()
    x0, noise = _inputs((6, 3, 8, 8), "float32", rng)
    ts = rng.integers(0, 1000, 6)
    fn = sched.add_noise if op == "add_noise" else sched.get_velocity
    want = fn(torch.from_numpy(x0), torch.from_numpy(noise), torch.from_numpy(ts)).numpy()
    got = getattr(pf.ops, op)(x0, noise, ts, AC)
    # diffusers' alphas_cumprod is a float32 cumprod over up to 1000 factors: ~1e-6 relative off ours
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("args, exc, word", [
    (dict(timesteps=np.array([0, 1])), ValueError, "timesteps"),          # wrong length
    (dict(timesteps=np.array([0, 1, 1000])), ValueError, "timesteps"),    # out of range
    (dict(timesteps=np.array([0, -1, 2])), ValueError, "timesteps"),
    (dict(timesteps=np.array([0.0, 1.0, 2.0])), TypeError, "timesteps"),
    (dict(noise=np.zeros((3, 4), np.float32)), ValueError, "noise"),
    (dict(noise=np.zeros((3, 5), np.float64)), TypeError, "noise"),
    (dict(x0=np.zeros((3, 5), np.int32)), TypeError, "x0"),
    (dict(x0="x"), TypeError, "x0"),
    (dict(alphas_cumprod=np.zeros((2, 2))), ValueError, "alphas_cumprod"),
    (dict(alphas_cumprod=np.array([0.5, 1.5])), ValueError, "alphas_cumprod"),
    (dict(impl="cpu"), ValueError, "impl"),
    (dict(impl="cuda"), ValueError, "impl"),
])
@pytest.mark.parametrize("op", OPS)
def test_errors(op, args, exc, word):
    kw = dict(x0=np.zeros((3, 5), np.float32), noise=np.zeros((3, 5), np.float32), timesteps=np.array([0, 1, 2]),
              alphas_cumprod=AC)
    args = dict(args)
    impl = args.pop("impl", "auto")
    kw.update(args)
    with pytest.raises(exc, match=word):
        getattr(pf.ops, op)(kw["x0"], kw["noise"], kw["timesteps"], kw["alphas_cumprod"], impl=impl)


