"""conv2d, conv2d_backward, conv_transpose2d(_backward): every built impl against the float64
reference on random geometries, fixed geometries on every device (the CUDA kernels in float32,
float16 and bfloat16 too: marker ``gpu``), finite-difference gradients, torch where installed,
the SIMD paths in subprocesses, and error inputs."""
from __future__ import annotations

import numpy as np
import pytest

import pixelforge as pf
from opcheck import (TOL, assert_close, built_impls, device_of, dtype_params, fast_impls, finite_diff,
                     impl_dtype_params, impl_params, noncontig, rng, run_python, to_device, to_host64)

OPS = pf.ops
IMPLS = built_impls("conv2d")
FAST = fast_impls("conv2d")


def _rand_config(g, *, transpose=False):
    """A random valid geometry covering kernel 1..7, stride 1..3, dilation 1..3, padding
    (incl. asymmetric 'same' for even kernels), groups incl. depthwise, odd H/W."""
    while True:
        R, S = int(g.integers(1, 8)), int(g.integers(1, 8))
        dil = (int(g.integers(1, 4)), int(g.integers(1, 4)))
        stride = (int(g.integers(1, 4)), int(g.integers(1, 4)))
        groups = int(g.choice([1, 1, 2, 3]))
        cg, kg = int(g.integers(1, 4)), int(g.integers(1, 5))
        C, K = cg * groups, kg * groups
        if g.random() < 0.2:  # depthwise
            groups = C = int(g.integers(1, 6))
            K = C * int(g.integers(1, 3))
        H, W = int(g.integers(1, 14)), int(g.integers(1, 14))
        N = int(g.integers(1, 4))
        mode = g.random()
        if transpose:
            pad = (int(g.integers(0, 3)), int(g.integers(0, 3)))
            opad = tuple(int(g.integers(0, max(stride[i], dil[i]))) for i in range(2))
            outs = [(n - 1) * s - 2 * p + d * (k - 1) + o + 1 for n, s, p, d, k, o in
                    zip((H, W), stride, pad, dil, (R, S), opad)]
            if min(outs) <= 0:
                continue
            return dict(N=N, C=C, K=K, H=H, W=W, R=R, S=S, stride=stride, padding=pad, output_padding=opad,
                        dilation=dil, groups=groups)
        if mode < 0.25:
            pad, stride = "same", (1, 1)
        elif mode < 0.35:
            pad = "valid"
        else:
            pad = (int(g.integers(0, 4)), int(g.integers(0, 4)))
        pp = (0, 0) if pad == "valid" else pad
        if pad == "same":
            pp = ((dil[0] * (R - 1) + 1) // 2, (dil[1] * (S - 1) + 1) // 2)
        if H + 2 * pp[0] < dil[0] * (R - 1) + 1 or W + 2 * pp[1] < dil[1] * (S - 1) + 1:
            continue
        return dict(N=N, C=C, K=K, H=H, W=W, R=R, S=S, stride=stride, padding=pad, dilation=dil, groups=groups)


def _conv_inputs(cfg, dtype, g):
    x = g.standard_normal((cfg["N"], cfg["C"], cfg["H"], cfg["W"])).astype(dtype)
    w = g.standard_normal((cfg["K"], cfg["C"] // cfg["groups"], cfg["R"], cfg["S"])).astype(dtype)
    b = g.standard_normal(cfg["K"]).astype(dtype)
    return x, w, b


def _kw(cfg):
    return dict(stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"], groups=cfg["groups"])


def _scale(red):
    # A float32 dot product of length `red` of unit normals has absolute error ~ sqrt(red)·eps·|terms|;
    # atol grows with the reduction length (rtol alone fails on results that cancel to ~0).
    return max(1.0, float(np.sqrt(red)))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("seed", range(12))
def test_conv2d_random_against_ref(impl, seed):
    g = rng(1000 + seed)
    cfg = _rand_config(g)
    x64, w64, b64 = _conv_inputs(cfg, np.float64, g)
    want = OPS.conv2d(x64, w64, b64, **_kw(cfg), impl="ref")
    gy = g.standard_normal(want.shape)
    dx_w, dw_w, db_w = OPS.conv2d_backward(gy, x64, w64, **_kw(cfg), impl="ref")
    red = cfg["C"] // cfg["groups"] * cfg["R"] * cfg["S"]
    for dt in ("float32", "float64"):
        x, w, b, gyd = (a.astype(dt) for a in (x64, w64, b64, gy))
        got = OPS.conv2d(x, w, b, **_kw(cfg), impl=impl)
        assert got.dtype == np.dtype(dt)
        assert_close(got, want, dt, f"forward {cfg}", scale=_scale(red))
        dx, dw, db = OPS.conv2d_backward(gyd, x, w, **_kw(cfg), impl=impl)
        assert_close(dx, dx_w, dt, f"dx {cfg}", scale=_scale(cfg["K"] * cfg["R"] * cfg["S"]))
        assert_close(dw, dw_w, dt, f"dw {cfg}", scale=_scale(x.shape[0] * want.shape[2] * want.shape[3]))
        assert_close(db, db_w, dt, f"db {cfg}", scale=_scale(gy.size // gy.shape[1]))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("seed", range(8))
def test_conv_transpose2d_random_against_ref(impl, seed):
    g = rng(2000 + seed)
    cfg = _rand_config(g, transpose=True)
    kw = dict(stride=cfg["stride"], padding=cfg["padding"], output_padding=cfg["output_padding"],
              groups=cfg["groups"], dilation=cfg["dilation"])
    cin, cout = cfg["C"], cfg["K"]
    x64 = g.standard_normal((cfg["N"], cin, cfg["H"], cfg["W"]))
    w64 = g.standard_normal((cin, cout // cfg["groups"], cfg["R"], cfg["S"]))
    b64 = g.standard_normal(cout)
    want = OPS.conv_transpose2d(x64, w64, b64, **kw, impl="ref")
    gy = g.standard_normal(want.shape)
    refs = OPS.conv_transpose2d_backward(gy, x64, w64, **kw, impl="ref")
    for dt in ("float32", "float64"):
        x, w, b, gyd = (a.astype(dt) for a in (x64, w64, b64, gy))
        got = OPS.conv_transpose2d(x, w, b, **kw, impl=impl)
        assert_close(got, want, dt, f"forward {cfg}", scale=_scale(cin * cfg["R"] * cfg["S"]))
        grads = OPS.conv_transpose2d_backward(gyd, x, w, **kw, impl=impl)
        for name, a, e in zip(("dx", "dw", "db"), grads, refs):
            assert_close(a, e, dt, f"{name} {cfg}", scale=_scale(gy.size // gy.shape[0] + gy.shape[0] * 64))


# Fixed geometries every device runs in each dtype it takes: 3x3 padded, unequal stride /
# padding / dilation pairs with groups, depthwise "same", an even kernel "same" with dilation, K
# past one channel tile with stride 3, an empty batch; and, on the GPU only, a 64 -> 128 channel
# strided 4x4 layer (whole tensor-core tiles in float16 / bfloat16; on the CPU its float64
# reference costs ~0.6 s a test, and the random and Winograd tests cover such layers there).
CONFIGS = [
    dict(N=2, C=3, K=5, H=7, W=9, R=3, S=3, stride=1, padding=1, dilation=1, groups=1),
    dict(N=3, C=4, K=6, H=11, W=10, R=3, S=2, stride=(2, 1), padding=(1, 2), dilation=(2, 1), groups=2),
    dict(N=1, C=6, K=6, H=8, W=8, R=3, S=3, stride=1, padding="same", dilation=1, groups=6),
    dict(N=2, C=5, K=7, H=9, W=9, R=4, S=4, stride=1, padding="same", dilation=2, groups=1),
    dict(N=2, C=16, K=70, H=13, W=17, R=5, S=5, stride=3, padding=2, dilation=1, groups=1),
    dict(N=0, C=4, K=6, H=5, W=5, R=3, S=3, stride=1, padding=1, dilation=1, groups=2),
]
CUDA_CONFIGS = [
    dict(N=4, C=64, K=128, H=8, W=8, R=4, S=4, stride=2, padding=1, dilation=1, groups=1),
]


def _close(actual, expected, dtype, what, red):
    """TOL of ``dtype`` with atol grown like sqrt(red), the length of each output's sum: the inputs
    are rounded to the dtype before the float64 reference runs, so what is left is the kernel's
    float32 accumulation (error ~ sqrt(red) ulps of the terms) and the output's final rounding."""
    rtol, atol = TOL[dtype]
    got = to_host64(actual)
    assert got.shape == np.shape(expected), f"{what}: shape {got.shape} != {np.shape(expected)}"
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol * _scale(red), err_msg=what)


def _no_ref_float64(device, impl):
    """The reference in float64 on the CPU is the reference itself: every other pair."""
    return [d for d in dtype_params(device) if not (device == "cpu" and impl == "ref" and d == "float64")]


def _config_params():
    out = []
    for cfg in CONFIGS + CUDA_CONFIGS:
        cid = (f"N{cfg['N']}-C{cfg['C']}-K{cfg['K']}-k{cfg['R']}x{cfg['S']}-s"
               + "x".join(map(str, np.atleast_1d(cfg["stride"]))) + f"-g{cfg['groups']}")
        for p in impl_dtype_params("conv2d", dtypes=_no_ref_float64):
            if p.values[0] == "cuda" or cfg not in CUDA_CONFIGS:
                out.append(pytest.param(*p.values, cfg, marks=p.marks, id=f"{cid}-{p.id}"))
    return out


@pytest.mark.parametrize("device,impl,dtype,cfg", _config_params())
def test_conv2d_configs_against_ref(device, impl, dtype, cfg):
    """All three passes on ``device`` against the float64 reference of the values it holds."""
    g = rng(0)
    kw = _kw(cfg)
    x, w, b = (to_device(a, device, dtype) for a in _conv_inputs(cfg, np.float64, g))
    x64, w64, b64 = (to_host64(a) for a in (x, w, b))
    want = OPS.conv2d(x64, w64, b64, **kw, impl="ref")
    gy = to_device(g.standard_normal(want.shape), device, dtype)
    gy64 = to_host64(gy)
    dx_w, dw_w, db_w = OPS.conv2d_backward(gy64, x64, w64, **kw, impl="ref")
    what = f"{device}/{impl}/{dtype} {cfg}"
    y = OPS.conv2d(x, w, b, **kw, impl=impl)
    assert device_of(y) == device and y.dtype == x.dtype
    _close(y, want, dtype, "forward " + what, red=w64[0].size)
    dx, dw, db = OPS.conv2d_backward(gy, x, w, **kw, impl=impl)
    assert all(device_of(a) == device and a.dtype == x.dtype for a in (dx, dw, db))
    _close(dx, dx_w, dtype, "dx " + what, red=cfg["K"] * cfg["R"] * cfg["S"])
    red = max(1, gy64.size // max(1, gy64.shape[1]))  # dw and db sum over N * P * Q
    _close(dw, dw_w, dtype, "dw " + what, red=red)
    _close(db, db_w, dtype, "db " + what, red=red)


@pytest.mark.parametrize("device,impl,dtype", impl_dtype_params("conv_transpose2d", dtypes=_no_ref_float64))
def test_conv_transpose2d_config_against_ref(device, impl, dtype):
    """A strided, padded, grouped transposed convolution with output_padding, forward and
    backward, on ``device`` against the float64 reference of the values it holds."""
    g = rng(1)
    kw = dict(stride=2, padding=1, output_padding=1, groups=2, dilation=1)
    x = to_device(g.standard_normal((3, 8, 5, 6)), device, dtype)
    w = to_device(g.standard_normal((8, 3, 3, 3)), device, dtype)
    b = to_device(g.standard_normal(6), device, dtype)
    x64, w64, b64 = (to_host64(a) for a in (x, w, b))
    want = OPS.conv_transpose2d(x64, w64, b64, **kw, impl="ref")
    gy = to_device(g.standard_normal(want.shape), device, dtype)
    refs = OPS.conv_transpose2d_backward(to_host64(gy), x64, w64, **kw, impl="ref")
    what = f"{device}/{impl}/{dtype}"
    y = OPS.conv_transpose2d(x, w, b, **kw, impl=impl)
    assert device_of(y) == device and y.dtype == x.dtype
    _close(y, want, dtype, "forward " + what, red=400)
    for name, a, e in zip(("dx", "dw", "db"), OPS.conv_transpose2d_backward(gy, x, w, **kw, impl=impl), refs):
        assert device_of(a) == device and a.dtype == x.dtype
        _close(a, e, dtype, f"{name} {what}", red=400)


def _torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("seed", range(6))
def test_against_torch(seed):
    torch = _torch()
    F = torch.nn.functional
    g = rng(3000 + seed)
    cfg = _rand_config(g)
    x, w, b = _conv_inputs(cfg, np.float64, g)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = F.conv2d(tx, tw, tb, **_kw(cfg))
    gy = g.standard_normal(tuple(ty.shape))
    ty.backward(torch.tensor(gy))
    for impl in IMPLS:
        y = OPS.conv2d(x, w, b, **_kw(cfg), impl=impl)
        assert_close(y, ty.detach().numpy(), "float64", f"{impl} {cfg}")
        for a, t in zip(OPS.conv2d_backward(gy, x, w, **_kw(cfg), impl=impl), (tx, tw, tb)):
            assert_close(a, t.grad.numpy(), "float64", f"{impl} grad {cfg}")


@pytest.mark.parametrize("seed", range(4))
def test_transpose_against_torch(seed):
    torch = _torch()
    F = torch.nn.functional
    g = rng(4000 + seed)
    cfg = _rand_config(g, transpose=True)
    x = g.standard_normal((cfg["N"], cfg["C"], cfg["H"], cfg["W"]))
    w = g.standard_normal((cfg["C"], cfg["K"] // cfg["groups"], cfg["R"], cfg["S"]))
    b = g.standard_normal(cfg["K"])
    args = (cfg["stride"], cfg["padding"], cfg["output_padding"], cfg["groups"], cfg["dilation"])
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = F.conv_transpose2d(tx, tw, tb, *args)
    gy = g.standard_normal(tuple(ty.shape))
    ty.backward(torch.tensor(gy))
    for impl in IMPLS:
        assert_close(OPS.conv_transpose2d(x, w, b, *args, impl=impl), ty.detach().numpy(), "float64", impl)
        for a, t in zip(OPS.conv_transpose2d_backward(gy, x, w, *args, impl=impl), (tx, tw, tb)):
            assert_close(a, t.grad.numpy(), "float64", f"{impl} grad {cfg}")


def test_bench_shapes_small_batch_against_torch():
    """The benchmark geometries (batch cut to 2) in float32 against torch."""
    torch = _torch()
    F = torch.nn.functional
    g = rng(5)
    for N, C, K, H, R, s, p in ((2, 64, 64, 32, 3, 1, 1), (2, 1, 32, 28, 3, 1, 1), (2, 128, 128, 16, 3, 1, 1),
                                (2, 64, 128, 8, 4, 2, 1)):
        x = g.standard_normal((N, C, H, H)).astype(np.float32)
        w = (g.standard_normal((K, C, R, R)) / np.sqrt(C * R * R)).astype(np.float32)
        want = F.conv2d(torch.tensor(x, dtype=torch.float64), torch.tensor(w, dtype=torch.float64), None, s, p)
        for impl in FAST:
            assert_close(OPS.conv2d(x, w, None, s, p, impl=impl), want.numpy(), "float32", f"{impl} {C}->{K}")
    x = g.standard_normal((2, 128, 4, 4)).astype(np.float32)
    w = (g.standard_normal((128, 64, 4, 4)) / 40).astype(np.float32)
    want = F.conv_transpose2d(torch.tensor(x, dtype=torch.float64), torch.tensor(w, dtype=torch.float64), None, 2, 1)
    for impl in FAST:
        assert_close(OPS.conv_transpose2d(x, w, None, 2, 1, impl=impl), want.numpy(), "float32", impl)


@pytest.mark.parametrize("device,impl", impl_params("conv2d", ref=False))
def test_float32_64_channel_layer_against_torch(device, impl):
    """A 64 -> 64 channel 3x3 layer on 32x32 images (4 of them) in float32 on ``device``
    against torch's float64 convolution (on AVX-512 the CPU takes the Winograd path here)."""
    torch = _torch()
    F = torch.nn.functional
    g = rng(2)
    x = g.standard_normal((4, 64, 32, 32)).astype(np.float32)
    w = (g.standard_normal((64, 64, 3, 3)) / 24).astype(np.float32)
    want = F.conv2d(torch.tensor(x, dtype=torch.float64), torch.tensor(w, dtype=torch.float64), None, 1, 1).numpy()
    got = OPS.conv2d(to_device(x, device), to_device(w, device), None, 1, 1, impl=impl)
    assert device_of(got) == device
    _close(got, want, "float32", f"{device}/{impl}", red=64 * 9)


# ----------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("impl", IMPLS)
def test_conv2d_finite_difference(impl):
    g = rng(7)
    x = g.standard_normal((2, 4, 5, 6))
    w = g.standard_normal((6, 2, 3, 2))
    b = g.standard_normal(6)
    kw = dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)
    gy = g.standard_normal(OPS.conv2d(x, w, b, **kw, impl=impl).shape)

    def loss(xx=x, ww=w, bb=b):
        return float((OPS.conv2d(xx, ww, bb, **kw, impl=impl) * gy).sum())
    dx, dw, db = OPS.conv2d_backward(gy, x, w, **kw, impl=impl)
    np.testing.assert_allclose(dx, finite_diff(lambda v: loss(xx=v), x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dw, finite_diff(lambda v: loss(ww=v), w), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(db, finite_diff(lambda v: loss(bb=v), b), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("impl", IMPLS)
def test_conv_transpose2d_finite_difference(impl):
    g = rng(8)
    x = g.standard_normal((2, 4, 3, 4))
    w = g.standard_normal((4, 3, 3, 2))
    b = g.standard_normal(6)
    kw = dict(stride=2, padding=1, output_padding=(1, 0), groups=2, dilation=(1, 2))
    gy = g.standard_normal(OPS.conv_transpose2d(x, w, b, **kw, impl=impl).shape)

    def loss(xx=x, ww=w, bb=b):
        return float((OPS.conv_transpose2d(xx, ww, bb, **kw, impl=impl) * gy).sum())
    dx, dw, db = OPS.conv_transpose2d_backward(gy, x, w, **kw, impl=impl)
    np.testing.assert_allclose(dx, finite_diff(lambda v: loss(xx=v), x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dw, finite_diff(lambda v: loss(ww=v), w), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(db, finite_diff(lambda v: loss(bb=v), b), rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------- edge inputs
@pytest.mark.parametrize("impl", IMPLS)
def test_edges(impl):
    g = rng(9)
    w = g.standard_normal((3, 2, 3, 3)).astype(np.float32)
    # empty batch
    x0 = np.zeros((0, 2, 5, 5), np.float32)
    y0 = OPS.conv2d(x0, w, None, padding=1, impl=impl)
    assert y0.shape == (0, 3, 5, 5)
    dx, dw, db = OPS.conv2d_backward(np.zeros((0, 3, 5, 5), np.float32), x0, w, padding=1, impl=impl)
    assert dx.shape == x0.shape and np.all(dw == 0) and np.all(db == 0)
    # non-contiguous views, 3-D input, 1×1 output, kernel as large as the padded input
    x = g.standard_normal((2, 2, 5, 7)).astype(np.float32)
    want = OPS.conv2d(x.astype(np.float64), w.astype(np.float64), None, impl="ref")
    assert_close(OPS.conv2d(noncontig(x), noncontig(w), None, impl=impl), want, "float32", "noncontig", scale=5)
    assert_close(OPS.conv2d(x[0], w, None, impl=impl), want[0], "float32", "3-D x", scale=5)
    one = OPS.conv2d(x[:, :, :3, :3], w, None, impl=impl)
    assert one.shape == (2, 3, 1, 1)
    assert_close(one, (x[:, None, :, :3, :3] * w[None]).astype(np.float64).sum((2, 3, 4)).reshape(2, 3, 1, 1),
                 "float32", "1x1 out", scale=5)
    # "same" with an even kernel: extra padding on the bottom/right like torch
    w4 = g.standard_normal((1, 1, 2, 2))
    xs = g.standard_normal((1, 1, 3, 3))
    ys = OPS.conv2d(xs, w4, padding="same", impl=impl)
    manual = np.zeros((3, 3))
    xp = np.pad(xs[0, 0], ((0, 1), (0, 1)))
    for i in range(3):
        for j in range(3):
            manual[i, j] = (xp[i:i + 2, j:j + 2] * w4[0, 0]).sum()
    np.testing.assert_allclose(ys[0, 0], manual, rtol=1e-12)


@pytest.mark.parametrize("impl", FAST)
def test_larger_problem_matches_reference(impl):
    """Sizes that exercise several pixel tiles, reduction blocks and channel blocks."""
    g = rng(11)
    x = g.standard_normal((3, 40, 23, 37))
    w = g.standard_normal((70, 40, 3, 3)) / 20
    gy = g.standard_normal((3, 70, 23, 37))
    kw = dict(padding=1)
    assert_close(OPS.conv2d(x.astype(np.float32), w.astype(np.float32), None, **kw, impl=impl),
                 OPS.conv2d(x, w, None, **kw, impl="ref"), "float32", "fwd", scale=4)
    got = OPS.conv2d_backward(gy.astype(np.float32), x.astype(np.float32), w.astype(np.float32), **kw, impl=impl)
    want = OPS.conv2d_backward(gy, x, w, **kw, impl="ref")
    for name, a, e, sc in zip(("dx", "dw", "db"), got, want, (4, 60, 60)):
        assert_close(a, e, "float32", name, scale=sc)


def test_backward_weight_deterministic_across_threads():
    if "cpu" not in FAST:
        pytest.skip("cpu impl not built")
    # the GEMM path, the 32-channel direct weight gradient, the Winograd one (11 images: six
    # image blocks, the last of one image), the few-taps one (3 input channels, 11 images)
    code = """
        import hashlib, numpy as np, pixelforge as pf
        g = np.random.default_rng(3)
        for n, c, k, h, w_ in [(5, 12, 20, 17, 19), (3, 8, 32, 12, 12), (11, 32, 64, 16, 16), (11, 3, 13, 20, 21)]:
            x = g.standard_normal((n, c, h, w_)).astype(np.float32)
            w = g.standard_normal((k, c, 3, 3)).astype(np.float32)
            gy = g.standard_normal((n, k, h, w_)).astype(np.float32)
            dx, dw, db = pf.ops.conv2d_backward(gy, x, w, padding=1, impl="cpu")
            print(hashlib.sha256(np.concatenate([dx.ravel(), dw.ravel(), db.ravel()]).tobytes()).hexdigest())
    """
    a = run_python(code, env={"OMP_NUM_THREADS": "1"})
    b = run_python(code, env={"OMP_NUM_THREADS": "2"})
    c = run_python(code, env={"OMP_NUM_THREADS": "3"})
    assert a == b == c


@pytest.mark.parametrize("isa", ["generic", "avx2", "avx512"])
def test_simd_paths(isa):
    """Each SIMD build of the kernels (lowered with PIXELFORGE_CPU_ISA) against the reference."""
    if "cpu" not in FAST:
        pytest.skip("cpu impl not built")
    code = """
        import numpy as np, pixelforge as pf
        from pixelforge import _backend
        print(_backend.cpu_module().isa())
        g = np.random.default_rng(5)
        for dt in ("float32", "float64"):
            for (N, C, K, H, W, R, kw) in ((2, 6, 13, 11, 9, 3, dict(padding=1)),
                                           (1, 4, 8, 10, 13, 4, dict(stride=2, padding=1, groups=2)),
                                           (3, 5, 5, 7, 8, 3, dict(padding="same", dilation=2, groups=5))):
                x = g.standard_normal((N, C, H, W)); w = g.standard_normal((K, C // kw.get("groups", 1), R, R))
                y = pf.ops.conv2d(x, w, None, **kw, impl="ref")
                gy = g.standard_normal(y.shape)
                tol = 1e-3 if dt == "float32" else 1e-10
                np.testing.assert_allclose(pf.ops.conv2d(x.astype(dt), w.astype(dt), None, **kw, impl="cpu"), y,
                                           rtol=tol, atol=tol)
                for a, e in zip(pf.ops.conv2d_backward(gy.astype(dt), x.astype(dt), w.astype(dt), **kw, impl="cpu"),
                                pf.ops.conv2d_backward(gy, x, w, **kw, impl="ref")):
                    np.testing.assert_allclose(a, e, rtol=tol, atol=tol)
    """
    out = run_python(code, env={"PIXELFORGE_CPU_ISA": isa})
    used = out.split()[0]
    order = ["generic", "avx2", "avx512"]
    assert order.index(used) <= order.index(isa)
    if used != isa:
        pytest.skip(f"this CPU runs {used} at most (the {isa} path compiles but cannot run here)")


@pytest.mark.parametrize("isa", ["generic", "avx2", "avx512"])
def test_clipped_segments_and_long_chunks(isa):
    """Paths of the performance work on issue 3, on every SIMD build: stride-1 im2col rows
    copied as masked segments (row lengths around the 16/8-lane width, pads wider than the
    kernel so whole segments fall into the padding, 1×1 kernels), padded panel strides
    (power-of-two column counts) and backward-weight reduction chunks longer than one image
    (PQ = 1024 plus a remainder), strided small images gathered several at a time, against
    the float64 reference."""
    if "cpu" not in FAST:
        pytest.skip("cpu impl not built")
    code = """
        import numpy as np, pixelforge as pf
        from pixelforge import _backend
        print(_backend.cpu_module().isa())
        g = np.random.default_rng(17)
        cases = ((2, 3, 5, 4, 1, 3, dict(padding=1)), (2, 3, 7, 5, 15, 3, dict(padding=3)),
                 (1, 5, 9, 6, 16, 3, dict(padding=1)), (2, 4, 3, 3, 17, 1, dict()),
                 (1, 2, 33, 7, 33, 2, dict(padding=(0, 2))), (1, 8, 16, 32, 32, 3, dict(padding=1)),
                 (2, 3, 4, 33, 35, 3, dict(padding=1, dilation=2)),
                 (9, 3, 6, 8, 8, 4, dict(stride=2, padding=1)),      # multi-image table tiles
                 (4, 2, 5, 7, 6, 3, dict(stride=(2, 1), padding=2)))  # short rows, row stride 2
        for dt in ("float32", "float64"):
            for (N, C, K, H, W, R, kw) in cases:
                x = g.standard_normal((N, C, H, W)); w = g.standard_normal((K, C, R, R))
                y = pf.ops.conv2d(x, w, None, **kw, impl="ref")
                gy = g.standard_normal(y.shape)
                # float32: reductions of up to ~2300 terms of unit-variance products
                tol = 2e-3 if dt == "float32" else 1e-10
                np.testing.assert_allclose(pf.ops.conv2d(x.astype(dt), w.astype(dt), None, **kw, impl="cpu"), y,
                                           rtol=tol, atol=tol)
                for a, e in zip(pf.ops.conv2d_backward(gy.astype(dt), x.astype(dt), w.astype(dt), **kw, impl="cpu"),
                                pf.ops.conv2d_backward(gy, x, w, **kw, impl="ref")):
                    np.testing.assert_allclose(a, e, rtol=tol, atol=tol)
    """
    out = run_python(code, env={"PIXELFORGE_CPU_ISA": isa})
    used = out.split()[0]
    order = ["generic", "avx2", "avx512"]
    assert order.index(used) <= order.index(isa)
    if used != isa:
        pytest.skip(f"this CPU runs {used} at most (the {isa} path compiles but cannot run here)")


@pytest.mark.parametrize("impl", FAST)
@pytest.mark.parametrize("seed", range(6))
def test_small_images_against_ref(impl, seed):
    """Inputs of <= 64 pixels with <= 16 outputs (AVX-512: channels held in registers, taps
    picked by permutes): many channels so reduction blocks start inside a channel, enough
    images for multi-image tiles, strides 1..3, dilation, padding, groups, a non-contiguous x;
    all three passes against the float64 reference."""
    g = rng(3000 + seed)
    for _ in range(6):
        H, W = int(g.integers(1, 9)), int(g.integers(1, 9))
        R, S = int(g.integers(1, 5)), int(g.integers(1, 5))
        st = (int(g.integers(1, 4)), int(g.integers(1, 4)))
        dil = (int(g.integers(1, 3)), int(g.integers(1, 3)))
        pad = (int(g.integers(0, 3)), int(g.integers(0, 3)))
        if H + 2 * pad[0] < dil[0] * (R - 1) + 1 or W + 2 * pad[1] < dil[1] * (S - 1) + 1:
            continue
        groups = int(g.choice([1, 1, 2]))
        C, K, N = groups * int(g.integers(1, 40)), groups * int(g.integers(1, 12)), int(g.integers(1, 40))
        kw = dict(stride=st, padding=pad, dilation=dil, groups=groups)
        x64 = noncontig(g.standard_normal((N, C, H, W)))
        w64 = g.standard_normal((K, C // groups, R, S))
        want = OPS.conv2d(x64, w64, None, **kw, impl="ref")
        gy = g.standard_normal(want.shape)
        refs = OPS.conv2d_backward(gy, x64, w64, **kw, impl="ref")
        red = C // groups * R * S
        x, w = noncontig(x64.astype(np.float32)), w64.astype(np.float32)
        cfg = f"N={N} C={C} K={K} {H}x{W} k{R}x{S} {kw}"
        assert_close(OPS.conv2d(x, w, None, **kw, impl=impl), want, "float32", cfg, scale=_scale(red))
        dx, dw, _ = OPS.conv2d_backward(gy.astype(np.float32), x, w, **kw, impl=impl)
        assert_close(dx, refs[0], "float32", "dx " + cfg, scale=_scale(K * R * S))
        assert_close(dw, refs[1], "float32", "dw " + cfg, scale=_scale(N * want.shape[2] * want.shape[3]))


@pytest.mark.parametrize("impl", FAST)
@pytest.mark.parametrize("seed", range(6))
def test_stride1_vector_rows_against_ref(impl, seed):
    """Stride-1 geometries whose output rows (forward) or input rows (backward-data) are
    whole 16-float vectors (AVX-512: the direct path, no im2col/col2im): output heights that
    leave a 1-row last tile or a half panel, dilation, asymmetric padding, pads past the kernel
    extent, groups, one image, a non-contiguous x; all three passes against float64."""
    g = rng(4000 + seed)
    for _ in range(5):
        R, S = int(g.integers(1, 6)), int(g.integers(1, 6))
        dil = (int(g.integers(1, 3)), int(g.integers(1, 3)))
        pad = (int(g.integers(0, 4)), int(g.integers(0, 4)))
        if g.random() < 0.5:   # output width a multiple of 16
            Q = 16 * int(g.integers(1, 3))
            W = Q - 2 * pad[1] + dil[1] * (S - 1)
        else:                  # input width a multiple of 16
            W = 16 * int(g.integers(1, 3))
        H = int(g.choice([1, 2, 5, 17, 18, 33]))
        if W < 1 or H + 2 * pad[0] < dil[0] * (R - 1) + 1 or W + 2 * pad[1] < dil[1] * (S - 1) + 1:
            continue
        groups = int(g.choice([1, 1, 2]))
        C, K, N = groups * int(g.integers(1, 12)), groups * int(g.integers(1, 20)), int(g.integers(1, 4))
        _check_stride1_passes(impl, g, N, C, K, H, W, R, S, dict(stride=1, padding=pad, dilation=dil, groups=groups))


def _check_stride1_passes(impl, g, N, C, K, H, W, R, S, kw):
    """Forward, dx, dw, db of one geometry from non-contiguous float32 inputs against float64;
    the output shape for the caller's own checks."""
    x64 = g.standard_normal((N, C, H, W))
    w64 = g.standard_normal((K, C // kw["groups"], R, S))
    b64 = g.standard_normal(K)
    want = OPS.conv2d(x64, w64, b64, **kw, impl="ref")
    gy = g.standard_normal(want.shape)
    refs = OPS.conv2d_backward(gy, x64, w64, **kw, impl="ref")
    x, w, b = noncontig(x64.astype(np.float32)), w64.astype(np.float32), b64.astype(np.float32)
    cfg = f"N={N} C={C} K={K} {H}x{W} k{R}x{S} {kw}"
    assert_close(OPS.conv2d(x, w, b, **kw, impl=impl), want, "float32", cfg, scale=_scale(C // kw["groups"] * R * S))
    dx, dw, db = OPS.conv2d_backward(noncontig(gy.astype(np.float32)), x, w, **kw, impl=impl)
    pixels = N * want.shape[2] * want.shape[3]
    assert_close(dx, refs[0], "float32", "dx " + cfg, scale=_scale(K * R * S))
    assert_close(dw, refs[1], "float32", "dw " + cfg, scale=_scale(pixels))
    assert_close(db, refs[2], "float32", "db " + cfg, scale=_scale(pixels))
    return want.shape


@pytest.mark.parametrize("impl", FAST)
@pytest.mark.parametrize("seed", range(6))
def test_stride1_narrow_rows_against_ref(impl, seed):
    """Stride-1 convolutions that keep a width that is not a multiple of 16 (W = Q: 28x28,
    14x14, 7x7, the 8x8 and 4x8 UNet/GAN bottoms, odd widths; AVX-512: the direct path over
    unpadded rows with per-phase lane masks, and the backward-data that runs it on dy, or on the
    im2col forward for small images and few output channels): dilation, even kernels ("same":
    asymmetric padding), vertical pads past the kernel extent, groups, 1-channel layers, a
    non-contiguous x; all three passes against float64."""
    g = rng(4100 + seed)
    for _ in range(6):
        W = int(g.choice([1, 2, 3, 4, 5, 7, 8, 12, 14, 20, 28]))
        R, S = int(g.integers(1, 5)), int(g.choice([1, 2, 3, 3, 4, 5]))
        dil = (int(g.integers(1, 3)), int(g.integers(1, 3)))
        P = int(g.integers(1, 4)) * max(1, 32 // W) + int(g.integers(0, 3))  # output height
        if dil[1] * (S - 1) % 2:                       # odd total: only "same" keeps the width
            pad, H = "same", P
        else:
            ph = int(g.integers(0, 4))
            pad, H = (ph, dil[1] * (S - 1) // 2), P - 2 * ph + dil[0] * (R - 1)
            if H < 1:
                continue
        groups = int(g.choice([1, 1, 3]))
        C, K = groups * int(g.choice([1, 5, 11, 24])), groups * int(g.choice([1, 7, 19, 40]))
        N = int(g.integers(1, 4))
        kw = dict(stride=1, padding=pad, dilation=dil, groups=groups)
        assert _check_stride1_passes(impl, g, N, C, K, H, W, R, S, kw)[2:] == (P, W)


def _check_stride1_weight_gradient(impl, g, N, C, K, H, W, R, S, dil, pad, groups):
    """dw of a stride-1 convolution from non-contiguous float32 inputs against float64."""
    kw = dict(stride=1, padding=pad, dilation=dil, groups=groups)
    x64 = g.standard_normal((N, C, H, W))
    w64 = g.standard_normal((K, C // groups, R, S))
    out = OPS.conv2d(x64, w64, None, **kw, impl="ref")
    gy = g.standard_normal(out.shape)
    _, dw_want, _ = OPS.conv2d_backward(gy, x64, w64, **kw, impl="ref", needs=(False, True, False))
    _, dw, _ = OPS.conv2d_backward(noncontig(gy.astype(np.float32)), noncontig(x64.astype(np.float32)),
                                   w64.astype(np.float32), **kw, impl=impl, needs=(False, True, False))
    assert_close(dw, dw_want, "float32", f"dw N={N} C={C} K={K} {H}x{W} k{R}x{S} {kw}",
                 scale=_scale(N * out.shape[2] * out.shape[3]))


@pytest.mark.parametrize("impl", FAST)
@pytest.mark.parametrize("seed", range(4))
def test_weight_gradient_32_channel_blocks_against_ref(impl, seed):
    """Stride-1 weight gradients with output channels per group a multiple of 32 (AVX-512:
    dy transposed into 32-channel pixel-major blocks times taps broadcast from padded x):
    odd sizes, dilation, asymmetric and wide padding, groups, tap counts not a multiple of 8,
    against float64; seed 0 also spans two chunks of images."""
    g = rng(5000 + seed)
    R, S = int(g.integers(1, 6)), int(g.integers(1, 6))
    dil = (int(g.integers(1, 3)), int(g.integers(1, 3)))
    pad = (int(g.integers(0, 4)), int(g.integers(0, 4)))
    groups = int(g.choice([1, 2]))
    K, C = 32 * groups * int(g.integers(1, 3)), groups * int(g.integers(1, 7))
    N, H, W = int(g.integers(1, 4)), int(g.integers(8, 20)), int(g.integers(8, 20))
    if seed == 0:   # ~0.7M floats of padded x + transposed dy per image: 3 images per 8 MiB chunk
        N, C, K, H, W, R, S, dil, pad, groups = 4, 8, 32, 130, 130, 3, 3, (1, 1), (1, 1), 1
    _check_stride1_weight_gradient(impl, g, N, C, K, H, W, R, S, dil, pad, groups)


@pytest.mark.parametrize("impl", FAST)
@pytest.mark.parametrize("seed", range(8))
def test_weight_gradient_few_taps_against_ref(impl, seed):
    """Stride-1 weight gradients with few taps per group (a first layer: 1-3 input channels,
    kernels up to 7 wide; AVX-512: NC output channels x one kernel row's taps as lane
    accumulators, fixed image blocks): row tails of every length, output channel counts not a
    multiple of the channel block, dilation, asymmetric padding, groups, up to 11 images
    (several image blocks, the last partial), non-contiguous inputs, against float64."""
    g = rng(5400 + seed)
    while True:
        R, S = int(g.integers(1, 6)), int(g.integers(1, 8))
        Cg = int(g.integers(1, 4))
        if Cg * R * S < 64:
            break
    dil = (int(g.integers(1, 3)), int(g.integers(1, 3)))
    pad = (int(g.integers(0, 4)), int(g.integers(0, 4)))
    groups = int(g.choice([1, 1, 2]))
    C, K = Cg * groups, groups * int(g.integers(1, 15))
    N, H, W = int(g.integers(1, 12)), int(g.integers(8, 24)), int(g.integers(12, 40))
    if seed == 0:  # the train-step bench's first layer, 11 images (six image blocks)
        N, C, K, H, W, R, S, dil, pad, groups = 11, 3, 16, 32, 32, 3, 3, (1, 1), (1, 1), 1
    _check_stride1_weight_gradient(impl, g, N, C, K, H, W, R, S, dil, pad, groups)


# (N, Cg, Kg, P, Q, pad, groups): 3×3 stride-1 convolutions the Winograd F(2×2, 3×3) path takes
# on AVX-512 (float32, Q % 16 == 0, P even, >= 32 channels in and out per group): one band or
# several, a tile-chunk count per row that is odd (vector pairs straddle tile rows), 128-tile
# jobs (padded leading dimension), output channels not a multiple of the 8-row panel,
# asymmetric and zero padding, groups, 11 images (weight gradient: six image blocks).
WINOGRAD_CASES = [
    (2, 32, 32, 16, 16, (1, 1), 1),
    (11, 32, 64, 8, 48, (1, 1), 1),
    (3, 40, 32, 4, 32, (1, 0), 2),
    (1, 64, 40, 16, 48, (1, 1), 1),
    (2, 32, 36, 16, 32, (1, 1), 2),
    (3, 33, 32, 8, 16, (0, 1), 1),
    (1, 40, 48, 10, 32, (2, 1), 1),
    (2, 128, 128, 8, 16, (1, 1), 1),
]


@pytest.mark.parametrize("impl", FAST)
@pytest.mark.parametrize("case", WINOGRAD_CASES, ids=lambda c: "-".join(map(str, c[:5])) + f"-p{c[5]}-g{c[6]}")
def test_winograd_3x3_against_ref(impl, case):
    """The forward (with bias, a non-contiguous x), the backward-data pass (a forward with
    flipped weights, the same path when dx's rows qualify) and the weight gradient (Winograd
    too when the output channels per group are a multiple of 32: image blocks, several when
    N > 8) against float64."""
    N, Cg, Kg, P, Q, pad, groups = case
    g = rng(7000 + WINOGRAD_CASES.index(case))
    H, W = P + 2 - 2 * pad[0], Q + 2 - 2 * pad[1]
    C, K = Cg * groups, Kg * groups
    kw = dict(stride=1, padding=pad, groups=groups)
    x64 = g.standard_normal((N, C, H, W))
    w64 = g.standard_normal((K, Cg, 3, 3))
    b64 = g.standard_normal(K)
    want = OPS.conv2d(x64, w64, b64, **kw, impl="ref")
    assert want.shape[2:] == (P, Q)
    cfg = f"N={N} C={C} K={K} {H}x{W} {kw}"
    got = OPS.conv2d(noncontig(x64.astype(np.float32)), w64.astype(np.float32), b64.astype(np.float32), **kw, impl=impl)
    assert_close(got, want, "float32", cfg, scale=_scale(Cg * 9))
    gy = g.standard_normal(want.shape)
    dx_want, _, _ = OPS.conv2d_backward(gy, x64, w64, **kw, impl="ref", needs=(True, False, False))
    dx, _, _ = OPS.conv2d_backward(gy.astype(np.float32), x64.astype(np.float32), w64.astype(np.float32), **kw,
                                   impl=impl, needs=(True, False, False))
    assert_close(dx, dx_want, "float32", "dx " + cfg, scale=_scale(Kg * 9))
    _, dw_want, _ = OPS.conv2d_backward(gy, x64, w64, **kw, impl="ref", needs=(False, True, False))
    _, dw, _ = OPS.conv2d_backward(gy.astype(np.float32), noncontig(x64.astype(np.float32)), w64.astype(np.float32),
                                   **kw, impl=impl, needs=(False, True, False))
    assert_close(dw, dw_want, "float32", "dw " + cfg, scale=_scale(N * P * Q))


# (N, C, K, H, W, R, S, stride, pad, groups): strided backward-data by phases — stride-2 k4 (the
# D/E bench geometry, rows zipped on AVX-512), odd widths, unequal strides, 1×1 kernels (phases
# no tap reaches), widths past one vector, groups, and a pad beyond the kernel's reach (a
# phase would need a negative pad: the general path).
PHASE_CASES = [
    (3, 6, 8, 8, 8, 4, 4, (2, 2), (1, 1), 1),
    (2, 4, 6, 9, 7, 3, 3, (2, 2), (1, 1), 2),
    (2, 5, 3, 11, 13, 3, 5, (2, 3), (1, 2), 1),
    (2, 3, 4, 7, 9, 1, 1, (2, 2), (0, 0), 1),
    (1, 3, 5, 20, 34, 4, 4, (2, 2), (1, 1), 1),
    (2, 4, 4, 10, 10, 3, 3, (2, 2), (2, 2), 2),
    (2, 6, 6, 9, 9, 3, 3, (3, 3), (1, 1), 3),
]


@pytest.mark.parametrize("impl", FAST)
@pytest.mark.parametrize("case", PHASE_CASES, ids=lambda c: "x".join(map(str, c[:7])) + f"-s{c[7]}-p{c[8]}-g{c[9]}")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_strided_backward_data_phases_against_ref(impl, case, dtype):
    """Stride > 1 backward-data (and conv_transpose2d's forward, the same pass) computed as
    one stride-1 forward per output phase, against the float64 reference, with many images so
    the jobs hold several whole images; a non-contiguous dy."""
    N, C, K, H, W, R, S, st, pad, groups = case
    g = rng(6000 + sum(map(hash, map(str, case))) % 1000)
    N *= 9
    kw = dict(stride=st, padding=pad, groups=groups)
    x64 = g.standard_normal((N, C, H, W))
    w64 = g.standard_normal((K, C // groups, R, S))
    out = OPS.conv2d(x64, w64, None, **kw, impl="ref")
    gy = g.standard_normal(out.shape)
    dx_want, _, _ = OPS.conv2d_backward(gy, x64, w64, **kw, impl="ref", needs=(True, False, False))
    cfg = f"N={N} C={C} K={K} {H}x{W} k{R}x{S} {kw}"
    dx, _, _ = OPS.conv2d_backward(noncontig(gy.astype(dtype)), x64.astype(dtype), w64.astype(dtype), **kw,
                                   impl=impl, needs=(True, False, False))
    assert dx.dtype == np.dtype(dtype)
    assert_close(dx, dx_want, dtype, "dx " + cfg, scale=_scale(K // groups * R * S))
    if groups == 1:  # conv_transpose2d(gy, w) is this dx wherever its output size is unambiguous
        op = tuple((h + 2 * p - k) % s for h, p, k, s in zip((H, W), pad, (R, S), st))
        y = OPS.conv_transpose2d(gy.astype(dtype), w64.astype(dtype), None, st, pad, op, impl=impl)
        assert_close(y, dx_want, dtype, "conv_transpose2d " + cfg, scale=_scale(K * R * S))


# ----------------------------------------------------------------------------- errors
def _good():
    g = rng(0)
    return g.standard_normal((2, 4, 6, 6)).astype(np.float32), g.standard_normal((6, 2, 3, 3)).astype(np.float32)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", [
    ("x", ValueError, lambda x, w: OPS.conv2d(x[0, 0], w, groups=2)),
    ("weight", ValueError, lambda x, w: OPS.conv2d(x, w[0], groups=2)),
    ("weight", ValueError, lambda x, w: OPS.conv2d(x, w)),  # channel mismatch (groups=1)
    ("groups", ValueError, lambda x, w: OPS.conv2d(x, w, groups=3)),
    ("groups", ValueError, lambda x, w: OPS.conv2d(x, w[:5], groups=2)),
    ("x", TypeError, lambda x, w: OPS.conv2d(x.astype(np.int32), w, groups=2)),
    ("weight", TypeError, lambda x, w: OPS.conv2d(x, w.astype(np.float64), groups=2)),
    ("weight", ValueError, lambda x, w: OPS.conv2d(x[:, :, :2, :2], w, groups=2)),
    ("stride", ValueError, lambda x, w: OPS.conv2d(x, w, stride=0, groups=2)),
    ("dilation", ValueError, lambda x, w: OPS.conv2d(x, w, dilation=(1, 0), groups=2)),
    ("padding", ValueError, lambda x, w: OPS.conv2d(x, w, padding=-1, groups=2)),
    ("padding", ValueError, lambda x, w: OPS.conv2d(x, w, padding="full", groups=2)),
    ("padding", ValueError, lambda x, w: OPS.conv2d(x, w, padding="same", stride=2, groups=2)),
    ("bias", ValueError, lambda x, w: OPS.conv2d(x, w, np.zeros(5, np.float32), groups=2)),
    ("output_padding", ValueError,
     lambda x, w: OPS.conv_transpose2d(x, np.zeros((4, 3, 3, 3), np.float32), stride=2, output_padding=2)),
    ("weight", ValueError, lambda x, w: OPS.conv_transpose2d(x, np.zeros((3, 3, 3, 3), np.float32))),
    ("padding", ValueError, lambda x, w: OPS.conv_transpose2d(x, np.zeros((4, 3, 3, 3), np.float32), padding="same")),
    ("groups", ValueError, lambda x, w: OPS.conv_transpose2d(x, np.zeros((4, 3, 3, 3), np.float32), groups=3)),
    ("stride", TypeError, lambda x, w: OPS.conv2d(x, w, stride=1.5, groups=2)),
    ("grad_out", ValueError,
     lambda x, w: OPS.conv2d_backward(np.zeros((2, 6, 4, 5), np.float32), x, w, groups=2)),
    ("grad_out", TypeError,
     lambda x, w: OPS.conv2d_backward(np.zeros((2, 6, 4, 4), np.float64), x, w, groups=2)),
    ("grad_out", ValueError, lambda x, w: OPS.conv_transpose2d_backward(
        np.zeros((2, 3, 5, 5), np.float32), x, np.zeros((4, 3, 3, 3), np.float32))),
    ("needs", TypeError, lambda x, w: OPS.conv2d_backward(np.zeros((2, 6, 4, 4), np.float32), x, w, groups=2,
                                                          needs=(True,))),
    ("impl", ValueError, lambda x, w: OPS.conv2d(x, w, groups=2, impl="fastest")),
])
def test_errors(impl, case, monkeypatch):
    name, exc, fn = case
    monkeypatch.setenv("PIXELFORGE_IMPL", impl)  # `auto` then resolves to this impl
    x, w = _good()
    with pytest.raises(exc, match=name):
        fn(x, w)


def test_needs_skips_work():
    x, w = _good()
    gy = np.ones((2, 6, 4, 4), np.float32)
    dx, dw, db = OPS.conv2d_backward(gy, x, w, groups=2, needs=(False, True, False))
    assert dx is None and db is None and dw.shape == w.shape


def test_glue_rejects_bad_arrays():
    """The C++ glue checks again (the Python layer is bypassed here)."""
    from pixelforge import _backend  # noqa: PLC0415
    mod = _backend.cpu_module()
    if mod is None or not hasattr(mod, "conv2d_forward"):
        pytest.skip("cpu module not built")
    x, w = _good()
    geo = [1, 1, 0, 0, 0, 0, 1, 1, 2]
    with pytest.raises(ValueError, match="out"):
        mod.conv2d_forward(x, w, None, np.empty((2, 5, 4, 4), np.float32), geo)
    with pytest.raises(ValueError, match="weight"):
        mod.conv2d_forward(x, w[:, :1].copy(), None, np.empty((2, 6, 4, 4), np.float32), geo)
    with pytest.raises(TypeError, match="out"):
        mod.conv2d_forward(x, w, None, np.empty((2, 6, 4, 4), np.float64), geo)
    with pytest.raises(ValueError, match="stride"):
        mod.conv2d_forward(x, w, None, np.empty((2, 6, 4, 4), np.float32), [0, 1, 0, 0, 0, 0, 1, 1, 2])
    with pytest.raises(ValueError, match="bias"):
        mod.conv2d_forward(x, w, np.zeros(3, np.float32), np.empty((2, 6, 4, 4), np.float32), geo)
