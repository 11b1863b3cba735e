"""pf.ops.attention / attention_backward: every built CPU impl against the float64 reference,
fixed shapes on every device in each dtype it takes (the CUDA kernel in float32, float16 and
bfloat16 too: marker ``gpu``), finite-difference gradients, torch's scaled_dot_product_attention,
every SIMD path, errors."""
import math

import numpy as np
import pytest

import pixelforge as pf
from pixelforge.ops._ref import attention as ref
from opcheck import (TOL, device_of, dtype_params, fast_impls, finite_diff, impl_dtype_params, noncontig, run_python,
                     to_device, to_host64)

IMPLS = fast_impls("attention")
SEED = np.random.SeedSequence().entropy  # fresh inputs every run; printed on failure


def rng(*salt):
    return np.random.default_rng([SEED % (2**63), *salt])


def make(r, b, h, hkv, lq, lk, d, dtype=np.float32):
    q = r.standard_normal((b, h, lq, d)).astype(dtype)
    k = r.standard_normal((b, hkv, lk, d)).astype(dtype)
    v = r.standard_normal((b, hkv, lk, d)).astype(dtype)
    return q, k, v


def f64(*arrays):
    return [np.asarray(a, np.float64) for a in arrays]


def close(actual, expected, dtype, what, reduction=1, cond=1.0):
    """float32: rtol 1e-4, atol 1e-5 * sqrt(reduction / 64) * cond. The float32 error of a sum of
    n rounded terms grows like sqrt(n); an attention output averages <= Lk values (weights sum to
    1, so no growth), but dk/dv sum over Lq * H/Hkv query rows and dq over Lk keys, so atol
    scales with that. ``cond`` (gradients only) is grad_cond(scale, D)."""
    rtol, atol = TOL[np.dtype(dtype).name]
    atol *= max(1.0, math.sqrt(reduction / 64)) * cond
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64), rtol=rtol,
                               atol=atol, err_msg=f"{what} (seed {SEED})")


def grad_cond(scale, d):
    """The logit std for unit-variance inputs, scale * sqrt(D): the absolute float32 rounding error
    of a logit grows with it, and the gradients multiply that error by dP = dO.V^T (also ~sqrt(D)).
    At the default scale it is 1; a large custom scale with D = 128 makes the backward ill-conditioned
    in float32 (seen: 1.8e-5 off in dq at scale 0.46, D = 128, where the default atol would be 1.3e-5)."""
    return max(1.0, scale * math.sqrt(d))


# (B, H, Hkv, Lq, Lk, D): odd lengths, lengths not multiples of the 64-tile, size-1 dims, GQA/MQA
CASES = [
    (2, 4, 2, 37, 70, 16),
    (1, 2, 1, 65, 65, 32),
    (2, 3, 3, 5, 130, 40),
    (1, 8, 2, 1, 9, 64),
    (1, 1, 1, 100, 300, 80),
    (1, 2, 1, 129, 200, 128),
    (3, 1, 1, 1, 1, 64),
    (1, 4, 4, 64, 64, 64),
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("causal", [False, True])
def test_forward_matches_reference(impl, case, causal):
    b, h, hkv, lq, lk, d = case
    for dtype in (np.float32, np.float64):
        q, k, v = make(rng(*case, causal), *case, dtype)
        scale = None if dtype == np.float32 else 0.37
        out, lse = pf.ops.attention(q, k, v, causal=causal, scale=scale, return_lse=True, impl=impl)
        s = d**-0.5 if scale is None else scale
        want, want_lse = ref.attention(*f64(q, k, v), causal, s, return_lse=True)
        assert out.dtype == dtype and out.shape == q.shape
        assert lse.dtype == dtype and lse.shape == (b, h, lq)
        close(out, want, dtype, f"{impl} out {case} causal={causal}")
        close(lse, want_lse, dtype, f"{impl} lse {case} causal={causal}")


@pytest.mark.parametrize("impl", IMPLS)
def test_random_shapes(impl):
    r = rng(99)
    for trial in range(6):
        hkv = int(r.integers(1, 3))
        h = hkv * int(r.integers(1, 4))
        lk = int(r.integers(1, 301))
        causal = bool(r.integers(0, 2))
        lq = int(r.integers(1, lk + 1)) if causal else int(r.integers(1, 301))
        d = int(r.choice([16, 32, 40, 64, 80, 128, 24, 17, 3]))
        b = int(r.integers(1, 3))
        q, k, v = make(r, b, h, hkv, lq, lk, d)
        scale = float(r.uniform(0.05, 0.5))
        out, lse = pf.ops.attention(q, k, v, causal=causal, scale=scale, return_lse=True, impl=impl)
        want, want_lse = ref.attention(*f64(q, k, v), causal, scale, return_lse=True)
        what = f"{impl} trial {trial} {(b, h, hkv, lq, lk, d)} causal={causal}"
        close(out, want, np.float32, what, cond=grad_cond(scale, d))  # same logit rounding as below
        close(lse, want_lse, np.float32, what, cond=grad_cond(scale, d))
        do = r.standard_normal(out.shape).astype(np.float32)
        got = pf.ops.attention_backward(do, q, k, v, out, lse, causal=causal, scale=scale, impl=impl)
        exp = ref.attention_backward(*f64(do, q, k, v, want, want_lse), causal, scale)
        for name, g, e, n in zip("qkv", got, exp, (lk, lq * h // hkv, lq * h // hkv)):
            close(g, e, np.float32, f"d{name} {what}", reduction=n, cond=grad_cond(scale, d))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASES[:6])
@pytest.mark.parametrize("causal", [False, True])
def test_backward_matches_reference(impl, case, causal):
    b, h, hkv, lq, lk, d = case
    for dtype in (np.float32, np.float64):
        r = rng(*case, causal, 1)
        q, k, v = make(r, *case, dtype)
        do = r.standard_normal(q.shape).astype(dtype)
        out, lse = ref.attention(*f64(q, k, v), causal, 0.3, return_lse=True)
        got = pf.ops.attention_backward(do, q, k, v, out.astype(dtype), lse, causal=causal, scale=0.3, impl=impl)
        exp = ref.attention_backward(*f64(do, q, k, v, out, lse), causal, 0.3)
        for name, g, e, n in zip("qkv", got, exp, (lk, lq * h // hkv, lq * h // hkv)):
            assert g.dtype == dtype and g.shape == e.shape
            close(g, e, dtype, f"{impl} d{name} {case} causal={causal}", reduction=n, cond=grad_cond(0.3, d))


@pytest.mark.parametrize("impl", ["ref", *IMPLS])
@pytest.mark.parametrize("causal", [False, True])
def test_finite_difference_gradients(impl, causal):
    r = rng(7, causal)
    q, k, v = make(r, 1, 2, 1, 5, 6, 3, np.float64)
    w = r.standard_normal(q.shape)
    scale = 0.7

    def loss(qq, kk, vv):
        return float((ref.attention(qq, kk, vv, causal, scale) * w).sum())

    out, lse = pf.ops.attention(q, k, v, causal=causal, scale=scale, return_lse=True, impl=impl)
    dq, dk, dv = pf.ops.attention_backward(w, q, k, v, out, lse, causal=causal, scale=scale, impl=impl)
    np.testing.assert_allclose(dq, finite_diff(lambda x: loss(x, k, v), q), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dk, finite_diff(lambda x: loss(q, x, v), k), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dv, finite_diff(lambda x: loss(q, k, x), v), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("impl", IMPLS)
def test_edge_inputs(impl):
    r = rng(3)
    # non-contiguous views give the same result as their contiguous copies
    q, k, v = make(r, 2, 2, 1, 33, 47, 32)
    a = pf.ops.attention(noncontig(q), noncontig(k), noncontig(v), causal=True, impl=impl)
    b = pf.ops.attention(q, k, v, causal=True, impl=impl)
    np.testing.assert_array_equal(a, b)
    # empty batch and empty query length
    for shape_q, shape_kv in (((0, 2, 5, 16), (0, 1, 7, 16)), ((2, 2, 0, 16), (2, 1, 7, 16))):
        q = np.zeros(shape_q, np.float32)
        k = np.ones(shape_kv, np.float32)
        out, lse = pf.ops.attention(q, k, k, return_lse=True, impl=impl)
        assert out.shape == shape_q and lse.shape == shape_q[:3]
        dq, dk, dv = pf.ops.attention_backward(q, q, k, k, out, lse, impl=impl)
        assert dq.shape == shape_q and dk.shape == shape_kv and dv.shape == shape_kv
        assert not dk.any() and not dv.any()
    # KV-cache decoding: one query against a long cache, causal sees every key
    q, k, v = make(r, 1, 4, 2, 1, 257, 64)
    np.testing.assert_allclose(pf.ops.attention(q, k, v, causal=True, impl=impl),
                               pf.ops.attention(q, k, v, causal=False, impl=impl), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("impl", IMPLS)
def test_backward_deterministic_across_thread_counts(impl):
    code = f"""
        import hashlib, numpy as np, pixelforge as pf
        r = np.random.default_rng(5)
        q = r.standard_normal((2, 4, 150, 64)).astype(np.float32)
        k = r.standard_normal((2, 2, 170, 64)).astype(np.float32)
        v = r.standard_normal((2, 2, 170, 64)).astype(np.float32)
        o, l = pf.ops.attention(q, k, v, causal=True, return_lse=True, impl="{impl}")
        g = pf.ops.attention_backward(o, q, k, v, o, l, causal=True, impl="{impl}")
        print(hashlib.sha256(b"".join(x.tobytes() for x in (o, l, *g))).hexdigest())
    """
    one = run_python(code, env={"OMP_NUM_THREADS": "1"}).strip()
    three = run_python(code, env={"OMP_NUM_THREADS": "3"}).strip()
    assert one == three


@pytest.mark.parametrize("isa", ["generic", "avx2", "avx512"])
def test_every_simd_path(isa):
    if "cpu" not in IMPLS:
        pytest.skip("pixelforge._cpu not built")
    code = """
        import numpy as np, pixelforge as pf
        from pixelforge.ops._ref import attention as ref
        r = np.random.default_rng(11)
        for (b, h, hkv, lq, lk, d, causal) in [(1, 2, 1, 70, 75, 40, True), (2, 2, 2, 33, 130, 64, False),
                                               (1, 1, 1, 9, 20, 19, True), (1, 2, 1, 20, 20, 128, True)]:
            for dt, tol in ((np.float32, 1e-4), (np.float64, 1e-10)):
                q = r.standard_normal((b, h, lq, d)).astype(dt)
                k = r.standard_normal((b, hkv, lk, d)).astype(dt)
                v = r.standard_normal((b, hkv, lk, d)).astype(dt)
                o, l = pf.ops.attention(q, k, v, causal=causal, return_lse=True, impl="cpu")
                x = [a.astype(np.float64) for a in (q, k, v)]
                ro, rl = ref.attention(*x, causal, d ** -0.5, return_lse=True)
                np.testing.assert_allclose(o, ro, rtol=tol, atol=tol / 10)
                np.testing.assert_allclose(l, rl, rtol=tol, atol=tol / 10)
                g = pf.ops.attention_backward(o, q, k, v, o, l, causal=causal, impl="cpu")
                rg = ref.attention_backward(o.astype(np.float64), *x, ro, rl, causal, d ** -0.5)
                for a, e in zip(g, rg):
                    np.testing.assert_allclose(a, e, rtol=tol, atol=tol / 2)
        print(pf.info()["cpu"]["isa"])
    """
    got = run_python(code, env={"PIXELFORGE_CPU_ISA": isa}).strip()
    native = pf.info()["cpu"]["native_isa"]
    order = ["generic", "avx2", "avx512"]
    assert got == order[min(order.index(isa), order.index(native))]


# ----------------------------------------------------------------------------- every device
# Forward and backward on every device in each dtype it takes (impl_dtype_params: the CPU in
# float32 / float64, the CUDA kernel and the CuPy reference in float32 / float16 / bfloat16 under
# the ``gpu`` marker): the shapes above, one with Lq = Lk not a multiple of 8 (77) and D = 24.
DEVICE_CASES = CASES[:6] + [(2, 2, 2, 77, 77, 24)]


def _full_precision(device, impl):
    """float32 (and float64 on the CPU): the dtypes checked at TOL against float64; the CPU
    reference in float64 is the reference itself, so that pair is left out."""
    return [d for d in dtype_params(device) if d in ("float32", "float64")
            and not (device == "cpu" and impl == "ref" and d == "float64")]


def _low_precision(device, impl):
    """float16 / bfloat16: the GPU's storage dtypes (the CPU takes none)."""
    return [d for d in dtype_params(device) if d in ("float16", "bfloat16")]


@pytest.mark.parametrize("device,impl,dtype", impl_dtype_params("attention", dtypes=_full_precision))
@pytest.mark.parametrize("case", DEVICE_CASES)
@pytest.mark.parametrize("causal", [False, True])
def test_every_device_matches_reference(device, impl, dtype, case, causal):
    """out, lse and the three gradients (from the impl's own out and lse) against the float64
    reference of the values the device holds, at TOL of the dtype: atol grows like sqrt(n / 64)
    for gradients summed over n terms and with grad_cond(0.3, D) (at D = 128 the CPU's float32 dq
    was seen 1.13x past the unconditioned bound in 800 draws)."""
    b, h, hkv, lq, lk, d = case
    r = rng(*case, causal, 4)
    q, k, v = (to_device(a, device, dtype) for a in make(r, *case, np.float64))
    do = to_device(r.standard_normal(q.shape), device, dtype)
    q64, k64, v64, do64 = (to_host64(a) for a in (q, k, v, do))
    what = f"{device}/{impl}/{dtype} {case} causal={causal}"
    out, lse = pf.ops.attention(q, k, v, causal=causal, scale=0.3, return_lse=True, impl=impl)
    assert device_of(out) == device and out.dtype == q.dtype and out.shape == q.shape
    assert device_of(lse) == device and lse.dtype == (np.float64 if dtype == "float64" else np.float32)
    want, want_lse = ref.attention(q64, k64, v64, causal, 0.3, return_lse=True)
    close(to_host64(out), want, dtype, f"out {what}")
    close(to_host64(lse), want_lse, dtype, f"lse {what}")
    grads = pf.ops.attention_backward(do, q, k, v, out, lse, causal=causal, scale=0.3, impl=impl)
    exp = ref.attention_backward(do64, q64, k64, v64, want, want_lse, causal, 0.3)
    for name, g, e, n in zip("qkv", grads, exp, (lk, lq * h // hkv, lq * h // hkv)):
        assert device_of(g) == device and g.dtype == q.dtype and g.shape == e.shape
        close(to_host64(g), e, dtype, f"d{name} {what}", reduction=n, cond=grad_cond(0.3, d))


def _bf16_round(x):
    """float32 -> nearest bfloat16 value (round to nearest even), kept in float32."""
    b = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    b = (b + 0x7FFF + ((b >> 16) & 1)) & 0xFFFF0000
    return b.astype(np.uint32).view(np.float32)


def _round(x, dtype):
    x = np.asarray(x, np.float32)
    return x.astype(np.float16).astype(np.float32) if dtype == "float16" else _bf16_round(x)


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


@pytest.mark.parametrize("device,impl,dtype", impl_dtype_params("attention", dtypes=_low_precision))
@pytest.mark.parametrize("case", DEVICE_CASES)
@pytest.mark.parametrize("causal", [False, True])
def test_low_precision_within_twice_reference_error(device, impl, dtype, case, causal):
    """float16 / bfloat16 storage (float32 accumulation): out at most twice the error of a
    reference computed in the same low precision (S, P and O rounded to the dtype), lse at 1e-3,
    and the gradients at most twice the error of the float64 gradient evaluated at that
    low-precision output (rounded to the dtype), plus 2e-2 (float16) / 8e-2 (bfloat16) of their
    scale. Only the GPU takes these dtypes."""
    b, h, hkv, lq, lk, d = case
    r = rng(*case, causal, 5)
    host = [_round(r.standard_normal(s), dtype) for s in ((b, h, lq, d), (b, hkv, lk, d), (b, hkv, lk, d))]
    q, k, v = (to_device(a, device, dtype) for a in host)
    scale = d**-0.5
    out, lse = pf.ops.attention(q, k, v, causal=causal, return_lse=True, impl=impl)
    assert device_of(out) == device and out.dtype == q.dtype and lse.dtype == np.float32
    truth, truth_lse = ref.attention(*(a.astype(np.float64) for a in host), causal, scale, return_lse=True)
    lowp = _lowp_forward(*host, causal, scale, dtype)
    tol = 2 * _err(lowp, truth) + 1e-6
    assert _err(to_host64(out), truth) <= tol, f"out: {_err(to_host64(out), truth)} > {tol} (seed {SEED})"
    np.testing.assert_allclose(to_host64(lse), truth_lse, rtol=1e-3, atol=1e-3, err_msg=f"lse (seed {SEED})")
    # backward: against the float64 gradient of the same (rounded) inputs; the bound is twice the
    # error of the float64 gradient evaluated at a low-precision forward output
    do_host = _round(r.standard_normal(out.shape), dtype)
    grads = pf.ops.attention_backward(to_device(do_host, device, dtype), q, k, v, out, lse, causal=causal,
                                      impl=impl)
    x64 = [a.astype(np.float64) for a in host]
    exact = ref.attention_backward(do_host.astype(np.float64), *x64, truth, truth_lse, causal, scale)
    lowp_g = ref.attention_backward(do_host.astype(np.float64), *x64, lowp, truth_lse, causal, scale)
    lowp_g = [_round(g, dtype) for g in lowp_g]
    for name, g, e, lg in zip("qkv", grads, exact, lowp_g):
        assert device_of(g) == device and g.dtype == q.dtype
        scale_e = max(1.0, float(np.abs(e).max()))
        bound = 2 * _err(lg, e) + 2e-2 * scale_e * (1 if dtype == "float16" else 4)
        assert _err(to_host64(g), e) <= bound, f"d{name}: {_err(to_host64(g), e)} > {bound} (seed {SEED})"


# ----------------------------------------------------------------------------- torch
def _torch_mask(torch, lq, lk):
    i = torch.arange(lq)[:, None]
    j = torch.arange(lk)[None, :]
    return j <= i + (lk - lq)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", [(2, 4, 2, 50, 50, 64), (1, 6, 1, 17, 90, 40), (2, 2, 2, 1, 33, 32)])
@pytest.mark.parametrize("causal", [False, True])
def test_matches_torch_sdpa(impl, case, causal):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F  # noqa: PLC0415
    b, h, hkv, lq, lk, d = case
    q, k, v = make(rng(*case, causal, 2), *case, np.float64)
    tq, tk, tv = (torch.from_numpy(a).requires_grad_(True) for a in (q, k, v))
    mask = _torch_mask(torch, lq, lk) if causal else None
    tout = F.scaled_dot_product_attention(tq, tk, tv, attn_mask=mask, scale=0.2, enable_gqa=hkv != h)
    do = rng(*case, 3).standard_normal(q.shape)
    tout.backward(torch.from_numpy(do))
    for dtype in (np.float32, np.float64):
        qq, kk, vv = (a.astype(dtype) for a in (q, k, v))
        out, lse = pf.ops.attention(qq, kk, vv, causal=causal, scale=0.2, return_lse=True, impl=impl)
        close(out, tout.detach().numpy(), dtype, f"{impl} torch out {case}")
        grads = pf.ops.attention_backward(do.astype(dtype), qq, kk, vv, out, lse, causal=causal, scale=0.2,
                                          impl=impl)
        for name, g, t, n in zip("qkv", grads, (tq.grad, tk.grad, tv.grad), (lk, lq * h // hkv, lq * h // hkv)):
            close(g, t.numpy(), dtype, f"{impl} torch d{name} {case}", reduction=n, cond=grad_cond(0.2, d))


def test_causal_equals_torch_is_causal_when_square():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F  # noqa: PLC0415
    q, k, v = make(rng(5), 1, 2, 2, 70, 70, 32, np.float64)
    want = F.scaled_dot_product_attention(*(torch.from_numpy(a) for a in (q, k, v)), is_causal=True).numpy()
    for impl in ["ref", *IMPLS]:
        np.testing.assert_allclose(pf.ops.attention(q, k, v, causal=True, impl=impl), want, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------- errors
def _err_inputs():
    q = np.zeros((1, 4, 8, 16), np.float32)
    kv = np.zeros((1, 2, 8, 16), np.float32)
    return q, kv


@pytest.mark.parametrize("impl", ["auto", "ref", *IMPLS])
@pytest.mark.parametrize("bad, exc, name", [
    (dict(k=np.zeros((1, 2, 8, 32), np.float32)), ValueError, "k"),             # mismatched D
    (dict(v=np.zeros((1, 2, 8, 8), np.float32)), ValueError, "v"),              # mismatched D in v
    (dict(k=np.zeros((1, 3, 8, 16), np.float32), v=np.zeros((1, 3, 8, 16), np.float32)), ValueError, "k"),  # H % Hkv
    (dict(v=np.zeros((1, 2, 9, 16), np.float32)), ValueError, "v"),             # k, v lengths differ
    (dict(q=np.zeros((4, 8, 16), np.float32)), ValueError, "q"),                # wrong ndim
    (dict(k=np.zeros((2, 8, 16), np.float32)), ValueError, "k"),                # wrong ndim
    (dict(q=np.zeros((1, 4, 8, 16), np.int32)), TypeError, "q"),                # integer dtype
    (dict(k=np.zeros((1, 2, 8, 16), np.float64)), TypeError, "k"),              # mixed dtypes
    (dict(k=np.zeros((1, 2, 0, 16), np.float32), v=np.zeros((1, 2, 0, 16), np.float32)), ValueError, "k"),  # empty keys
    (dict(q=np.zeros((1, 4, 9, 16), np.float32), causal=True), ValueError, "causal"),  # Lq > Lk
    (dict(causal=1), TypeError, "causal"),
    (dict(scale="x"), TypeError, "scale"),
    (dict(scale=float("nan")), ValueError, "scale"),
    (dict(q="not an array"), TypeError, "q"),
    (dict(k=np.zeros((2, 2, 8, 16), np.float32), v=np.zeros((2, 2, 8, 16), np.float32)), ValueError, "k"),  # batch
])
def test_errors_name_the_argument(impl, bad, exc, name):
    q, kv = _err_inputs()
    args = dict(q=q, k=kv, v=kv, causal=False, scale=None)
    args.update(bad)
    with pytest.raises(exc, match=rf"^{name}:"):
        pf.ops.attention(args["q"], args["k"], args["v"], causal=args["causal"], scale=args["scale"], impl=impl)
    with pytest.raises(exc, match=rf"^{name}:"):
        g = np.zeros((1, 4, 8, 16), np.float32)
        pf.ops.attention_backward(g, args["q"], args["k"], args["v"], g, np.zeros((1, 4, 8), np.float32),
                                  causal=args["causal"], scale=args["scale"], impl=impl)


@pytest.mark.parametrize("impl", ["ref", *IMPLS])
def test_backward_errors(impl):
    q, kv = _err_inputs()
    g = np.zeros_like(q)
    lse = np.zeros((1, 4, 8), np.float32)
    with pytest.raises(ValueError, match="^grad_out:"):
        pf.ops.attention_backward(g[:, :, :4], q, kv, kv, g, lse, impl=impl)
    with pytest.raises(ValueError, match="^out:"):
        pf.ops.attention_backward(g, q, kv, kv, g[..., :8], lse, impl=impl)
    with pytest.raises(ValueError, match="^lse:"):
        pf.ops.attention_backward(g, q, kv, kv, g, lse[:, :, :3], impl=impl)
    with pytest.raises(TypeError, match="^grad_out:"):
        pf.ops.attention_backward(g.astype(np.float64), q, kv, kv, g, lse, impl=impl)
    with pytest.raises(TypeError, match="^lse:"):
        pf.ops.attention_backward(g, q, kv, kv, g, lse.astype(np.int64), impl=impl)
    with pytest.raises(ValueError, match="^impl:"):
        pf.ops.attention(q, kv, kv, impl="bogus")


def test_cpu_glue_checks_again():
    if "cpu" not in IMPLS:
        pytest.skip("pixelforge._cpu not built")
    from pixelforge import _backend  # noqa: PLC0415
    mod = _backend.cpu_module()
    q, kv = _err_inputs()
    out, lse = np.empty_like(q), np.empty((1, 4, 8), np.float32)
    with pytest.raises(ValueError, match="k:"):
        mod.attention_forward(q, np.zeros((1, 3, 8, 16), np.float32), np.zeros((1, 3, 8, 16), np.float32), out, lse,
                              False, 0.25)
    with pytest.raises(ValueError, match="lse:"):
        mod.attention_forward(q, kv, kv, out, np.empty((1, 4, 7), np.float32), False, 0.25)
    with pytest.raises(ValueError, match="causal:"):
        mod.attention_forward(np.zeros((1, 4, 9, 16), np.float32), kv, kv, np.empty((1, 4, 9, 16), np.float32),
                              np.empty((1, 4, 9), np.float32), True, 0.25)
    with pytest.raises(TypeError, match="k:"):
        mod.attention_forward(q, kv.astype(np.float64), kv, out, lse, False, 0.25)
    with pytest.raises(ValueError, match="q:"):
        mod.attention_forward(q[:, :, ::2], kv, kv, out, lse, False, 0.25)
