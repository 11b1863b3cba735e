"""pf.functional: float64 finite-difference gradients of every function, values and gradients
against torch autograd (float32), every built bias_act impl behind the activations, error inputs.

Kernel wrappers (conv2d, conv_transpose2d, attention, reparameterize, gaussian_kl) skip only when
the op has not been merged into pf.ops yet (checked by attribute access)."""
import math

import numpy as np
import pytest

import pixelforge as pf
import pixelforge.functional as F
from autograd_check import gradcheck, torch_compare
from opcheck import built_impls


def r(*shape, seed=0, scale=1.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale


def f32(*shape, seed=0):
    return r(*shape, seed=seed).astype(np.float32)


def has_op(name):
    try:
        getattr(pf.ops, name)
        return True
    except (AttributeError, ImportError):
        return False


# ----------------------------------------------------------------------------- activations
@pytest.fixture(params=built_impls("bias_act"))
def act_impl(request, monkeypatch):
    """Route the functional activations through one bias_act impl (PIXELFORGE_IMPL replaces
    "auto" wherever the impl exists; the layers resolve on every call)."""
    from pixelforge._dispatch import resolve
    impl = request.param
    monkeypatch.setenv("PIXELFORGE_IMPL", impl)
    assert resolve("bias_act", "cpu")[0] == impl and resolve("bias_act_backward", "cpu")[0] == impl
    return impl


ACTS = {
    "relu": (F.relu, "relu", {}),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.1), "leaky_relu", {"negative_slope": 0.1}),
    "silu": (F.silu, "silu", {}),
    "gelu": (F.gelu, "gelu", {}),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), "gelu", {"approximate": "tanh"}),
    "tanh": (F.tanh, "tanh", {}),
    "sigmoid": (F.sigmoid, "sigmoid", {}),
}


@pytest.mark.parametrize("name", sorted(ACTS))
def test_activation_grad(name, act_impl):
    fn = ACTS[name][0]
    x = r(3, 5, 2)
    x[np.abs(x) < 1e-3] = 0.5  # finite differences across a kink are meaningless
    gradcheck(fn, x)


@pytest.mark.parametrize("name", sorted(ACTS))
def test_activation_torch(name, act_impl):
    torch = pytest.importorskip("torch")
    fn, tname, kw = ACTS[name]
    tfn = getattr(torch.nn.functional, tname)
    torch_compare(fn, lambda x: tfn(x, **kw), f32(4, 3, 5))


def test_activation_noncontiguous_and_size1(act_impl):
    x = r(4, 6)
    gradcheck(lambda a: F.silu(a.T), x)
    gradcheck(lambda a: F.relu(a[:, ::2]), x)
    gradcheck(F.sigmoid, r(1, 1))
    assert F.silu(pf.Tensor(np.zeros((0, 3), np.float32))).shape == (0, 3)


@pytest.mark.parametrize("act", ["linear", "lrelu", "silu", "tanh"])
def test_bias_act_grad(act, act_impl):
    out = gradcheck(lambda x, b: F.bias_act(x, b, dim=1, act=act), r(2, 3, 4), r(3, seed=1))
    assert out.shape == (2, 3, 4)
    gradcheck(lambda x, b: F.bias_act(x, b, dim=-1, act=act, gain=0.7), r(5, 3), r(3, seed=2))


def test_bias_act_torch(act_impl):
    torch = pytest.importorskip("torch")
    torch_compare(lambda x, b: F.bias_act(x, b, act="lrelu"),
                  lambda x, b: torch.nn.functional.leaky_relu(x + b[None, :, None, None], 0.2) * math.sqrt(2),
                  f32(2, 3, 4, 4), f32(3, seed=1))


def test_bias_act_clamp_grad_zero_where_clamped():
    x = pf.Tensor(np.array([[-3.0, -0.1, 0.1, 3.0]]), requires_grad=True)
    F.bias_act(x, None, act="linear", clamp=1.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [[0, 1, 1, 0]])


def test_softmax_family():
    gradcheck(lambda x: F.softmax(x, dim=1), r(3, 4, 2))
    gradcheck(lambda x: F.log_softmax(x, dim=-1), r(3, 4))
    torch = pytest.importorskip("torch")
    torch_compare(lambda x: F.log_softmax(x, 1), lambda x: torch.log_softmax(x, 1), f32(4, 7))


# ----------------------------------------------------------------------------- linear and norms
@pytest.mark.parametrize("xshape", [(5, 3), (2, 4, 3), (1, 3), (0, 3)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear(xshape, bias):
    args = [r(*xshape), r(4, 3, seed=1)] + ([r(4, seed=2)] if bias else [])
    out = gradcheck(lambda *a: F.linear(*a), *args)
    assert out.shape == xshape[:-1] + (4,)
    torch = pytest.importorskip("torch")
    torch_compare(lambda *a: F.linear(*a), lambda *a: torch.nn.functional.linear(*a),
                  *[a.astype(np.float32) for a in args])


@pytest.fixture(params=built_impls("group_norm"))
def norm_path(request, monkeypatch):
    """Run the norms (and the activations they fuse) through each impl of pf.ops.group_norm /
    layer_norm: the C++ kernels (kernels/group_norm), the fused Numba kernels or the reference."""
    from pixelforge._dispatch import resolve
    monkeypatch.setenv("PIXELFORGE_IMPL", request.param)
    assert resolve("group_norm", "cpu")[0] == resolve("layer_norm", "cpu")[0] == request.param
    return request.param


@pytest.mark.parametrize("shape,groups", [((2, 6, 3, 5), 3), ((3, 4, 7), 1), ((1, 4, 1, 2), 4), ((2, 2, 5), 2)])
@pytest.mark.parametrize("affine", [True, False])
def test_group_norm(shape, groups, affine, norm_path):
    c = shape[1]
    args = [r(*shape, scale=2.0) + 0.5] + ([r(c, seed=1), r(c, seed=2)] if affine else [])
    gradcheck(lambda x, *wb: F.group_norm(x, groups, *wb), *args, rtol=1e-5, atol=1e-6)
    torch = pytest.importorskip("torch")
    # weight/bias grads sum over N*H*W products of O(1) terms: atol grows with that count
    n_red = int(np.prod(shape)) // c
    torch_compare(lambda x, *wb: F.group_norm(x, groups, *wb),
                  lambda x, *wb: torch.nn.functional.group_norm(x, groups, *wb),
                  *[a.astype(np.float32) for a in args], atol=1e-5 * max(1.0, math.sqrt(n_red)))


@pytest.mark.parametrize("shape,norm", [((3, 5), (5,)), ((2, 3, 4), (3, 4)), ((2, 1, 6), (6,))])
def test_layer_norm(shape, norm, norm_path):
    args = [r(*shape, scale=3.0) - 1, r(*norm, seed=1), r(*norm, seed=2)]
    gradcheck(lambda x, w, b: F.layer_norm(x, norm, w, b), *args, rtol=1e-5, atol=1e-6)
    gradcheck(lambda x: F.layer_norm(x, norm), args[0], rtol=1e-5, atol=1e-6)
    torch = pytest.importorskip("torch")
    torch_compare(lambda x, w, b: F.layer_norm(x, norm, w, b),
                  lambda x, w, b: torch.nn.functional.layer_norm(x, norm, w, b),
                  *[a.astype(np.float32) for a in args])


@pytest.mark.parametrize("act,alpha", [("silu", None), ("relu", None), ("lrelu", 0.1), ("gelu", None),
                                       ("tanh", None), ("sigmoid", None)])
def test_group_norm_fused_activation(act, alpha, norm_path):
    x = r(2, 4, 3, 3) + 0.3
    gradcheck(lambda x, w, b: F.group_norm(x, 2, w, b, act=act, alpha=alpha), x, r(4, seed=1), r(4, seed=2),
              rtol=1e-5, atol=1e-6)
    # equals the unfused composition
    w, b = pf.Tensor(r(4, seed=1)), pf.Tensor(r(4, seed=2))
    fused = F.group_norm(pf.Tensor(x), 2, w, b, act=act, alpha=alpha).numpy()
    plain = F.bias_act(F.group_norm(pf.Tensor(x), 2, w, b), None, 0, act, alpha, 1.0).numpy()
    np.testing.assert_allclose(fused, plain, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape,groups,act", [((3, 8, 17, 19), 4, "silu"), ((2, 6, 1, 1), 3, None),
                                              ((5, 32, 8, 8), 8, "gelu"), ((1, 4, 1), 2, "lrelu"),
                                              ((2, 3, 40, 51), 1, "tanh"), ((4, 12, 33), 6, "sigmoid")])
def test_group_norm_cpp_kernels_against_float64(shape, groups, act, dtype):
    """The C++ GroupNorm kernels (ops/group_norm.py) against the float64 reference on inputs
    far from zero mean (the mean split into two floats must keep the normalized values),
    inner sizes off the vector length, one element per channel, every activation; values,
    mean/rstd and the per-(row, channel) partial sums, dx with and without need_x."""
    from pixelforge.ops._ref import norm as ref_norm
    k = _cpp_norm_kernels()
    g = np.random.default_rng(11)
    n, c = shape[:2]
    inner = int(np.prod(shape[2:]))
    x64 = g.standard_normal(shape) * 3.0 + 1000.0
    w64, b64 = g.standard_normal(c), g.standard_normal(c)
    code, alpha = F._act_code(act, None)
    x, w, b = (a.astype(dtype) for a in (x64, w64, b64))
    y, mean, rstd = k.forward(np.ascontiguousarray(x), w, b, groups, inner, 1e-5, code, alpha)
    # float64 reference from the (rounded) inputs
    xr = x.astype(np.float64).reshape(n, groups, -1)
    xhat, rs = ref_norm.normalize(xr, -1, 1e-5)
    cshape = (1, c) + (1,) * (len(shape) - 2)
    pre = xhat.reshape(shape) * w.astype(np.float64).reshape(cshape) + b.astype(np.float64).reshape(cshape)
    want = F.bias_act(pf.Tensor(pre), None, 0, act or "linear", alpha, 1.0).numpy() if act else pre
    tol = 2e-5 if dtype == "float32" else 1e-11
    np.testing.assert_allclose(y, want, rtol=tol, atol=tol)
    # float32 rows are summed in float32 lanes (float64 per block): the mean to ~1e-7 of the spread
    stat_tol = 1e-6 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(mean, xr.mean(-1).reshape(-1), rtol=0, atol=stat_tol * 3.0)
    np.testing.assert_allclose(rstd, rs.reshape(-1), rtol=stat_tol)
    gy64 = g.standard_normal(shape)
    gy = gy64.astype(dtype)
    # the gradient before the activation by float64 finite differences of the activation
    if act:
        h = 1e-6
        up = F.bias_act(pf.Tensor(pre + h), None, 0, act, alpha, 1.0).numpy()
        dn = F.bias_act(pf.Tensor(pre - h), None, 0, act, alpha, 1.0).numpy()
        gpre = gy.astype(np.float64) * (up - dn) / (2 * h)
    else:
        gpre = gy.astype(np.float64)
    gxh = gpre * w.astype(np.float64).reshape(cshape)
    dx_want = ref_norm.normalize_backward(gxh.reshape(xr.shape), xhat, rs, -1).reshape(shape)
    pw_want = (gpre * xhat.reshape(shape)).reshape(n, groups, c // groups, -1).sum(-1).reshape(n * groups, -1)
    pb_want = gpre.reshape(n, groups, c // groups, -1).sum(-1).reshape(n * groups, -1)
    for need_x in (True, False):
        dx, pw, pb = k.backward(np.ascontiguousarray(gy), np.ascontiguousarray(x), w, b, mean, rstd, groups, inner,
                                need_x, code, alpha)
        scale = max(1.0, math.sqrt(inner * c / groups))
        tol = 1e-4 if dtype == "float32" else 1e-7
        if need_x:
            np.testing.assert_allclose(dx, dx_want, rtol=tol, atol=tol * scale)
        else:
            assert dx is None
        np.testing.assert_allclose(pw, pw_want, rtol=tol, atol=tol * scale)
        np.testing.assert_allclose(pb, pb_want, rtol=tol, atol=tol * scale)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("rows,m", [(37, 96), (16, 1), (5, 333), (1, 17), (100, 40)])
def test_layer_norm_cpp_kernels_against_float64(rows, m, dtype):
    """LayerNorm rows on the C++ kernels (one group, a per-element affine, dW / dB partial sums
    per block of 16 rows): values, mean/rstd, dx and the summed partials against float64, on
    rows far from zero mean, lengths off the vector length, a row count off the block size."""
    from pixelforge.ops._ref import norm as ref_norm
    k = _cpp_norm_kernels()
    g = np.random.default_rng(rows + m)
    x64 = g.standard_normal((rows, m)) * 2.0 - 500.0
    w64, b64 = g.standard_normal(m), g.standard_normal(m)
    x, w, b = (a.astype(dtype) for a in (x64, w64, b64))
    y, mean, rstd = k.forward(np.ascontiguousarray(x), w, b, 1, 1, 1e-5)
    xr = x.astype(np.float64)
    xhat, rs = ref_norm.normalize(xr, -1, 1e-5)
    want = xhat * w.astype(np.float64) + b.astype(np.float64)
    tol = 2e-5 if dtype == "float32" else 1e-11
    np.testing.assert_allclose(y, want, rtol=tol, atol=tol)
    np.testing.assert_allclose(rstd, rs.reshape(-1), rtol=1e-6 if dtype == "float32" else 1e-12)
    gy = g.standard_normal((rows, m)).astype(dtype)
    g64 = gy.astype(np.float64)
    dx_want = ref_norm.normalize_backward(g64 * w.astype(np.float64), xhat, rs, -1)
    dx, pw, pb = k.backward(gy, np.ascontiguousarray(x), w, b, mean, rstd, 1, 1, True)
    assert pw.shape == (-(-rows // 16), m)
    tol = 1e-4 if dtype == "float32" else 1e-9
    np.testing.assert_allclose(dx, dx_want, rtol=tol, atol=tol * max(1.0, math.sqrt(m)))
    np.testing.assert_allclose(pw.sum(0), (g64 * xhat).sum(0), rtol=tol, atol=tol * math.sqrt(rows))
    np.testing.assert_allclose(pb.sum(0), g64.sum(0), rtol=tol, atol=tol * math.sqrt(rows))


def _cpp_norm_kernels():
    """The C++ rows kernels of pf.ops.group_norm (skips where pixelforge._cpu is not built)."""
    if "cpu" not in built_impls("group_norm"):
        pytest.skip("pixelforge._cpu not built")
    from pixelforge.ops.group_norm import kernels
    return kernels("group_norm", "cpu", "cpu")[1]


def test_norms_cpp_same_bits_for_any_thread_count():
    if "cpu" not in built_impls("group_norm"):
        pytest.skip("pixelforge._cpu not built")
    from opcheck import run_python
    code = """
        import hashlib, numpy as np, pixelforge as pf, pixelforge.functional as F
        g = np.random.default_rng(2)
        x = pf.Tensor(g.standard_normal((6, 32, 24, 24)).astype(np.float32), requires_grad=True)
        w = pf.Tensor(g.standard_normal(32).astype(np.float32), requires_grad=True)
        b = pf.Tensor(g.standard_normal(32).astype(np.float32), requires_grad=True)
        y = F.group_norm(x, 8, w, b, act="silu")
        (y * pf.Tensor(g.standard_normal(y.shape).astype(np.float32))).sum().backward()
        print(hashlib.sha256(np.concatenate([y.numpy().ravel(), x.grad.ravel(), w.grad, b.grad]).tobytes()).hexdigest())
        x = pf.Tensor(g.standard_normal((300, 7, 96)).astype(np.float32), requires_grad=True)  # LayerNorm rows
        w = pf.Tensor(g.standard_normal(96).astype(np.float32), requires_grad=True)
        b = pf.Tensor(g.standard_normal(96).astype(np.float32), requires_grad=True)
        y = F.layer_norm(x, 96, w, b)
        (y * pf.Tensor(g.standard_normal(y.shape).astype(np.float32))).sum().backward()
        print(hashlib.sha256(np.concatenate([y.numpy().ravel(), x.grad.ravel(), w.grad, b.grad]).tobytes()).hexdigest())
    """
    outs = [run_python(code, env={"OMP_NUM_THREADS": str(t)}) for t in (1, 2, 3)]
    assert outs[0] == outs[1] == outs[2]


def test_norms_parallel_kernel(monkeypatch):
    if "numba" not in built_impls("group_norm"):
        pytest.skip("numba not installed")
    monkeypatch.setenv("PIXELFORGE_IMPL", "numba")
    from pixelforge.ops._numba import norm
    monkeypatch.setattr(norm, "PARALLEL_MIN", 1)  # the prange variant for these small sizes
    gradcheck(lambda x, w, b: F.group_norm(x, 3, w, b), r(2, 6, 3, 5) + 1, r(6, seed=1), r(6, seed=2),
              rtol=1e-5, atol=1e-6)
    gradcheck(lambda x, w, b: F.layer_norm(x, (3, 4), w, b), r(2, 3, 4), r(3, 4, seed=1), r(3, 4, seed=2),
              rtol=1e-5, atol=1e-6)
    gradcheck(lambda x, w, b: F.group_norm(x, 3, w, b, act="silu"), r(2, 6, 3, 5) + 1, r(6, seed=1),
              r(6, seed=2), rtol=1e-5, atol=1e-6)


def test_norms_edge_inputs(norm_path):
    # empty batch, non-contiguous input, only some inputs needing grads
    assert F.group_norm(pf.Tensor(np.zeros((0, 4, 3), np.float32)), 2).shape == (0, 4, 3)
    w0 = pf.Tensor(np.ones(4, np.float32), requires_grad=True)
    F.group_norm(pf.Tensor(np.zeros((0, 4, 3), np.float32)), 2, w0).sum().backward()
    np.testing.assert_array_equal(w0.grad, np.zeros(4))
    gradcheck(lambda x, w: F.group_norm(x.transpose(2, 3), 2, w), r(2, 4, 3, 5), r(4, seed=1), rtol=1e-5, atol=1e-6)
    x = pf.Tensor(r(3, 6))
    w = pf.Tensor(r(6, seed=1), requires_grad=True)
    F.layer_norm(x, 6, w).sum().backward()
    assert w.grad.shape == (6,) and x.grad is None


# ----------------------------------------------------------------------------- losses
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_l1(reduction):
    gradcheck(lambda a, b: F.mse_loss(a, b, reduction=reduction), r(3, 4), r(3, 4, seed=1))
    gradcheck(lambda a, b: F.l1_loss(a, b, reduction=reduction), r(3, 4), r(3, 4, seed=1))
    torch = pytest.importorskip("torch")
    torch_compare(lambda a, b: F.mse_loss(a, b, reduction=reduction),
                  lambda a, b: torch.nn.functional.mse_loss(a, b, reduction=reduction), f32(3, 4), f32(3, 4, seed=1))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_bce_with_logits(reduction, weighted):
    x = r(4, 3, scale=3.0)
    t = np.random.default_rng(5).random((4, 3))
    w = np.abs(r(4, 3, seed=6)) if weighted else None
    pw = np.abs(r(3, seed=7)) + 0.5 if weighted else None
    gradcheck(lambda a, b: F.binary_cross_entropy_with_logits(a, b, weight=w, reduction=reduction, pos_weight=pw),
              x, t)
    torch = pytest.importorskip("torch")
    tw = None if w is None else torch.tensor(w, dtype=torch.float32)
    tpw = None if pw is None else torch.tensor(pw, dtype=torch.float32)
    torch_compare(lambda a, b: F.binary_cross_entropy_with_logits(a, b, weight=None if w is None else w.astype(
                      np.float32), reduction=reduction, pos_weight=None if pw is None else pw.astype(np.float32)),
                  lambda a, b: torch.nn.functional.binary_cross_entropy_with_logits(a, b, weight=tw,
                                                                                    reduction=reduction,
                                                                                    pos_weight=tpw),
                  x.astype(np.float32), t.astype(np.float32))


CE_CASES = {
    "plain": dict(),
    "smooth": dict(label_smoothing=0.1),
    "weight": dict(weight=True),
    "weight_smooth_ignore": dict(weight=True, label_smoothing=0.2, ignore_index=1),
}


@pytest.mark.parametrize("case", sorted(CE_CASES))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", [(6, 4), (2, 4, 3)])
def test_cross_entropy(case, reduction, shape):
    kw = dict(CE_CASES[case])
    c = shape[1]
    w = np.abs(r(c, seed=3)) + 0.2 if kw.pop("weight", False) else None
    tshape = shape[:1] + shape[2:]
    tgt = np.random.default_rng(4).integers(0, c, size=tshape)
    x = r(*shape, scale=2.0)
    gradcheck(lambda a: F.cross_entropy(a, tgt, weight=w, reduction=reduction, **kw), x)
    torch = pytest.importorskip("torch")
    tw = None if w is None else torch.tensor(w, dtype=torch.float32)
    torch_compare(lambda a: F.cross_entropy(a, tgt, weight=None if w is None else w.astype(np.float32),
                                            reduction=reduction, **kw),
                  lambda a: torch.nn.functional.cross_entropy(a, torch.from_numpy(tgt), weight=tw,
                                                              reduction=reduction, **kw),
                  x.astype(np.float32))


def test_cross_entropy_probabilities_and_nll():
    x = r(5, 4)
    p = np.random.default_rng(2).dirichlet(np.ones(4), size=5)
    gradcheck(lambda a: F.cross_entropy(a, p, label_smoothing=0.1), x)
    tgt = np.array([0, 3, 1, 1, 2])
    gradcheck(lambda a: F.nll_loss(F.log_softmax(a, 1), tgt), x)
    torch = pytest.importorskip("torch")
    torch_compare(lambda a: F.cross_entropy(a, p.astype(np.float32)),
                  lambda a: torch.nn.functional.cross_entropy(a, torch.tensor(p, dtype=torch.float32)),
                  x.astype(np.float32))
    torch_compare(lambda a: F.nll_loss(a, tgt, ignore_index=3), lambda a: torch.nn.functional.nll_loss(
        a, torch.from_numpy(tgt), ignore_index=3), x.astype(np.float32))


# ----------------------------------------------------------------------------- misc
def test_embedding_interpolate_pool_pad():
    idx = np.array([[0, 2, 2], [4, 0, 1]])
    out = gradcheck(lambda w: F.embedding(idx, w), r(5, 3))
    assert out.shape == (2, 3, 3)
    gradcheck(lambda x: F.interpolate(x, scale_factor=2), r(2, 3, 2, 3))
    gradcheck(lambda x: F.avg_pool2d(x, 2), r(2, 3, 4, 6))
    gradcheck(lambda x: F.pad(x, (1, 2, 0, 1)), r(2, 3, 4))
    torch = pytest.importorskip("torch")
    torch_compare(lambda x: F.interpolate(x, scale_factor=2), lambda x: torch.nn.functional.interpolate(
        x, scale_factor=2, mode="nearest"), f32(2, 3, 2, 3))
    torch_compare(lambda x: F.avg_pool2d(x, 2), lambda x: torch.nn.functional.avg_pool2d(x, 2), f32(2, 3, 4, 6))
    torch_compare(lambda x: F.pad(x, (1, 2, 0, 1)), lambda x: torch.nn.functional.pad(x, (1, 2, 0, 1)), f32(2, 3, 4))


def test_dropout():
    x = pf.Tensor(np.ones((200, 50)), requires_grad=True)
    y = F.dropout(x, 0.3, training=True, generator=np.random.default_rng(0))
    kept = y.data != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(y.data[kept], 1 / 0.7)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, kept / 0.7)
    assert F.dropout(x, 0.3, training=False) is x


# ----------------------------------------------------------------------------- pf.ops kernel wrappers
@pytest.mark.skipif(not has_op("conv2d"), reason="pf.ops.conv2d not merged yet")
@pytest.mark.parametrize("cfg", [dict(), dict(stride=2, padding=1), dict(padding=(1, 0), dilation=2),
                                 dict(groups=2, stride=(1, 2))])
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d(cfg, bias):
    x, w = r(2, 4, 7, 6), r(6, 4 // cfg.get("groups", 1), 3, 3, seed=1)
    args = [x, w] + ([r(6, seed=2)] if bias else [])
    gradcheck(lambda *a: F.conv2d(*a, **cfg), *args)
    torch = pytest.importorskip("torch")
    # dw sums N*Ho*Wo products: atol scaled with sqrt of that count
    torch_compare(lambda *a: F.conv2d(*a, **cfg), lambda *a: torch.nn.functional.conv2d(*a, **cfg),
                  *[a.astype(np.float32) for a in args], atol=1e-4)


@pytest.mark.skipif(not has_op("conv_transpose2d"), reason="pf.ops.conv_transpose2d not merged yet")
@pytest.mark.parametrize("cfg", [dict(), dict(stride=2, padding=1, output_padding=1), dict(groups=2, dilation=2)])
@pytest.mark.parametrize("bias", [True, False])
def test_conv_transpose2d(cfg, bias):
    x, w = r(2, 4, 5, 4), r(4, 6 // cfg.get("groups", 1), 3, 3, seed=1)
    args = [x, w] + ([r(6, seed=2)] if bias else [])
    gradcheck(lambda *a: F.conv_transpose2d(*a, **cfg), *args)
    torch = pytest.importorskip("torch")
    torch_compare(lambda *a: F.conv_transpose2d(*a, **cfg),
                  lambda *a: torch.nn.functional.conv_transpose2d(*a, **cfg),
                  *[a.astype(np.float32) for a in args], atol=1e-4)


@pytest.mark.skipif(not has_op("attention"), reason="pf.ops.attention not merged yet")
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("hkv", [2, 1])
def test_attention(causal, hkv):
    q, k, v = r(2, 2, 5, 4), r(2, hkv, 5, 4, seed=1), r(2, hkv, 5, 4, seed=2)
    gradcheck(lambda *a: F.attention(*a, is_causal=causal), q, k, v)
    torch = pytest.importorskip("torch")
    torch_compare(lambda *a: F.attention(*a, is_causal=causal),
                  lambda *a: torch.nn.functional.scaled_dot_product_attention(*a, is_causal=causal,
                                                                              enable_gqa=hkv != 2),
                  *[a.astype(np.float32) for a in (q, k, v)])


@pytest.mark.skipif(not has_op("reparameterize"), reason="pf.ops.reparameterize not merged yet")
def test_reparameterize_and_kl():
    mu, lv = r(3, 4), r(3, 4, seed=1, scale=0.5)
    z = gradcheck(lambda m, l: F.reparameterize(m, l, seed=7), mu, lv)
    _, eps = pf.ops.reparameterize(mu, lv, seed=7)
    np.testing.assert_allclose(z.data, mu + np.exp(0.5 * lv) * eps, rtol=1e-12)
    kl = gradcheck(F.gaussian_kl, mu, lv)
    np.testing.assert_allclose(kl.data, 0.5 * (mu ** 2 + np.exp(lv) - 1 - lv).sum(1), rtol=1e-12)


# ----------------------------------------------------------------------------- errors
def test_errors():
    x = pf.Tensor(f32(2, 4))
    with pytest.raises(ValueError, match="act"):
        F.bias_act(x, act="swishy")
    with pytest.raises(ValueError, match="bias"):
        F.bias_act(x, pf.Tensor(f32(3)), dim=1)
    with pytest.raises(ValueError, match="input"):
        F.linear(x, pf.Tensor(f32(3, 5)))
    with pytest.raises(ValueError, match="num_groups"):
        F.group_norm(pf.Tensor(f32(2, 6, 3)), 4)
    with pytest.raises(ValueError, match="normalized_shape"):
        F.layer_norm(x, (5,))
    with pytest.raises(ValueError, match="weight"):
        F.group_norm(pf.Tensor(f32(2, 6, 3)), 2, pf.Tensor(f32(4)))
    with pytest.raises(ValueError, match="act"):
        F.group_norm(pf.Tensor(f32(2, 6, 3)), 2, act="swish2")
    with pytest.raises(ValueError, match="target"):
        F.mse_loss(x, pf.Tensor(f32(2, 3)))
    with pytest.raises(ValueError, match="reduction"):
        F.mse_loss(x, x, reduction="avg")
    with pytest.raises(ValueError, match="target"):
        F.cross_entropy(x, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="class indices"):
        F.cross_entropy(x, np.array([0, 4]))
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(x, np.array([0, 1]), label_smoothing=2.0)
    with pytest.raises(ValueError, match="input"):
        F.embedding(np.array([5]), pf.Tensor(f32(5, 2)))
    with pytest.raises(ValueError, match="approximate"):
        F.gelu(x, approximate="fast")
    with pytest.raises(TypeError, match="x"):
        F.silu(pf.Tensor(np.zeros(3, np.float16)))
    with pytest.raises(ValueError, match="attn_mask"):
        F.attention(x, x, x, attn_mask=np.ones((2, 2)))
