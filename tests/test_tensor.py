"""pf.Tensor autograd: every op's gradient against float64 finite differences, broadcasting,
graph rules (accumulation, shared subexpressions, no_grad), torch's results, error inputs."""
import numpy as np
import pytest

import pixelforge as pf
from autograd_check import gradcheck, torch_compare
from pixelforge import tensor as T


def r(*shape, seed=0, pos=False):
    a = np.random.default_rng(seed).standard_normal(shape)
    return np.abs(a) + 0.5 if pos else a


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "rsub_scalar": lambda a, b: 2.0 - a * b,
    "rdiv_scalar": lambda a, b: 3.0 / b + a,
}


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((2, 3, 4), (4,)), ((3, 1), (1, 5)), ((1,), (2, 3)),
                                    ((2, 1, 3), (4, 1)), ((), (2, 2))])
def test_binary_grad_broadcast(name, shapes):
    sa, sb = shapes
    b = r(*sb, seed=2, pos=True)  # keep divisors away from 0
    out = gradcheck(BINARY[name], r(*sa, seed=1), b)
    assert out.shape == np.broadcast_shapes(sa, sb)


UNARY = {
    "neg": (lambda a: -a, False),
    "exp": (lambda a: a.exp(), False),
    "log": (lambda a: a.log(), True),
    "sqrt": (lambda a: a.sqrt(), True),
    "pow2": (lambda a: a ** 2, False),
    "pow3.5": (lambda a: a ** 3.5, True),
    "rpow": (lambda a: 2.0 ** a, False),
    "tanh": (lambda a: a.tanh(), False),
    "sigmoid": (lambda a: a.sigmoid(), False),
    "relu": (lambda a: a.relu(), False),
    "abs": (lambda a: a.abs(), False),
    "clamp": (lambda a: a.clamp(-0.5, 0.7), False),
    "scalar_ops": (lambda a: (a * 3 + 1) / 2 - 0.5, False),
    "sum": (lambda a: a.sum(), False),
    "sum_dim": (lambda a: a.sum(1), False),
    "sum_keep": (lambda a: a.sum(-1, keepdim=True), False),
    "mean": (lambda a: a.mean(), False),
    "mean_dim": (lambda a: a.mean(0), False),
    "mean_tuple": (lambda a: a.mean((0, 2)), False),
    "var": (lambda a: a.var(1), False),
    "max": (lambda a: a.max(), False),
    "max_dim": (lambda a: a.max(1), False),
    "min_keep": (lambda a: a.min(2, keepdim=True), False),
    "reshape": (lambda a: a.reshape(4, -1) * 2, False),
    "view_flatten": (lambda a: a.flatten(1), False),
    "transpose": (lambda a: a.transpose(0, 2), False),
    "permute": (lambda a: a.permute(2, 0, 1), False),
    "T": (lambda a: a.T, False),
    "unsqueeze_squeeze": (lambda a: a.unsqueeze(1).squeeze(1) * a, False),
    "expand": (lambda a: a[:, :1].expand(2, 3, 4), False),
    "getitem_slice": (lambda a: a[1:, ::2], False),
    "getitem_int": (lambda a: a[0, 1], False),
    "getitem_fancy_repeat": (lambda a: a[[0, 1, 0]], False),
    "getitem_bool": (lambda a: a[a.data > 0], False),
    "chunk": (lambda a: a.chunk(2, dim=2)[1] * a.chunk(2, dim=2)[0], False),
    "softmax": (lambda a: a.softmax(-1), False),
    "log_softmax": (lambda a: a.log_softmax(1), False),
    "clone_contig": (lambda a: a.transpose(0, 1).contiguous().clone(), False),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_grad(name):
    fn, pos = UNARY[name]
    gradcheck(fn, r(2, 3, 4, seed=3, pos=pos))


@pytest.mark.parametrize("sa,sb", [((3, 4), (4, 5)), ((2, 3, 4), (4, 2)), ((2, 1, 3, 4), (5, 4, 2)), ((4,), (4, 3)),
                                   ((3, 4), (4,)), ((4,), (4,)), ((0, 4), (4, 2))])
def test_matmul_grad(sa, sb):
    out = gradcheck(lambda a, b: a @ b, r(*sa, seed=4), r(*sb, seed=5))
    assert out.shape == np.matmul(np.zeros(sa), np.zeros(sb)).shape


def test_cat_stack_where_grad():
    gradcheck(lambda a, b: T.cat([a, b, a], dim=1), r(2, 3), r(2, 5, seed=1))
    gradcheck(lambda a, b: T.stack([a, b], dim=-1), r(2, 3), r(2, 3, seed=1))
    cond = r(3, 4, seed=7) > 0
    gradcheck(lambda a, b: T.where(cond, a, b), r(3, 4), r(1, 4, seed=1))


def test_shared_subexpression_and_accumulation():
    # y = x*x + x: dy/dx = 2x + 1; x used on several paths must sum all of them
    x = pf.Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    y = x * x + x
    y.sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data + 1)
    # a second backward accumulates into .grad, like torch
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data + 1 + 3)
    # the same array handed to two leaves must not alias their .grad
    a = pf.Tensor(np.ones(3), requires_grad=True)
    b = pf.Tensor(np.ones(3), requires_grad=True)
    (a + b).sum().backward()
    a.grad += 1
    np.testing.assert_array_equal(b.grad, np.ones(3))


def test_deep_graph_no_recursion_limit():
    x = pf.Tensor(np.ones(2), requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0 + 0.0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, np.ones(2))


def test_no_grad_and_detach():
    x = pf.Tensor(r(3), requires_grad=True)
    with pf.no_grad():
        y = x * 2
        with pf.enable_grad():
            z = x * 2
    assert not y.requires_grad and y.is_leaf
    assert z.requires_grad
    assert not (x * 2).detach().requires_grad

    @pf.no_grad()
    def f(t):
        return t * 3
    assert not f(x).requires_grad
    assert pf.tensor.is_grad_enabled()
    w = pf.Tensor(r(3), requires_grad=True)
    (x.detach() * w).sum().backward()
    assert x.grad is None and w.grad is not None


def test_constants_get_no_grad():
    x = pf.Tensor(r(3), requires_grad=True)
    c = pf.Tensor(r(3, seed=1))
    (x * c + np.ones(3)).sum().backward()
    assert c.grad is None
    np.testing.assert_allclose(x.grad, c.data)


def test_comparisons_and_conversions():
    a = pf.Tensor(np.array([1.0, 2.0, 3.0], np.float32))
    assert (a > 1.5).numpy().tolist() == [False, True, True]
    assert (a <= 2).numpy().tolist() == [True, True, False]
    assert a.eq(2.0).numpy().tolist() == [False, True, False]
    assert a.argmax().item() == 2
    assert pf.Tensor([1.0, 2.0]).dtype == np.float32  # Python floats -> float32, like torch
    assert pf.Tensor(np.zeros(2, np.float64)).dtype == np.float64  # arrays keep their dtype
    assert np.asarray(a).dtype == np.float32 and a.numel() == 3 and len(a) == 3
    assert float(a.sum()) == 6.0
    assert (a.double() * 2).dtype == np.float64


def test_float32_stays_float32():
    x = pf.Tensor(r(4, 3).astype(np.float32), requires_grad=True)
    y = ((x * 2.5 + 1) / 3.0) ** 2
    y = (y.exp().mean(0) - x.sum(0)).sum()
    assert y.dtype == np.float32
    y.backward()
    assert x.grad.dtype == np.float32


def test_against_torch():
    torch = pytest.importorskip("torch")
    a, b = r(3, 4).astype(np.float32), r(4, 5, seed=1).astype(np.float32)
    torch_compare(lambda x, y: ((x @ y).tanh() * 2 + 1).sum(0) / 3,
                  lambda x, y: ((x @ y).tanh() * 2 + 1).sum(0) / 3, a, b)
    torch_compare(lambda x, y: T.cat([x.exp(), (y.T ** 2)], 0).mean(1),
                  lambda x, y: torch.cat([x.exp(), (y.T ** 2)], 0).mean(1), a, b)
    torch_compare(lambda x, y: x.softmax(1)[1:, [0, 2, 2]].var(0),
                  lambda x, y: x.softmax(1)[1:, [0, 2, 2]].var(0), a, b, wrt=[0])


def test_errors():
    x = pf.Tensor(r(3), requires_grad=True)
    with pytest.raises(RuntimeError, match="one-element"):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match="does not require grad"):
        pf.Tensor(r(3)).sum().backward()
    with pytest.raises(ValueError, match="grad: shape"):
        (x * 2).backward(np.ones(4))
    with pytest.raises(TypeError, match="requires_grad"):
        pf.Tensor(np.arange(3), requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place"):
        x += 1
    with pytest.raises(TypeError, match="data"):
        pf.Tensor({"a": 1})
    with pytest.raises(ValueError):
        pf.Tensor(r(2, 3)) @ pf.Tensor(r(4, 2))
    with pytest.raises(ValueError, match="tensors"):
        T.cat([])
