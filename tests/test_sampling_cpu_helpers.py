"""The CPU bodies of the sampling transforms against their definitions, on inputs a random stream
rarely hits: the Box–Muller loop (``_bm_span``: fused multiply-adds, two-add quantization,
exponent split from the float64 bits) on words at every exponent and quarter-turn boundary, and
the float32 std of reparameterize (``exp32``, 2^k from the bits, clamped) on float32 logvars of
every exponent, special values and the underflow / overflow edges, against the plain-Python
``exp_det`` rounded to float32. (An exhaustive run over all 2^32 words and float32 patterns
agreed too; it takes minutes, so here are the edges.)"""
import numpy as np
import pytest

pytest.importorskip("numba")
from pixelforge.ops._numba import philox as P  # noqa: E402
from pixelforge.ops._numba import sampling as S  # noqa: E402
from pixelforge.ops._ref import random as R  # noqa: E402


def edge_words():
    w = set(range(0, 1025)) | set(range(2 ** 32 - 1025, 2 ** 32))
    for k in range(33):                      # m = 2^32 - w at and around every power of two
        for d in range(-3, 4):
            w.add(2 ** 32 - 2 ** k + d)
    for q in range(5):                       # quarter-turn boundaries and their midpoints
        for c in (q << 30, (q << 30) + (1 << 29), (q << 30) - (1 << 29)):
            for d in range(-3, 4):
                w.add(c + d)
    # f around sqrt(2) for every exponent: m = 2^e * sqrt(2)
    for e in range(33):
        m = int(round(2 ** e * 2 ** 0.5))
        for d in range(-2, 3):
            w.add(2 ** 32 - (m + d))
    w |= set(np.random.default_rng(5).integers(0, 2 ** 32, 4096, dtype=np.uint64).tolist())
    return np.array(sorted(v for v in w if 0 <= v < 2 ** 32), np.uint64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_box_muller_loop_matches_reference_on_edge_words(dtype):
    w = edge_words()
    b = np.roll(w, 17)                       # angle words: every edge word meets other radii too
    ws = [w, b, b[::-1].copy(), w[::-1].copy()]
    o = np.empty(4 * w.size, dtype)
    P._bm_span(o, *(x.astype(np.uint32) for x in ws))
    for lane in (0, 2):
        rad = np.sqrt(2.0 * R.neg_log_u(ws[lane]))
        c, s = R.cos_sin_turn(ws[lane + 1])
        np.testing.assert_array_equal(o[lane::4], (rad * c).astype(dtype), err_msg=f"lane {lane}")
        np.testing.assert_array_equal(o[lane + 1::4], (rad * s).astype(dtype), err_msg=f"lane {lane + 1}")


def edge_logvars():
    rng = np.random.default_rng(6)
    exps = np.arange(0, 255, dtype=np.uint32) << 23            # every float32 exponent, both signs
    mant = rng.integers(0, 1 << 23, (exps.size, 6), dtype=np.uint32)
    bits = (exps[:, None] | mant).reshape(-1)
    v = np.concatenate([bits.view(np.float32), -bits.view(np.float32)])
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 3.4028235e38, -3.4028235e38],
                       np.float32)
    # exp(lv/2) near float32 underflow (subnormal results, then 0) and overflow
    edges = np.concatenate([np.linspace(-210.0, -165.0, 1500), np.linspace(170.0, 180.0, 400),
                            np.linspace(-1500.0, -1480.0, 50), np.linspace(1415.0, 1425.0, 50)]).astype(np.float32)
    return np.concatenate([v, special, edges])


def test_reparam_float32_std_matches_exp_det():
    lv = edge_logvars()
    z = np.empty_like(lv)
    S._reparam_span32(np.zeros_like(lv), lv, z, np.ones_like(lv))   # z = 0 + std * 1 = std
    with np.errstate(all="ignore"):
        want = np.array([np.float32(S.exp_det(0.5 * float(x))) for x in lv], np.float32)
    assert np.isnan(want).sum() == 1 and np.isinf(want).sum() > 100 and (want == 0).sum() > 100
    assert ((want > 0) & (want < np.finfo(np.float32).tiny)).sum() > 100     # subnormal stds
    np.testing.assert_array_equal(z.view(np.uint32), want.view(np.uint32))
