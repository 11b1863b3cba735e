"""pf.ops.group_norm / layer_norm and their backward passes: every built impl (C++, Numba,
reference) against a float64 closed form on fresh random inputs (odd sizes, size-1 dims,
non-contiguous views, fused activations), gradients against float64 finite differences,
torch where installed, and error inputs that name the argument."""
import numpy as np
import pytest

import pixelforge as pf
from opcheck import assert_close, built_impls, finite_diff, noncontig, rng

IMPLS = built_impls("group_norm")
ACT = {None: lambda v: v, "silu": lambda v: v / (1 + np.exp(-v)), "lrelu": lambda v: np.where(v > 0, v, 0.2 * v),
       "tanh": np.tanh}


def gn64(x, groups, w, b, eps=1e-5, act=None):
    """GroupNorm + activation in float64, from its definition."""
    n, c = x.shape[:2]
    xr = x.astype(np.float64).reshape(n, groups, -1)
    xhat = (xr - xr.mean(-1, keepdims=True)) / np.sqrt(xr.var(-1, keepdims=True) + eps)
    cs = (1, c) + (1,) * (x.ndim - 2)
    pre = xhat.reshape(x.shape) * (1 if w is None else w.astype(np.float64).reshape(cs)) \
        + (0 if b is None else b.astype(np.float64).reshape(cs))
    return ACT[act](pre)


def ln64(x, shape, w, b, eps=1e-5):
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    x = x.astype(np.float64)
    xhat = (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, keepdims=True) + eps)
    return xhat * (1 if w is None else w.astype(np.float64)) + (0 if b is None else b.astype(np.float64))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_group_norm_random_against_float64(impl, seed, dtype):
    g = rng(500 + seed)
    groups = int(g.choice([1, 2, 3]))
    c = groups * int(g.integers(1, 5))
    shape = (int(g.integers(1, 4)), c) + tuple(int(v) for v in g.integers(1, 8, size=int(g.integers(0, 3))))
    x = (g.standard_normal(shape) * 2 + 0.5).astype(dtype)
    w, b = (g.standard_normal(c).astype(dtype) for _ in range(2))
    act = [None, "silu", "lrelu", "tanh"][seed % 4]
    y, mean, rstd = pf.ops.group_norm(noncontig(x) if seed % 2 else x, groups, w, b, act=act, return_stats=True,
                                      impl=impl)
    assert y.dtype == x.dtype and y.shape == x.shape and mean.shape == rstd.shape == (shape[0] * groups,)
    assert_close(y, gn64(x, groups, w, b, act=act), dtype, f"{impl} y")
    xr = x.astype(np.float64).reshape(shape[0] * groups, -1)
    assert_close(mean, xr.mean(-1), dtype, f"{impl} mean")
    gy = g.standard_normal(shape).astype(dtype)
    dx, dw, db = pf.ops.group_norm_backward(gy, x, groups, mean, rstd, w, b, act=act, impl=impl)
    # float64 finite differences of sum(gy * y) in each argument
    f = lambda xx, ww, bb: float((gy.astype(np.float64) * gn64(xx, groups, ww, bb, act=act)).sum())  # noqa: E731
    x64, w64, b64 = (a.astype(np.float64) for a in (x, w, b))
    scale = 20.0 if dtype == "float32" else 1e4  # finite differences: ~1e-9 absolute in float64
    assert_close(dx, finite_diff(lambda v: f(v, w64, b64), x64), dtype, f"{impl} dx", scale=scale)
    assert_close(dw, finite_diff(lambda v: f(x64, v, b64), w64), dtype, f"{impl} dw", scale=scale)
    assert_close(db, finite_diff(lambda v: f(x64, w64, v), b64), dtype, f"{impl} db", scale=scale)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape,norm", [((3, 5), (5,)), ((2, 3, 7), (7,)), ((2, 3, 4), (3, 4)), ((1, 1), (1,)),
                                        ((40, 33), (33,))])
def test_layer_norm_against_float64(impl, shape, norm):
    g = rng(len(shape) * 7 + shape[-1])
    x = (g.standard_normal(shape) - 3).astype(np.float32)
    w, b = (g.standard_normal(norm).astype(np.float32) for _ in range(2))
    y, mean, rstd = pf.ops.layer_norm(x, norm, w, b, return_stats=True, impl=impl)
    assert_close(y, ln64(x, norm, w, b), "float32", impl)
    gy = g.standard_normal(shape).astype(np.float32)
    dx, dw, db = pf.ops.layer_norm_backward(gy, x, norm, mean, rstd, w, b, impl=impl)
    f = lambda xx, ww, bb: float((gy.astype(np.float64) * ln64(xx, norm, ww, bb)).sum())  # noqa: E731
    x64, w64, b64 = (a.astype(np.float64) for a in (x, w, b))
    assert_close(dx, finite_diff(lambda v: f(v, w64, b64), x64), "float32", f"{impl} dx", scale=50.0)
    assert_close(dw, finite_diff(lambda v: f(x64, v, b64), w64), "float32", f"{impl} dw", scale=50.0)
    assert_close(db, finite_diff(lambda v: f(x64, w64, v), b64), "float32", f"{impl} db", scale=50.0)


@pytest.mark.parametrize("impl", IMPLS)
def test_without_affine_and_needs(impl):
    x = rng(3).standard_normal((2, 4, 3)).astype(np.float32)
    y, mean, rstd = pf.ops.group_norm(x, 2, return_stats=True, impl=impl)
    assert_close(y, gn64(x, 2, None, None), "float32", impl)
    dx, dw, db = pf.ops.group_norm_backward(np.ones_like(x), x, 2, mean, rstd, impl=impl)
    assert dw is None and db is None and np.abs(dx).max() < 1e-4  # a constant gradient normalizes away
    w = np.ones(4, np.float32)
    dx, dw, db = pf.ops.group_norm_backward(np.ones_like(x), x, 2, mean, rstd, w, w, needs=(False, True, False),
                                            impl=impl)
    assert dx is None and dw is not None and db is None


def test_matches_torch():
    torch = pytest.importorskip("torch")
    x = rng(4).standard_normal((3, 6, 5, 4)).astype(np.float32)
    w, b = (rng(5 + i).standard_normal(6).astype(np.float32) for i in range(2))
    want = torch.nn.functional.group_norm(torch.from_numpy(x), 3, torch.from_numpy(w), torch.from_numpy(b))
    assert_close(pf.ops.group_norm(x, 3, w, b), want.numpy(), "float32")
    want = torch.nn.functional.layer_norm(torch.from_numpy(x), (5, 4))
    assert_close(pf.ops.layer_norm(x, (5, 4)), want.numpy(), "float32")


def test_errors_name_the_argument():
    x = np.zeros((2, 6, 3), np.float32)
    with pytest.raises(ValueError, match="num_groups"):
        pf.ops.group_norm(x, 4)
    with pytest.raises(ValueError, match="num_groups"):
        pf.ops.group_norm(x, True)
    with pytest.raises(ValueError, match="^x: expected at least 2"):
        pf.ops.group_norm(np.zeros(6, np.float32), 2)
    with pytest.raises(ValueError, match="^weight: expected shape"):
        pf.ops.group_norm(x, 2, np.ones(5, np.float32))
    with pytest.raises(TypeError, match="^weight: dtype"):
        pf.ops.group_norm(x, 2, np.ones(6, np.float64))
    with pytest.raises(TypeError, match="^x: dtype int64"):
        pf.ops.group_norm(np.zeros((2, 6), np.int64), 2)
    with pytest.raises(ValueError, match="^act"):
        pf.ops.group_norm(x, 2, act="swish")
    with pytest.raises(ValueError, match="^eps"):
        pf.ops.group_norm(x, 2, eps=0)
    y, mean, rstd = pf.ops.group_norm(x, 2, return_stats=True)
    with pytest.raises(ValueError, match="^mean: expected shape"):
        pf.ops.group_norm_backward(x, x, 2, mean[:3], rstd)
    with pytest.raises(ValueError, match="^grad_out: shape"):
        pf.ops.group_norm_backward(x[:1], x, 2, mean, rstd)
    with pytest.raises(ValueError, match="^normalized_shape"):
        pf.ops.layer_norm(x, (6,))
    with pytest.raises(ValueError, match="^impl"):
        pf.ops.layer_norm(x, 3, impl="cuda")
