"""The bfloat16 path on the CPU (pixelforge/precision.py; kernels/matmul/matmul_bf16_cpu.cpp,
kernels/conv2d/conv2d_bf16_cpu.cpp).

Truth: float64 products of the operands rounded to bfloat16 (the rounding written out in NumPy,
ties to even), so the only error left is float32 summation: tolerances are float32's, not
bfloat16's. torch's CPU autocast, where installed, bounds the error against unrounded float64.
Where the CPU lacks avx512_bf16 the kernel tests skip and the fallback tests run (autocast then
computes float32, bit for bit); PIXELFORGE_CPU_BF16=0 in a subprocess checks the fallback here.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import pixelforge as pf
from pixelforge import precision

HAS_BF16 = precision.bfloat16_kernels()
needs_bf16 = pytest.mark.skipif(not HAS_BF16, reason="CPU path without avx512_bf16 (fallback tested below)")


def rounded(x):
    """x rounded to bfloat16 by bit arithmetic of our own (nearest, ties to even), as float64."""
    u = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.int64)
    exp0 = (u & 0x7F800000) == 0
    r = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    r = np.where(exp0, u & 0x80000000, r)
    return r.astype(np.uint32).view(np.float32).reshape(np.shape(x)).astype(np.float64)


def close(got, want, k, what):
    """float32 summation of k products: |error| <= k·2⁻²³ of the magnitudes summed (loose x4)."""
    scale = np.abs(want).max() + 1e-30
    err = np.abs(got.astype(np.float64) - want).max() / scale
    assert err <= 4 * max(k, 1) * 2.0 ** -23, f"{what}: relative error {err:.3g} for k={k}"


def test_round_bfloat16_known_values():
    vals = np.array([1.0, 1.00390625, 1.005859375, 1.01171875, 1.0029296875, -2.5, 3e-39, -3e-39,
                     np.inf, -np.inf, 65504.0, 1e38], np.float32)
    # bfloat16 keeps 7 fraction bits (spacing 2^-7 at 1): 1 + 2^-8 ties -> even 1; 1 + 1.5·2^-8
    # rounds up to 1 + 2^-7; 1 + 3·2^-8 ties -> even 1 + 2^-6; 1 + 3·2^-10 rounds down;
    # denormals flush to a signed zero; 65504 rounds up to 2^16
    want = np.array([1.0, 1.0, 1.0078125, 1.015625, 1.0, -2.5, 0.0, -0.0, np.inf, -np.inf,
                     65536.0, 9.999946e37], np.float32)
    got = precision.round_bfloat16(vals)
    np.testing.assert_array_equal(got[:-1], want[:-1])
    assert np.signbit(got[7]) and not np.signbit(got[6])
    assert abs(got[-1] - 1e38) / 1e38 < 2 ** -8
    assert np.isnan(precision.round_bfloat16(np.array([np.nan], np.float32)))[0]
    np.testing.assert_array_equal(precision.round_bfloat16(vals[:-1]), rounded(vals[:-1]).astype(np.float32))


MATMUL_CASES = [  # (batch_a, batch_b, M, N, K, trans_a, trans_b)
    (1, 1, 1, 1, 1, False, False), (1, 1, 13, 33, 7, False, False), (1, 1, 100, 70, 129, False, True),
    (3, 3, 29, 65, 64, True, False), (1, 1, 64, 96, 300, True, True), (2, 1, 15, 31, 17, False, False),
    (1, 4, 14, 32, 2, False, True), (1, 1, 1, 1000, 3, False, True), (1, 1, 300, 5, 1000, False, False),
    (1, 1, 17, 40, 1025, True, False), (2, 2, 30, 33, 777, False, True),  # several k blocks, odd K
]


@needs_bf16
@pytest.mark.parametrize("case", MATMUL_CASES, ids=str)
def test_matmul_bf16_against_rounded_float64(case):
    ba, bb, m, n, k, ta, tb = case
    g = np.random.default_rng(abs(hash(case)) % 2**32)
    a = g.standard_normal((ba, k, m) if ta else (ba, m, k)).astype(np.float32)
    b = g.standard_normal((bb, n, k) if tb else (bb, k, n)).astype(np.float32)
    a, b = (a[0] if ba == 1 else a), (b[0] if bb == 1 else b)
    with pf.autocast("bfloat16"):
        got = pf.ops.matmul(a, b, trans_a=ta, trans_b=tb, impl="cpu")
        ref = pf.ops.matmul(a, b, trans_a=ta, trans_b=tb, impl="ref")
    A, B = rounded(a), rounded(b)
    A = np.swapaxes(A, -1, -2) if ta else A
    B = np.swapaxes(B, -1, -2) if tb else B
    want = A @ B
    close(got, want, k, "cpu")
    close(ref, want, k, "ref")
    # and it really is bfloat16: float32 is closer to the unrounded float64 product
    exact = (np.swapaxes(a, -1, -2) if ta else a).astype(np.float64) @ (np.swapaxes(b, -1, -2) if tb else b)
    if k >= 7:
        assert np.abs(got - exact).max() > 10 * np.abs(pf.ops.matmul(a, b, trans_a=ta, trans_b=tb) - exact).max()


@needs_bf16
def test_matmul_bf16_strided_views_and_bias():
    g = np.random.default_rng(5)
    big = g.standard_normal((40, 90)).astype(np.float32)
    a = big[::2, 1::3]            # (20, 30), strides in both directions
    b = big[1:31, ::-5].copy()[:, :13]  # (30, 13)
    w = g.standard_normal((13, 30)).astype(np.float32)
    bias = g.standard_normal(13).astype(np.float32)
    with pf.autocast("bfloat16"):
        got = pf.ops.matmul(a, b)
        lin = pf.ops.linear(a, w, bias)
    close(got, rounded(a) @ rounded(b), 30, "strided")
    close(lin, rounded(a) @ rounded(w).T + bias, 30, "linear")


@needs_bf16
def test_layouts_round_alike_denormals_and_nan():
    """Vector and scalar packing (contiguous and strided operands) read a denormal as zero and
    keep NaN and inf alike."""
    a = np.array([[1e-39, 2.0, -1e-40, 3.0]], np.float32)
    b = np.ones((4, 3), np.float32) * np.float32(1e-38 * 0 + 1.5)
    with pf.autocast("bfloat16"):
        c1 = pf.ops.matmul(a, b)
        c2 = pf.ops.matmul(np.asfortranarray(np.repeat(a, 2, 0))[:1], b[:, ::1])
        c3 = pf.ops.matmul(a, np.ascontiguousarray(b.T), trans_b=True)
    np.testing.assert_array_equal(c1, np.full((1, 3), 7.5, np.float32))
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_array_equal(c1, c3)
    a[0, 1] = np.nan
    with pf.autocast("bfloat16"):
        assert np.isnan(pf.ops.matmul(a, b)).all()


CONV_CASES = [  # N, C, H, W, K, R, S, stride, pad, dilation, groups
    (2, 3, 9, 11, 5, 3, 3, 1, 1, 1, 1), (1, 1, 5, 5, 7, 1, 1, 1, 0, 1, 1), (3, 6, 13, 8, 4, 4, 4, 2, 1, 1, 2),
    (2, 5, 10, 10, 16, 3, 3, 2, 1, 1, 1), (1, 4, 12, 12, 8, 3, 3, 1, 2, 2, 1), (4, 64, 8, 8, 30, 4, 4, 2, 1, 1, 1),
    (2, 32, 28, 28, 17, 3, 3, 1, 1, 1, 1), (1, 7, 7, 7, 30, 1, 1, 1, 0, 1, 1), (2, 8, 9, 9, 3, 5, 2, 3, 2, 1, 1),
    (2, 33, 40, 37, 15, 4, 4, 2, 1, 1, 1), (5, 16, 3, 3, 9, 3, 3, 1, 1, 1, 1),
]


def _torch_free_conv64(x, w, b, stride, pad, dil, groups):
    return pf.ops.conv2d(x, w, b, stride=stride, padding=pad, dilation=dil, groups=groups, impl="ref")


@needs_bf16
@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv2d_bf16_forward_against_rounded_float64(case):
    n, c, h, w_, k, r, s, st, pad, dil, grp = case
    g = np.random.default_rng(abs(hash(case)) % 2**32)
    x = g.standard_normal((n, c, h, w_)).astype(np.float32)
    w = g.standard_normal((k, c // grp, r, s)).astype(np.float32)
    b = g.standard_normal(k).astype(np.float32)
    mod = pf._backend.cpu_module()
    geo = [st, st, pad, pad, pad, pad, dil, dil, grp]
    p = (h + 2 * pad - dil * (r - 1) - 1) // st + 1
    q = (w_ + 2 * pad - dil * (s - 1) - 1) // st + 1
    out = np.full((n, k, p, q), np.nan, np.float32)
    mod.conv2d_forward_bf16(x, w, b, out, geo, always=True)
    want = _torch_free_conv64(rounded(x), rounded(w), b.astype(np.float64), st, pad, dil, grp)
    close(out, want, (c // grp) * r * s, "conv2d bf16")
    with pf.autocast("bfloat16"):
        ref = pf.ops.conv2d(x, w, b, stride=st, padding=pad, dilation=dil, groups=grp, impl="ref")
    close(ref, want, (c // grp) * r * s, "ref under autocast")


WINOGRAD_CASES = [(2, 32, 16, 32, 48, 1), (1, 64, 8, 16, 64, 2), (1, 33, 8, 16, 40, 1)]  # N, C, H, W, K, groups


@needs_bf16
@pytest.mark.parametrize("case", WINOGRAD_CASES, ids=str)
def test_conv2d_bf16_winograd_layers(case):
    """3×3 stride-1 layers with >= 32 channels (and rows of 16) go through Winograd with
    bfloat16 products: the transforms' values are rounded, not the inputs, so the truth is the
    exact float64 convolution, with bfloat16's tolerance (and torch's own error, where present)."""
    n, c, h, w_, k, grp = case
    g = np.random.default_rng(sum(case))
    x = g.standard_normal((n, c, h, w_)).astype(np.float32)
    w = g.standard_normal((k, c // grp, 3, 3)).astype(np.float32)
    b = g.standard_normal(k).astype(np.float32)
    exact = pf.ops.conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), padding=1, groups=grp)
    with pf.autocast("bfloat16"):
        got = pf.ops.conv2d(x, w, b, padding=1, groups=grp)
    direct = np.full(exact.shape, np.nan, np.float32)
    pf._backend.cpu_module().conv2d_forward_bf16(x, w, b, direct, [1, 1, 1, 1, 1, 1, 1, 1, grp], always=True)
    np.testing.assert_array_equal(got, direct)  # the op and the kernel entry agree
    err = np.abs(got - exact).max() / np.abs(exact).max()
    assert 1e-4 < err < 2 ** -7, err  # bfloat16's products (not float32's), within bfloat16's precision
    torch = pytest.importorskip("torch")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        theirs = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b),
                                            padding=1, groups=grp).float().numpy()
    assert err <= 2 * np.abs(theirs - exact).max() / np.abs(exact).max()


@needs_bf16
def test_conv2d_autocast_keeps_float32_where_faster():
    """Layers with fewer than 16 input channels per group run float32 under autocast (the
    kernel declines: float32 is faster there), bit for bit; wider ones, small outputs included,
    run bfloat16."""
    g = np.random.default_rng(9)
    for x_shape, w_shape, stride, bf16 in [((4, 3, 16, 16), (32, 3, 3, 3), 1, False),
                                           ((4, 16, 12, 12), (8, 8, 3, 3), 1, False),   # groups=2: 8 per group
                                           ((8, 64, 8, 8), (32, 64, 4, 4), 2, True),
                                           ((8, 32, 14, 14), (48, 32, 4, 4), 2, True)]:
        x = g.standard_normal(x_shape).astype(np.float32)
        w = g.standard_normal(w_shape).astype(np.float32)
        groups = x_shape[1] // w_shape[1]
        y32 = pf.ops.conv2d(x, w, stride=stride, padding=1, groups=groups)
        with pf.autocast("bfloat16"):
            y = pf.ops.conv2d(x, w, stride=stride, padding=1, groups=groups)
        assert np.array_equal(y, y32) != bf16, (x_shape, w_shape)


@needs_bf16
@pytest.mark.parametrize("shape", [(4, 32, 14, 14, 48, 3), (2, 40, 16, 32, 36, 3), (3, 20, 9, 9, 24, 1)], ids=str)
def test_conv2d_backward_data_bf16(shape):
    """Stride-1 backward-data under autocast runs the bfloat16 forward with flipped weights:
    against float64 on rounded operands (direct layers) or exact float64 (Winograd layers),
    and a layer's backward keeps the forward's precision outside the context."""
    n, c, h, w_, k, r = shape
    g = np.random.default_rng(sum(shape))
    x = g.standard_normal((n, c, h, w_)).astype(np.float32)
    w = g.standard_normal((k, c, r, r)).astype(np.float32)
    dy = g.standard_normal((n, k, h, w_)).astype(np.float32)
    pad = r // 2
    with pf.autocast("bfloat16"):
        dx, _, _ = pf.ops.conv2d_backward(dy, x, w, padding=pad, needs=(True, False, False))
        dx_ref, _, _ = pf.ops.conv2d_backward(dy, x, w, padding=pad, needs=(True, False, False), impl="ref")
    dx32, _, _ = pf.ops.conv2d_backward(dy, x, w, padding=pad, needs=(True, False, False))
    exact, _, _ = pf.ops.conv2d_backward(dy.astype(np.float64), x.astype(np.float64), w.astype(np.float64),
                                         padding=pad, needs=(True, False, False))
    assert not np.array_equal(dx, dx32)
    winograd = r == 3 and w_ % 16 == 0 and k >= 32 and c >= 32
    if winograd:
        err = np.abs(dx - exact).max() / np.abs(exact).max()
        assert 1e-4 < err < 2 ** -7, err
    else:
        close(dx, dx_ref.astype(np.float64), k * r * r, "dx")
    # through autograd: backward() outside the context keeps bfloat16
    xt = pf.Tensor(x, requires_grad=True)
    with pf.autocast("bfloat16"):
        y = pf.functional.conv2d(xt, pf.Tensor(w), padding=pad)
    (y * pf.Tensor(dy)).sum().backward()
    np.testing.assert_array_equal(xt.grad, dx)


@needs_bf16
def test_conv2d_bf16_bad_input_raises():
    mod = pf._backend.cpu_module()
    x = np.zeros((1, 4, 5, 5), np.float32)
    w = np.zeros((2, 4, 3, 3), np.float32)
    with pytest.raises(ValueError, match="out"):
        mod.conv2d_forward_bf16(x, w, None, np.zeros((1, 3, 3, 3), np.float32), [1, 1, 0, 0, 0, 0, 1, 1, 1])
    with pytest.raises(TypeError, match="x"):
        mod.conv2d_forward_bf16(x.astype(np.float64), w, None, np.zeros((1, 2, 3, 3), np.float32),
                                [1, 1, 0, 0, 0, 0, 1, 1, 1])
    with pytest.raises(TypeError, match="a"):
        mod.matmul_bf16(np.zeros((2, 2)), np.zeros((2, 2)), np.zeros((1, 2, 2)), None, False, False)


def test_autocast_arguments_and_nesting():
    assert precision.compute_dtype() == "float32"
    with pf.autocast("bfloat16"):
        assert precision.compute_dtype() == "bfloat16"
        with pf.autocast(enabled=False):
            assert precision.compute_dtype() == "float32"
        with pf.autocast(np.float32):
            assert precision.compute_dtype() == "float32"
        assert precision.compute_dtype() == "bfloat16"
    assert precision.compute_dtype() == "float32"
    with pytest.raises(ValueError, match="dtype"):
        with pf.autocast("float16"):
            pass
    with pytest.raises(TypeError, match="dtype"):
        with pf.autocast(3):
            pass
    assert "bfloat16" in pf.info()["cpu"]


def test_float64_and_outside_autocast_untouched():
    g = np.random.default_rng(2)
    a64, b64 = g.standard_normal((20, 30)), g.standard_normal((30, 10))
    with pf.autocast("bfloat16"):
        np.testing.assert_array_equal(pf.ops.matmul(a64, b64), pf.ops.matmul(a64, b64))
        np.testing.assert_allclose(pf.ops.matmul(a64, b64), a64 @ b64, rtol=1e-12, atol=1e-12)
    a, b = a64.astype(np.float32), b64.astype(np.float32)
    np.testing.assert_allclose(pf.ops.matmul(a, b), a64 @ b64, rtol=1e-5, atol=1e-5)


@needs_bf16
def test_module_to_bfloat16_mixed_precision_and_backward():
    """m.to(dtype="bfloat16"): parameters stay float32; forward and backward GEMMs take bfloat16
    operands even when backward() runs outside any context; to(dtype="float32") undoes it."""
    g = np.random.default_rng(3)
    lin = pf.nn.Linear(70, 45)
    x = g.standard_normal((37, 70)).astype(np.float32)
    y32 = lin(pf.Tensor(x)).data
    lin.to(dtype="bfloat16")
    assert lin.weight.data.dtype == np.float32
    xt = pf.Tensor(x, requires_grad=True)
    y = lin(xt)
    W, b = lin.weight.data, lin.bias.data
    close(y.data, rounded(x) @ rounded(W).T + b, 70, "forward")
    gy = g.standard_normal(y.shape).astype(np.float32)
    (y * pf.Tensor(gy)).sum().backward()
    close(xt.grad, rounded(gy) @ rounded(W), 45, "dx")
    close(lin.weight.grad, rounded(gy).T @ rounded(x), 37, "dW")
    lin.to(dtype="float32")
    np.testing.assert_array_equal(lin(pf.Tensor(x)).data, y32)


def test_model_to_bfloat16_trains_and_samples():
    m = pf.models.create("vae", (1, 8, 8))
    m.to(dtype="bfloat16")
    assert m.compute_dtype == "bfloat16"
    x, _ = pf.data.load_digits()
    m.fit(x[:256], steps=3, batch_size=64, progress=False)
    s = m.sample(4, seed=0)
    assert s.shape == (4, 1, 8, 8) and np.isfinite(s).all()
    for net in m._modules().values():
        for p in net.parameters():
            assert p.data.dtype == np.float32


def test_error_no_worse_than_twice_torch_bf16():
    torch = pytest.importorskip("torch")
    if not HAS_BF16:
        pytest.skip("CPU path without avx512_bf16")
    g = np.random.default_rng(4)
    a = g.standard_normal((128, 512)).astype(np.float32)
    b = g.standard_normal((512, 256)).astype(np.float32)
    exact = a.astype(np.float64) @ b
    with pf.autocast("bfloat16"):
        ours = pf.ops.matmul(a, b)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        theirs = torch.matmul(torch.from_numpy(a), torch.from_numpy(b)).float().numpy()
    e_ours, e_torch = np.abs(ours - exact).max(), np.abs(theirs - exact).max()
    assert e_ours <= 2 * e_torch, (e_ours, e_torch)
    x = g.standard_normal((4, 32, 12, 12)).astype(np.float32)
    w = g.standard_normal((48, 32, 4, 4)).astype(np.float32) * 0.1
    exact = pf.ops.conv2d(x.astype(np.float64), w.astype(np.float64), stride=2, padding=1)
    with pf.autocast("bfloat16"):
        ours = pf.ops.conv2d(x, w, stride=2, padding=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        theirs = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), stride=2, padding=1).float().numpy()
    assert np.abs(ours - exact).max() <= 2 * np.abs(theirs - exact).max()


_CHILD = r"""
import json, sys, numpy as np, pixelforge as pf
g = np.random.default_rng(0)
a = g.standard_normal((300, 200)).astype(np.float32); b = g.standard_normal((200, 170)).astype(np.float32)
x = g.standard_normal((6, 32, 14, 14)).astype(np.float32); w = g.standard_normal((40, 32, 4, 4)).astype(np.float32)
with pf.autocast("bfloat16"):
    c = pf.ops.matmul(a, b); y = pf.ops.conv2d(x, w, stride=2, padding=1)
print(json.dumps({"info": pf.info()["cpu"]["bfloat16"], "c": c.tobytes().hex()[:4000], "c_sum": float(c.sum()),
                  "y": y.tobytes().hex()[:4000], "y_sum": float(y.sum()),
                  "f32": bool(np.array_equal(c, pf.ops.matmul(a, b)))}))
"""


def _child(**env):
    e = {**os.environ, **env}  # the pixelforge the tests import (installed, or PYTHONPATH's)
    out = subprocess.run([sys.executable, "-c", _CHILD], env=e, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_fallback_without_avx512_bf16_is_float32_and_said():
    r = _child(PIXELFORGE_CPU_BF16="0", OMP_NUM_THREADS="2")
    assert r["f32"] is True
    assert "not available" in r["info"]


@needs_bf16
def test_bf16_same_bits_for_one_and_two_threads():
    r1 = _child(OMP_NUM_THREADS="1")
    r2 = _child(OMP_NUM_THREADS="2")
    assert r1["f32"] is False and "avx512_bf16" in r1["info"]
    assert (r1["c"], r1["c_sum"], r1["y"], r1["y_sum"]) == (r2["c"], r2["c_sum"], r2["y"], r2["y_sum"])
