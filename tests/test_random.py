"""pf.random: Philox4x32-10 known answers and draws on every device (the numba.cuda kernels too:
marker ``gpu``), stream layout, CPU impls against the NumPy reference (bitwise), Box–Muller
accuracy, statistics, thread-count independence and error inputs."""
import numpy as np
import pytest

import pixelforge as pf
from opcheck import built_impls, device_of, fast_impls, impl_params, to_device
from pixelforge._backend import to_host
from pixelforge.ops._ref import random as R

pf.random  # noqa: B018 - loads the module, which registers its impls

# Random123's known-answer vectors for philox4x32-10
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("device,impl", impl_params("philox4x32"))
def test_philox_known_answers(device, impl):
    ctr = to_device(np.array([k[0] for k in KAT], np.uint32), device)
    key = to_device(np.array([k[1] for k in KAT], np.uint32), device)
    out = pf.random.philox4x32(ctr, key, impl=impl)
    assert device_of(out) == device and out.dtype == np.uint32 and out.shape == (3, 4)
    np.testing.assert_array_equal(to_host(out), np.array([k[2] for k in KAT], np.uint32))
    # one at a time, leading shape ()
    for c, k, want in KAT:
        one = pf.random.philox4x32(to_device(np.array(c, np.uint32), device), to_device(np.array(k, np.uint32), device),
                                   impl=impl)
        assert device_of(one) == device
        np.testing.assert_array_equal(to_host(one), np.array(want, np.uint32))


def test_philox_scalar_helper_known_answers():
    """The plain-Python scalar helper the kernels are compiled from (also what the simulator runs)."""
    pytest.importorskip("numba")
    from pixelforge.ops._numba import philox as P
    for c, k, want in KAT:
        got = P.philox4x32_10(*[np.uint64(v) for v in c + k])
        assert tuple(int(v) for v in got) == want


@pytest.mark.parametrize("impl", fast_impls("philox4x32"))
def test_philox_random_counters_match_reference(impl):
    rng = np.random.default_rng()
    ctr = rng.integers(0, 2 ** 32, (5, 7, 4), dtype=np.uint64).astype(np.uint32)
    key = rng.integers(0, 2 ** 32, (7, 2), dtype=np.uint64).astype(np.uint32)   # broadcast over dim 0
    np.testing.assert_array_equal(pf.random.philox4x32(ctr, key, impl=impl), pf.random.philox4x32(ctr, key, impl="ref"))
    # non-contiguous views and other integer dtypes in range are accepted
    np.testing.assert_array_equal(pf.random.philox4x32(ctr[:, ::2].astype(np.int64), key[::2], impl=impl),
                                  R.philox4x32(ctr[:, ::2], np.broadcast_to(key[::2], (5, 4, 2))))
    assert pf.random.philox4x32(np.zeros((0, 4), np.uint32), np.zeros((0, 2), np.uint32), impl=impl).shape == (0, 4)


def test_stream_layout_is_philox_blocks():
    """Element i of rand(float64) is word (offset + i) of block (offset + i) // 4, lane (offset + i) % 4."""
    seed = (7 << 32) | 12345
    off = 4 * 0x1_0000_0001 + 2      # block counter crosses 32 bits: counter word 1 in use
    got = pf.random.rand(6, seed=seed, offset=off, dtype="float64")
    blocks = np.array([[(off // 4 + j) & 0xFFFFFFFF, (off // 4 + j) >> 32, 0, 0] for j in range(3)], np.uint32)
    words = pf.random.philox4x32(blocks, np.array([12345, 7], np.uint32), impl="ref").reshape(-1)[2:8]
    np.testing.assert_array_equal(got, words.astype(np.float64) * 2.0 ** -32)
    got32 = pf.random.rand(6, seed=seed, offset=off)
    np.testing.assert_array_equal(got32, (words >> 8).astype(np.float32) * np.float32(2.0 ** -24))


@pytest.mark.parametrize("fn", ["rand", "randn"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("impl", fast_impls("randn"))
def test_draws_match_reference_bitwise(fn, dtype, impl):
    f = getattr(pf.random, fn)
    rng = np.random.default_rng()
    seed = int(rng.integers(0, 2 ** 63))
    for shape, offset in [((37,), 0), ((3, 5, 7), 1), ((2, 1, 9), 2), ((11,), 3), ((1,), 5), ((4, 4), 4),
                          ((3, 0, 2), 6), ((), 9), ((13,), 2 ** 40 + 3), ((10,), 2 ** 64 - 10)]:
        got = f(shape, seed=seed, offset=offset, dtype=dtype, impl=impl)
        want = f(shape, seed=seed, offset=offset, dtype=dtype, impl="ref")
        assert got.shape == want.shape == shape and got.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got, want, err_msg=f"{shape} offset {offset}")


# Draws on every device but the reference itself (impl_params: the CPU's numba kernel; on the GPU
# the numba.cuda kernel and the reference copied over, under the ``gpu`` marker) against the
# NumPy reference's bits. 2^20 + 3 words (many blocks of the GPU's grid-stride launch) only on
# the GPU: there the reference costs ~1 s a draw on the host, and on the CPU the golden digests
# (test_sampling_golden.py, 2^18 + 3 words) and the tests above cover long streams.
DRAWS = [((3, 333), 5), ((7,), 2 ** 40 + 1), ((0,), 0)]
CUDA_DRAWS = [(((1 << 20) + 3,), 0)]


def _not_the_reference(op):
    return [p for p in impl_params(op) if tuple(p.values) != ("cpu", "ref")]


@pytest.mark.parametrize("device,impl", _not_the_reference("randn"))
@pytest.mark.parametrize("fn", ["rand", "randn"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_device_draws_the_reference_bits(device, impl, fn, dtype):
    f = getattr(pf.random, fn)
    for shape, offset in DRAWS + (CUDA_DRAWS if device == "cuda" else []):
        got = f(shape, seed=1234567890123, offset=offset, dtype=dtype, device=device, impl=impl)
        want = f(shape, seed=1234567890123, offset=offset, dtype=dtype, impl="ref")
        assert device_of(got) == device and got.dtype == np.dtype(dtype) and got.shape == want.shape == shape
        np.testing.assert_array_equal(to_host(got), want, err_msg=f"{device}/{impl} {shape} offset {offset}")


@pytest.mark.parametrize("fn", ["rand", "randn"])
def test_offset_continues_the_stream(fn):
    f = getattr(pf.random, fn)
    whole = f(1000 + 17, seed=99)
    for k in (0, 1, 2, 3, 17):
        np.testing.assert_array_equal(f(1000, seed=99, offset=k), whole[k:k + 1000])
    # a long draw split at an odd point equals the draw in one go (parallel chunk borders)
    big = f(3 * 8192 * 4 + 5, seed=4)
    parts = np.concatenate([f(40001, seed=4), f(big.size - 40001, seed=4, offset=40001)])
    np.testing.assert_array_equal(big, parts)


def test_normals_close_to_libm_box_muller():
    n = 200_000
    ours = R.normal(n, 17, 3)
    exact = R.normal_exact(n, 17, 3)
    # our polynomials: ~1e-8 relative against libm (|x| up to ~6, so atol 1e-8 * 6)
    np.testing.assert_allclose(ours, exact, rtol=2e-8, atol=6e-8)
    o32, e32 = ours.astype(np.float32), exact.astype(np.float32)
    ulps = np.abs(o32.view(np.int32).astype(np.int64) - e32.view(np.int32).astype(np.int64))
    assert ulps.max() <= 1 and (ulps > 0).mean() < 0.05
    # and the kernels give the reference's bits
    np.testing.assert_array_equal(pf.random.randn(n, seed=(3 << 32) | 17, dtype="float64"), ours)


def test_randn_statistics():
    scipy_stats = pytest.importorskip("scipy.stats")
    n = 1_000_000
    x = pf.random.randn(n, seed=2024).astype(np.float64)
    assert abs(x.mean()) < 5 / np.sqrt(n)
    assert abs(x.var() - 1) < 5 * np.sqrt(2 / n)
    assert scipy_stats.kstest(x, "norm").pvalue > 1e-4
    # tails are there (P(|x| > 4) ~ 6.3e-5: ~63 expected)
    assert 20 < np.sum(np.abs(x) > 4) < 150
    u = pf.random.rand(n, seed=2024, dtype="float64")
    assert u.min() >= 0 and u.max() < 1
    assert scipy_stats.kstest(u, "uniform").pvalue > 1e-4


def test_independence_across_seeds_and_offsets():
    n = 200_000
    a = pf.random.randn(n, seed=1).astype(np.float64)
    bound = 5 / np.sqrt(n)
    for other in (pf.random.randn(n, seed=2), pf.random.randn(n, seed=1 + (1 << 32)),
                  pf.random.randn(n, seed=1, offset=n), pf.random.randn(n, seed=1, offset=2 * n + 1)):
        assert abs(np.corrcoef(a, other.astype(np.float64))[0, 1]) < bound
    # neighbours sharing a Box–Muller pair are uncorrelated too
    assert abs(np.corrcoef(a[0::2], a[1::2])[0, 1]) < 2 * bound
    assert not np.array_equal(pf.random.rand(8, seed=1), pf.random.rand(8, seed=2))


@pytest.mark.parametrize("fn", ["rand", "randn"])
def test_same_bits_with_one_and_two_threads(fn):
    numba = pytest.importorskip("numba")
    f = getattr(pf.random, fn)
    n = 4 * 8192 * 3 + 7   # several parallel chunks plus partial blocks
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = f(n, seed=5, offset=3, impl="numba")
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = f(n, seed=5, offset=3, impl="numba")
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one, two)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("kwargs, exc, word", [
    (dict(shape=5, seed=-1), ValueError, "seed"),
    (dict(shape=5, seed=2 ** 64), ValueError, "seed"),
    (dict(shape=5, seed=1.5), TypeError, "seed"),
    (dict(shape=-3, seed=1), ValueError, "shape"),
    (dict(shape=(2, -1), seed=1), ValueError, "shape"),
    (dict(shape=(2.0,), seed=1), TypeError, "shape"),
    (dict(shape="x", seed=1), TypeError, "shape"),
    (dict(shape=5, seed=1, offset=-1), ValueError, "offset"),
    (dict(shape=5, seed=1, offset=2 ** 64 - 2), ValueError, "offset"),
    (dict(shape=5, seed=1, dtype="float16"), ValueError, "dtype"),
    (dict(shape=5, seed=1, dtype="int32"), ValueError, "dtype"),
    (dict(shape=5, seed=1, device="tpu"), ValueError, "device"),
    (dict(shape=5, seed=1, impl="cpu"), ValueError, "impl"),
    (dict(shape=5, seed=1, impl="fast"), ValueError, "impl"),
])
@pytest.mark.parametrize("fn", ["rand", "randn"])
def test_draw_errors(fn, kwargs, exc, word):
    with pytest.raises(exc, match=word):
        getattr(pf.random, fn)(**kwargs)


def test_cuda_device_without_gpu_is_a_value_error():
    from pixelforge import _backend
    if _backend.cupy() is not None and _backend.numba_cuda_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="device"):
        pf.random.randn(4, seed=0, device="cuda")


@pytest.mark.parametrize("ctr, key, exc, word", [
    (np.zeros((2, 3), np.uint32), np.zeros((2, 2), np.uint32), ValueError, "counter"),
    (np.zeros((2, 4), np.uint32), np.zeros((2, 3), np.uint32), ValueError, "key"),
    (np.zeros((2, 4), np.float32), np.zeros((2, 2), np.uint32), TypeError, "counter"),
    (np.zeros((2, 4), np.uint32), np.zeros((2, 2), np.float64), TypeError, "key"),
    (np.full((1, 4), 2 ** 32, np.int64), np.zeros((1, 2), np.uint32), ValueError, "counter"),
    (np.zeros((1, 4), np.uint32), np.full((1, 2), -1, np.int64), ValueError, "key"),
    (np.zeros((3, 4), np.uint32), np.zeros((2, 2), np.uint32), ValueError, "key"),
    (np.zeros(4, np.uint32)[:0], np.zeros(2, np.uint32), ValueError, "counter"),
    ("abc", np.zeros(2, np.uint32), TypeError, "counter"),
])
def test_philox_errors(ctr, key, exc, word):
    with pytest.raises(exc, match=word):
        pf.random.philox4x32(ctr, key)
