"""pf.ops.attention on the GPU (impl="cuda"): float32 against the float64 reference at the float32
tolerances; float16/bfloat16 at most twice the error of a reference computed in the same low
precision (intermediates S, P, dS rounded to the dtype, float32 accumulation). Runs only where
an NVIDIA GPU and CuPy are present."""
import math
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))

import pixelforge as pf  # noqa: E402
from pixelforge.ops._ref import attention as ref  # noqa: E402

pytestmark = pytest.mark.gpu

CASES = [  # (B, H, Hkv, Lq, Lk, D)
    (2, 4, 2, 37, 70, 16),
    (1, 2, 1, 65, 65, 32),
    (2, 3, 3, 5, 130, 40),
    (1, 8, 2, 1, 9, 64),
    (1, 1, 1, 100, 300, 80),
    (1, 2, 1, 129, 200, 128),
    (2, 2, 2, 77, 77, 24),
]


def _cp():
    import cupy  # noqa: PLC0415
    return cupy


def _bf16_round(x):
    """float32 -> nearest bfloat16 value (round to nearest even), kept in float32."""
    b = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    b = (b + 0x7FFF + ((b >> 16) & 1)) & 0xFFFF0000
    return b.astype(np.uint32).view(np.float32)


def _round(x, dtype):
    x = np.asarray(x, np.float32)
    return x.astype(np.float16).astype(np.float32) if dtype == "float16" else _bf16_round(x)


def _to_gpu(x, dtype):
    cp = _cp()
    if dtype == "bfloat16":
        try:
            return cp.asarray(x.astype(np.float32)).astype(cp.dtype("bfloat16"))
        except Exception:  # noqa: BLE001
            pytest.skip("this CuPy has no bfloat16")
    return cp.asarray(x.astype(dtype))


def _to_host(x):
    return _cp().asnumpy(x.astype(_cp().float32)).astype(np.float64)


def _lowp_forward(q, k, v, causal, scale, dtype):
    """The naive algorithm with every intermediate rounded to ``dtype``."""
    g = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, g, axis=1), np.repeat(v, g, axis=1)
    s = _round(np.matmul(q, np.swapaxes(k, -1, -2)).astype(np.float32) * scale, dtype).astype(np.float64)
    if causal:
        lq, lk = q.shape[2], k.shape[2]
        s = np.where(np.arange(lk)[None, :] > np.arange(lq)[:, None] + lk - lq, -np.inf, s)
    p = np.exp(s - s.max(-1, keepdims=True))
    p = _round(p / p.sum(-1, keepdims=True), dtype)
    return _round(np.matmul(p, v), dtype)


def _err(a, b):
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("causal", [False, True])
def test_float32_matches_reference(case, causal):
    cp = _cp()
    b, h, hkv, lq, lk, d = case
    r = np.random.default_rng()
    q, k, v = (r.standard_normal(s) for s in ((b, h, lq, d), (b, hkv, lk, d), (b, hkv, lk, d)))
    q, k, v = (a.astype(np.float32) for a in (q, k, v))
    out, lse = pf.ops.attention(cp.asarray(q), cp.asarray(k), cp.asarray(v), causal=causal, scale=0.3,
                                return_lse=True, impl="cuda")
    want, want_lse = ref.attention(*(a.astype(np.float64) for a in (q, k, v)), causal, 0.3, return_lse=True)
    np.testing.assert_allclose(cp.asnumpy(out), want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(cp.asnumpy(lse), want_lse, rtol=1e-4, atol=1e-5)
    do = r.standard_normal(q.shape).astype(np.float32)
    grads = pf.ops.attention_backward(cp.asarray(do), cp.asarray(q), cp.asarray(k), cp.asarray(v), out, lse,
                                      causal=causal, scale=0.3, impl="cuda")
    exp = ref.attention_backward(do.astype(np.float64), *(a.astype(np.float64) for a in (q, k, v)), want, want_lse,
                                 causal, 0.3)
    for name, g, e, n in zip("qkv", grads, exp, (lk, lq * h // hkv, lq * h // hkv)):
        # float32 sums over n terms: the rounding error grows like sqrt(n)
        np.testing.assert_allclose(cp.asnumpy(g), e, rtol=1e-4, atol=1e-5 * max(1.0, math.sqrt(n / 64)),
                                   err_msg=f"d{name}")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("causal", [False, True])
def test_low_precision_within_twice_reference_error(dtype, case, causal):
    b, h, hkv, lq, lk, d = case
    r = np.random.default_rng()
    host = [_round(r.standard_normal(s), dtype) for s in ((b, h, lq, d), (b, hkv, lk, d), (b, hkv, lk, d))]
    q, k, v = (_to_gpu(a, dtype) for a in host)
    scale = d**-0.5
    out, lse = pf.ops.attention(q, k, v, causal=causal, return_lse=True, impl="cuda")
    assert out.dtype == q.dtype and lse.dtype == np.float32
    truth, truth_lse = ref.attention(*(a.astype(np.float64) for a in host), causal, scale, return_lse=True)
    lowp = _lowp_forward(*host, causal, scale, dtype)
    tol = 2 * _err(lowp, truth) + 1e-6
    assert _err(_to_host(out), truth) <= tol
    np.testing.assert_allclose(_to_host(lse), truth_lse, rtol=1e-3, atol=1e-3)
    # backward: compare against the float64 gradient of the same (rounded) inputs; the bound is
    # twice the error of the float64 gradient evaluated at a low-precision forward output
    do_host = _round(r.standard_normal(out.shape), dtype)
    grads = pf.ops.attention_backward(_to_gpu(do_host, dtype), q, k, v, out, lse, causal=causal, impl="cuda")
    x64 = [a.astype(np.float64) for a in host]
    exact = ref.attention_backward(do_host.astype(np.float64), *x64, truth, truth_lse, causal, scale)
    lowp_g = ref.attention_backward(do_host.astype(np.float64), *x64, lowp, truth_lse, causal, scale)
    lowp_g = [_round(g, dtype) for g in lowp_g]
    for name, g, e, lg in zip("qkv", grads, exact, lowp_g):
        scale_e = max(1.0, float(np.abs(e).max()))
        bound = 2 * _err(lg, e) + 2e-2 * scale_e * (1 if dtype == "float16" else 4)
        assert _err(_to_host(g), e) <= bound, f"d{name}: {_err(_to_host(g), e)} > {bound}"


def test_gqa_dk_dv_deterministic_and_errors():
    cp = _cp()
    r = np.random.default_rng(1)
    q = cp.asarray(r.standard_normal((2, 8, 90, 64)).astype(np.float32))
    k = cp.asarray(r.standard_normal((2, 2, 100, 64)).astype(np.float32))
    v = cp.asarray(r.standard_normal((2, 2, 100, 64)).astype(np.float32))
    out, lse = pf.ops.attention(q, k, v, causal=True, return_lse=True, impl="cuda")
    g1 = pf.ops.attention_backward(out, q, k, v, out, lse, causal=True, impl="cuda")
    g2 = pf.ops.attention_backward(out, q, k, v, out, lse, causal=True, impl="cuda")
    assert bool((g1[1] == g2[1]).all()) and bool((g1[2] == g2[2]).all())  # dk, dv: no atomics
    with pytest.raises(ValueError, match="^q:"):
        big = cp.zeros((1, 1, 4, 160), cp.float32)
        pf.ops.attention(big, big, big, impl="cuda")
    with pytest.raises(ValueError, match="^k:"):
        pf.ops.attention(q, k[:, :, :, :32], v, impl="cuda")
    with pytest.raises(ValueError, match="^k:"):
        pf.ops.attention(q, k.get(), v, impl="cuda")  # mixed devices: numpy k


def test_empty_and_decode():
    cp = _cp()
    r = np.random.default_rng(2)
    q = cp.asarray(r.standard_normal((1, 4, 1, 64)).astype(np.float16))
    k = cp.asarray(r.standard_normal((1, 2, 300, 64)).astype(np.float16))
    a = pf.ops.attention(q, k, k, causal=True, impl="cuda")
    b = pf.ops.attention(q, k, k, causal=False, impl="cuda")
    assert bool((a == b).all())
    e = cp.zeros((0, 4, 5, 64), cp.float32)
    ek = cp.zeros((0, 2, 5, 64), cp.float32)
    out, lse = pf.ops.attention(e, ek, ek, return_lse=True, impl="cuda")
    assert out.shape == e.shape and lse.shape == (0, 4, 5)
