"""On a real GPU: the numba.cuda kernels of pf.random and the fused sampling ops give the CPU
kernels' bits (float32), including FMA contraction by NVVM, which the exact-product construction
(ops/_numba/philox.py, sampling.py) makes harmless; the references agree to tolerance.

exp in the float32 kernels is our own polynomial (sampling.exp_det), so reparameterize and the KL
ops are bitwise too; the KL sum is checked bitwise as well (fixed reduction order).
"""
import numpy as np
import pytest

import pixelforge as pf

pytestmark = pytest.mark.gpu
cp = pytest.importorskip("cupy")


@pytest.mark.parametrize("fn", ["rand", "randn"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_draws_bitwise(fn, dtype):
    for shape, off in [((1 << 20) + 3, 0), ((3, 333), 5), ((7,), 2 ** 40 + 1), ((0,), 0)]:
        g = getattr(pf.random, fn)(shape, seed=1234567890123, offset=off, dtype=dtype, device="cuda")
        assert isinstance(g, cp.ndarray)
        c = getattr(pf.random, fn)(shape, seed=1234567890123, offset=off, dtype=dtype)
        np.testing.assert_array_equal(cp.asnumpy(g), c)


def test_launch_configurations_do_not_change_bits():
    from pixelforge.ops._numba import philox as P
    want = pf.random.randn(100003, seed=9, offset=2)
    for threads, blocks in [(32, 1), (256, 7), (1024, 4096)]:
        out = cp.empty(100003, cp.float32)
        P.fill_gpu(out, 9, 0, 2, 2, threads=threads, max_blocks=blocks)
        np.testing.assert_array_equal(cp.asnumpy(out), want)


def test_philox_known_answer_on_gpu():
    out = pf.random.philox4x32(cp.zeros((1, 4), cp.uint32), cp.zeros((1, 2), cp.uint32))
    np.testing.assert_array_equal(cp.asnumpy(out)[0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8])


def test_fused_ops_bitwise():
    rng = np.random.default_rng(0)
    x, n, m = (rng.standard_normal((4, 3, 64, 65)).astype(np.float32) for _ in range(3))
    ac = pf.schedules.NoiseSchedule().alphas_cumprod
    ts = np.array([0, 10, 500, 999])
    for op in ("add_noise", "get_velocity"):
        g = getattr(pf.ops, op)(cp.asarray(x), cp.asarray(n), ts, ac)
        np.testing.assert_array_equal(cp.asnumpy(g), getattr(pf.ops, op)(x, n, ts, ac))
    for smp in (pf.samplers.DDPMSampler(pf.schedules.NoiseSchedule()),
                pf.samplers.DDIMSampler(pf.schedules.NoiseSchedule(), eta=0.7, prediction_type="v_prediction")):
        smp.set_timesteps(50)
        for t in (980, 400, 0):
            g = smp.step(cp.asarray(m), t, cp.asarray(x), seed=5, offset=3)
            np.testing.assert_array_equal(cp.asnumpy(g), smp.step(m, t, x, seed=5, offset=3))
            g = smp.step(cp.asarray(m), t, cp.asarray(x), noise=cp.asarray(n))
            np.testing.assert_array_equal(cp.asnumpy(g), smp.step(m, t, x, noise=n))


def test_reparameterize_and_kl():
    rng = np.random.default_rng(1)
    mu, lv = rng.standard_normal((2, 5000)).astype(np.float32), rng.standard_normal((2, 5000)).astype(np.float32)
    zg, eg = pf.ops.reparameterize(cp.asarray(mu), cp.asarray(lv), seed=3, offset=1)
    zc, ec = pf.ops.reparameterize(mu, lv, seed=3, offset=1)
    np.testing.assert_array_equal(cp.asnumpy(eg), ec)
    np.testing.assert_array_equal(cp.asnumpy(zg), zc)
    g = rng.standard_normal((2, 5000)).astype(np.float32)
    np.testing.assert_array_equal(cp.asnumpy(pf.ops.reparameterize_backward(cp.asarray(g), eg, cp.asarray(lv))[1]),
                                  pf.ops.reparameterize_backward(g, ec, lv)[1])
    klg = cp.asnumpy(pf.ops.gaussian_kl(cp.asarray(mu), cp.asarray(lv)))
    np.testing.assert_array_equal(klg, pf.ops.gaussian_kl(mu, lv))
    gk = rng.standard_normal(2).astype(np.float32)
    for a, b in zip(pf.ops.gaussian_kl_backward(cp.asarray(gk), cp.asarray(mu), cp.asarray(lv)),
                    pf.ops.gaussian_kl_backward(gk, mu, lv)):
        np.testing.assert_array_equal(cp.asnumpy(a), b)


def test_runs_on_the_current_cupy_stream():
    s = cp.cuda.Stream(non_blocking=True)
    with s:
        g = pf.random.randn(1 << 16, seed=2, device="cuda")
        s.synchronize()
    np.testing.assert_array_equal(cp.asnumpy(g), pf.random.randn(1 << 16, seed=2))
