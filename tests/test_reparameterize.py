"""pf.ops.reparameterize / gaussian_kl and their backward passes: every impl against the float64
reference, on every device too (the numba.cuda kernels with the CPU kernels' bits: marker
``gpu``), eps equal to pf.random.randn bit for bit, finite-difference and torch gradients,
thread-count independence of the KL reduction, error inputs."""
import numpy as np
import pytest

import pixelforge as pf
from opcheck import assert_close, built_impls, device_of, finite_diff, impl_dtype_params, noncontig, to_device
from pixelforge._backend import to_host

pf.ops.reparameterize  # noqa: B018 - loads the module, which registers its impls
SHAPES = [(3, 5, 7), (1, 1), (4, 1, 9, 2), (0, 3), (2,), (3, 4100)]


def _pair(shape, dtype, rng):
    return rng.standard_normal(shape).astype(dtype), (0.5 * rng.standard_normal(shape)).astype(dtype)


@pytest.mark.parametrize("impl", built_impls("reparameterize"))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES)
def test_reparameterize(impl, dtype, shape):
    rng = np.random.default_rng()
    mu, lv = _pair(shape, dtype, rng)
    seed, offset = int(rng.integers(0, 2 ** 63)), int(rng.integers(0, 10))
    z, eps = pf.ops.reparameterize(mu, lv, seed=seed, offset=offset, impl=impl)
    assert z.shape == eps.shape == mu.shape and z.dtype == eps.dtype == mu.dtype
    np.testing.assert_array_equal(eps, pf.random.randn(shape, seed=seed, offset=offset, dtype=dtype))
    want = mu.astype(np.float64) + np.exp(0.5 * lv.astype(np.float64)) * eps.astype(np.float64)
    assert_close(z, want, dtype, "z")


@pytest.mark.parametrize("impl", built_impls("reparameterize_backward"))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES)
def test_reparameterize_backward(impl, dtype, shape):
    rng = np.random.default_rng()
    g, lv = _pair(shape, dtype, rng)
    eps = rng.standard_normal(shape).astype(dtype)
    gmu, glv = pf.ops.reparameterize_backward(g, eps, lv, impl=impl)
    assert_close(gmu, g, dtype, "grad_mu")
    want = 0.5 * g.astype(np.float64) * eps * np.exp(0.5 * lv.astype(np.float64))
    assert_close(glv, want, dtype, "grad_logvar")


@pytest.mark.parametrize("impl", built_impls("gaussian_kl"))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES)
def test_gaussian_kl(impl, dtype, shape):
    rng = np.random.default_rng()
    mu, lv = _pair(shape, dtype, rng)
    kl = pf.ops.gaussian_kl(mu, lv, impl=impl)
    assert kl.shape == (shape[0],) and kl.dtype == mu.dtype
    k = int(np.prod(shape[1:]))
    m, v = mu.astype(np.float64).reshape(shape[0], k), lv.astype(np.float64).reshape(shape[0], k)
    want = 0.5 * (m ** 2 + np.exp(v) - 1 - v).sum(axis=1)
    # the inputs are float32; the float64 sum of K terms of size ~1 is exact to ~1e-16 K, so the only
    # error is the final float32 rounding: rtol covers it, atol scales with the row length K
    k = max(1, int(np.prod(shape[1:])))
    assert_close(kl, want, dtype, "kl", scale=max(1.0, k / 100))


@pytest.mark.parametrize("impl", built_impls("gaussian_kl_backward"))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES)
def test_gaussian_kl_backward(impl, dtype, shape):
    rng = np.random.default_rng()
    mu, lv = _pair(shape, dtype, rng)
    g = rng.standard_normal(shape[0]).astype(dtype)
    gmu, glv = pf.ops.gaussian_kl_backward(g, mu, lv, impl=impl)
    gb = g.astype(np.float64).reshape((-1,) + (1,) * (len(shape) - 1))
    assert_close(gmu, gb * mu, dtype, "grad_mu")
    assert_close(glv, gb * 0.5 * (np.exp(lv.astype(np.float64)) - 1), dtype, "grad_logvar")


def _kernel_dtypes(device, impl):
    """float32 on every device (the GPU's one dtype for these ops) and float64 on the CPU, less
    the CPU reference in float64 (the float64 reference itself)."""
    return ["float32"] if device == "cuda" or impl == "ref" else ["float32", "float64"]


@pytest.mark.parametrize("device,impl,dtype", impl_dtype_params("reparameterize", dtypes=_kernel_dtypes))
def test_every_device_against_reference_and_cpu_bits(device, impl, dtype):
    """reparameterize, gaussian_kl and their backward passes on (2, 5000) on ``device``: eps is
    pf.random.randn's bits, the rest against the float64 formulas (the tolerances above); off the
    CPU the numba kernels also give the CPU kernels' bits (float32 exp is exp_det, the KL sums in
    a fixed order)."""
    rng = np.random.default_rng(1)
    mu, lv = rng.standard_normal((2, 5000)).astype(dtype), rng.standard_normal((2, 5000)).astype(dtype)
    g = rng.standard_normal((2, 5000)).astype(dtype)
    gk = rng.standard_normal(2).astype(dtype)
    mu_d, lv_d, g_d, gk_d = (to_device(a, device) for a in (mu, lv, g, gk))
    m64, v64, g64, gk64 = (a.astype(np.float64) for a in (mu, lv, g, gk))
    what = f"{device}/{impl}/{dtype}"
    z, eps = pf.ops.reparameterize(mu_d, lv_d, seed=3, offset=1, impl=impl)
    assert all(device_of(a) == device and a.dtype == mu.dtype and a.shape == mu.shape for a in (z, eps))
    np.testing.assert_array_equal(to_host(eps), pf.random.randn(mu.shape, seed=3, offset=1, dtype=dtype))
    eps64 = to_host(eps).astype(np.float64)
    assert_close(z, m64 + np.exp(0.5 * v64) * eps64, dtype, f"z {what}")
    gmu, glv = pf.ops.reparameterize_backward(g_d, eps, lv_d, impl=impl)
    assert device_of(glv) == device and glv.dtype == mu.dtype
    assert_close(gmu, g64, dtype, f"reparameterize grad_mu {what}")
    assert_close(glv, 0.5 * g64 * eps64 * np.exp(0.5 * v64), dtype, f"reparameterize grad_logvar {what}")
    kl = pf.ops.gaussian_kl(mu_d, lv_d, impl=impl)
    assert device_of(kl) == device and kl.dtype == mu.dtype and kl.shape == (2,)
    assert_close(kl, 0.5 * (m64 ** 2 + np.exp(v64) - 1 - v64).sum(axis=1), dtype, f"kl {what}", scale=50)
    kmu, klv = pf.ops.gaussian_kl_backward(gk_d, mu_d, lv_d, impl=impl)
    assert device_of(klv) == device and klv.dtype == mu.dtype
    assert_close(kmu, gk64[:, None] * m64, dtype, f"kl grad_mu {what}")
    assert_close(klv, gk64[:, None] * 0.5 * (np.exp(v64) - 1), dtype, f"kl grad_logvar {what}")
    if device != "cpu" and impl == "numba":
        zc, ec = pf.ops.reparameterize(mu, lv, seed=3, offset=1, impl="numba")
        cpu = [zc, ec, pf.ops.reparameterize_backward(g, ec, lv, impl="numba")[1],
               pf.ops.gaussian_kl(mu, lv, impl="numba"), *pf.ops.gaussian_kl_backward(gk, mu, lv, impl="numba")]
        for name, a, b in zip(("z", "eps", "reparameterize grad_logvar", "kl", "kl grad_mu", "kl grad_logvar"),
                              (z, eps, glv, kl, kmu, klv), cpu):
            np.testing.assert_array_equal(to_host(a), b, err_msg=f"{name}: the CPU kernel's bits")


@pytest.mark.parametrize("impl", built_impls("gaussian_kl"))
def test_finite_differences(impl):
    rng = np.random.default_rng()
    mu, lv = _pair((2, 3, 2), "float64", rng)
    g = rng.standard_normal(2)
    gmu, glv = pf.ops.gaussian_kl_backward(g, mu, lv, impl=impl)
    np.testing.assert_allclose(gmu, finite_diff(lambda m: g @ pf.ops.gaussian_kl(m, lv, impl=impl), mu), rtol=1e-6,
                               atol=1e-8)
    np.testing.assert_allclose(glv, finite_diff(lambda v: g @ pf.ops.gaussian_kl(mu, v, impl=impl), lv), rtol=1e-6,
                               atol=1e-8)
    gz = rng.standard_normal(mu.shape)
    seed = 11
    _, eps = pf.ops.reparameterize(mu, lv, seed=seed, impl=impl)
    rmu, rlv = pf.ops.reparameterize_backward(gz, eps, lv, impl=impl)

    def loss(m, v):
        return float(np.sum(gz * pf.ops.reparameterize(m, v, seed=seed, impl=impl)[0]))
    np.testing.assert_allclose(rmu, finite_diff(lambda m: loss(m, lv), mu), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(rlv, finite_diff(lambda v: loss(mu, v), lv), rtol=1e-6, atol=1e-8)


def test_against_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng()
    mu, lv = _pair((4, 3, 5), "float64", rng)
    tm, tv = torch.tensor(mu, requires_grad=True), torch.tensor(lv, requires_grad=True)
    dist = torch.distributions
    want = dist.kl_divergence(dist.Normal(tm, torch.exp(0.5 * tv)), dist.Normal(0.0, 1.0)).sum(dim=(1, 2))
    np.testing.assert_allclose(pf.ops.gaussian_kl(mu, lv), want.detach().numpy(), rtol=1e-10)
    g = rng.standard_normal(4)
    want.backward(torch.tensor(g))
    gmu, glv = pf.ops.gaussian_kl_backward(g, mu, lv)
    np.testing.assert_allclose(gmu, tm.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(glv, tv.grad.numpy(), rtol=1e-10, atol=1e-14)
    # reparameterization through autograd with our eps
    z, eps = pf.ops.reparameterize(mu, lv, seed=3)
    tm.grad = tv.grad = None
    tz = tm + torch.exp(0.5 * tv) * torch.tensor(eps)
    np.testing.assert_allclose(z, tz.detach().numpy(), rtol=1e-12)
    gz = rng.standard_normal(mu.shape)
    tz.backward(torch.tensor(gz))
    rmu, rlv = pf.ops.reparameterize_backward(gz, eps, lv)
    np.testing.assert_allclose(rmu, tm.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(rlv, tv.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_noncontiguous_inputs():
    rng = np.random.default_rng()
    mu, lv = _pair((3, 4, 5), "float32", rng)
    z1, e1 = pf.ops.reparameterize(noncontig(mu), noncontig(lv), seed=9)
    z2, e2 = pf.ops.reparameterize(mu, lv, seed=9)
    np.testing.assert_array_equal(z1, z2)
    np.testing.assert_array_equal(pf.ops.gaussian_kl(noncontig(mu), noncontig(lv)), pf.ops.gaussian_kl(mu, lv))


def test_same_bits_with_one_and_two_threads():
    numba = pytest.importorskip("numba")
    rng = np.random.default_rng()
    mu, lv = _pair((2, 3 * 16384 + 5), "float32", rng)
    before = numba.get_num_threads()
    out = []
    try:
        for t in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(t)
            out.append((pf.ops.gaussian_kl(mu, lv, impl="numba"),
                        *pf.ops.reparameterize(mu, lv, seed=1, offset=3, impl="numba")))
    finally:
        numba.set_num_threads(before)
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("call, exc, word", [
    (lambda: pf.ops.reparameterize(np.zeros((2, 3), np.float32), np.zeros((2, 4), np.float32), seed=0),
     ValueError, "logvar"),
    (lambda: pf.ops.reparameterize(np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float64), seed=0),
     TypeError, "logvar"),
    (lambda: pf.ops.reparameterize(np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float32), seed=-1),
     ValueError, "seed"),
    (lambda: pf.ops.reparameterize(np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float32), seed=0, offset=-2),
     ValueError, "offset"),
    (lambda: pf.ops.reparameterize(np.zeros((2, 3), np.int64), np.zeros((2, 3), np.int64), seed=0),
     TypeError, "mu"),
    (lambda: pf.ops.reparameterize(np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float32), seed=0, impl="cpu"),
     ValueError, "impl"),
    (lambda: pf.ops.reparameterize_backward(np.zeros((2, 3)), np.zeros((2, 2)), np.zeros((2, 3))),
     ValueError, "eps"),
    (lambda: pf.ops.gaussian_kl(np.zeros((2, 3)), np.zeros((3, 3))), ValueError, "logvar"),
    (lambda: pf.ops.gaussian_kl_backward(np.zeros(3), np.zeros((2, 3)), np.zeros((2, 3))), ValueError, "grad_kl"),
    (lambda: pf.ops.gaussian_kl_backward(np.zeros((2, 1)), np.zeros((2, 3)), np.zeros((2, 3))), ValueError,
     "grad_kl"),
])
def test_errors(call, exc, word):
    with pytest.raises(exc, match=word):
        call()
