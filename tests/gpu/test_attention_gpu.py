"""pf.ops.attention on an NVIDIA GPU, what only the GPU kernel has: dk/dv bitwise the same run
to run for grouped-query heads (the GPU accumulates dq with atomics, dk/dv without), its own
errors (D > 128, a key on the host), and float16 decoding (one query: causal equals non-causal
bit for bit) with an empty batch. The kernel's values against the float64 reference (float32,
float16, bfloat16) are tests/test_attention.py's, run there for the GPU impls too (marker
``gpu``). Runs only where an NVIDIA GPU and CuPy are present."""
import numpy as np
import pytest

import pixelforge as pf

pytestmark = pytest.mark.gpu


def _cp():
    import cupy  # noqa: PLC0415
    return cupy


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
