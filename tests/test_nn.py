"""pf.nn: layers against torch with copied weights (values, input and parameter gradients),
float64 finite differences through whole layers, torch's default init ranges, Module
bookkeeping (names, state dicts, train/eval), clear errors.

Layers on kernels not merged yet (Conv2d, ConvTranspose2d: pf.ops.conv2d; Attention:
pf.ops.attention) skip by checking the op's availability."""
import math

import numpy as np
import pytest

import pixelforge as pf
from autograd_check import gradcheck
from opcheck import finite_diff
from pixelforge import nn


def r(*shape, seed=0, scale=1.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale


def has_op(name):
    try:
        getattr(pf.ops, name)
        return True
    except (AttributeError, ImportError):
        return False


needs_conv = pytest.mark.skipif(not has_op("conv2d"), reason="pf.ops.conv2d not merged yet")
needs_convt = pytest.mark.skipif(not has_op("conv_transpose2d"), reason="pf.ops.conv_transpose2d not merged yet")
needs_attn = pytest.mark.skipif(not has_op("attention"), reason="pf.ops.attention not merged yet")


def copy_to_torch(pm, tm):
    """Copy pf module weights into the torch module with the same state-dict names."""
    import torch
    sd = {k: torch.from_numpy(np.array(v)) for k, v in pm.state_dict().items()}
    tm.load_state_dict(sd, strict=True)


def compare_with_torch(pm, tm, x, rtol=1e-4, atol=1e-5, grad_atol=None, **fwd):
    """Same input through both; compare outputs, input grads and every parameter grad."""
    import torch
    copy_to_torch(pm, tm)
    px = pf.Tensor(x.copy(), requires_grad=x.dtype.kind == "f")
    tx = torch.tensor(x.copy(), requires_grad=x.dtype.kind == "f")
    po, to = pm(px, **fwd), tm(tx, **fwd)
    if isinstance(to, tuple):
        to = to[0]
    np.testing.assert_allclose(po.numpy(), to.detach().numpy(), rtol=rtol, atol=atol, err_msg="forward")
    g = np.random.default_rng(9).standard_normal(po.shape).astype(np.float32)
    (po * pf.Tensor(g)).sum().backward()
    (to * torch.from_numpy(g)).sum().backward()
    ga = atol if grad_atol is None else grad_atol
    if x.dtype.kind == "f":
        np.testing.assert_allclose(px.grad, tx.grad.numpy(), rtol=rtol, atol=ga, err_msg="input grad")
    tparams = dict(tm.named_parameters())
    for name, p in pm.named_parameters():
        np.testing.assert_allclose(p.grad, tparams[name].grad.numpy(), rtol=rtol, atol=ga, err_msg=name)


def f32(*shape, seed=0):
    return r(*shape, seed=seed).astype(np.float32)


# ----------------------------------------------------------------------------- layers vs torch
def test_linear_torch():
    torch = pytest.importorskip("torch")
    compare_with_torch(nn.Linear(5, 3), torch.nn.Linear(5, 3), f32(4, 2, 5))
    compare_with_torch(nn.Linear(5, 3, bias=False), torch.nn.Linear(5, 3, bias=False), f32(4, 5))


def test_norms_torch():
    torch = pytest.importorskip("torch")
    # parameter grads sum over N*H*W = 2*25 terms of O(1): atol scaled by sqrt(50)
    compare_with_torch(nn.GroupNorm(2, 6), torch.nn.GroupNorm(2, 6), f32(2, 6, 5, 5) * 3 + 1, grad_atol=1e-4)
    compare_with_torch(nn.GroupNorm(3, 6, affine=False), torch.nn.GroupNorm(3, 6, affine=False), f32(2, 6, 4))
    compare_with_torch(nn.LayerNorm(8), torch.nn.LayerNorm(8), f32(3, 4, 8) - 2)
    compare_with_torch(nn.LayerNorm((2, 4), bias=False), torch.nn.LayerNorm((2, 4), bias=False), f32(3, 2, 4))


@pytest.mark.parametrize("act", ["SiLU", "ReLU", "LeakyReLU", "GELU", "Tanh", "Sigmoid"])
def test_sequential_fuses_groupnorm_activation_torch(act):
    # Sequential runs GroupNorm + activation as one fused kernel pass: same results as torch
    torch = pytest.importorskip("torch")
    compare_with_torch(nn.Sequential(nn.GroupNorm(2, 4), getattr(nn, act)(), nn.Flatten(), nn.Linear(20, 3)),
                       torch.nn.Sequential(torch.nn.GroupNorm(2, 4), getattr(torch.nn, act)(), torch.nn.Flatten(),
                                           torch.nn.Linear(20, 3)),
                       f32(3, 4, 5) * 2, grad_atol=3e-5)


def test_embedding_torch():
    torch = pytest.importorskip("torch")
    pm, tm = nn.Embedding(10, 4, padding_idx=0), torch.nn.Embedding(10, 4, padding_idx=0)
    copy_to_torch(pm, tm)
    idx = np.array([[0, 3, 3], [9, 1, 0]])
    po, to = pm(idx), tm(torch.from_numpy(idx))
    np.testing.assert_allclose(po.numpy(), to.detach().numpy())
    g = f32(2, 3, 4, seed=3)
    (po * pf.Tensor(g)).sum().backward()
    (to * torch.from_numpy(g)).sum().backward()
    np.testing.assert_allclose(pm.weight.grad, tm.weight.grad.numpy(), rtol=1e-6, atol=1e-6)
    assert np.all(pm.weight.grad[0] == 0)


@pytest.mark.parametrize("name", ["ReLU", "LeakyReLU", "SiLU", "GELU", "Tanh", "Sigmoid", "Flatten", "Identity"])
def test_activation_layers_torch(name):
    torch = pytest.importorskip("torch")
    compare_with_torch(getattr(nn, name)(), getattr(torch.nn, name)(), f32(3, 2, 4))


def test_sequential_mlp_torch():
    torch = pytest.importorskip("torch")
    pm = nn.Sequential(nn.Linear(6, 8), nn.SiLU(), nn.LayerNorm(8), nn.Linear(8, 8), nn.GELU(), nn.Linear(8, 2))
    tm = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.SiLU(), torch.nn.LayerNorm(8), torch.nn.Linear(8, 8),
                             torch.nn.GELU(), torch.nn.Linear(8, 2))
    assert list(pm.state_dict()) == list(tm.state_dict())
    compare_with_torch(pm, tm, f32(5, 6))


@needs_conv
def test_conv2d_torch():
    torch = pytest.importorskip("torch")
    compare_with_torch(nn.Conv2d(3, 4, 3, padding=1), torch.nn.Conv2d(3, 4, 3, padding=1), f32(2, 3, 7, 6),
                       grad_atol=1e-4)
    compare_with_torch(nn.Conv2d(4, 6, (3, 2), stride=2, groups=2, bias=False),
                       torch.nn.Conv2d(4, 6, (3, 2), stride=2, groups=2, bias=False), f32(2, 4, 7, 7), grad_atol=1e-4)


@needs_convt
def test_conv_transpose2d_torch():
    torch = pytest.importorskip("torch")
    compare_with_torch(nn.ConvTranspose2d(4, 3, 4, stride=2, padding=1),
                       torch.nn.ConvTranspose2d(4, 3, 4, stride=2, padding=1), f32(2, 4, 4, 3), grad_atol=1e-4)


@needs_conv
def test_small_convnet_torch():
    torch = pytest.importorskip("torch")
    pm = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.GroupNorm(4, 8), nn.SiLU(),
                       nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.GroupNorm(4, 16), nn.SiLU(), nn.Flatten(),
                       nn.Linear(16 * 4 * 4, 10))
    tm = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.GroupNorm(4, 8), torch.nn.SiLU(),
                             torch.nn.Conv2d(8, 16, 3, stride=2, padding=1), torch.nn.GroupNorm(4, 16),
                             torch.nn.SiLU(), torch.nn.Flatten(), torch.nn.Linear(16 * 4 * 4, 10))
    compare_with_torch(pm, tm, f32(6, 1, 8, 8), atol=1e-4, grad_atol=2e-4)


@needs_attn
def test_attention_torch_mha():
    torch = pytest.importorskip("torch")
    pm = nn.Attention(8, 2)
    tm = torch.nn.MultiheadAttention(8, 2, batch_first=True)
    with torch.no_grad():
        tm.in_proj_weight.copy_(torch.from_numpy(pm.in_proj.weight.data))
        tm.in_proj_bias.copy_(torch.from_numpy(pm.in_proj.bias.data))
        tm.out_proj.weight.copy_(torch.from_numpy(pm.out_proj.weight.data))
        tm.out_proj.bias.copy_(torch.from_numpy(np.random.default_rng(1).standard_normal(8).astype(np.float32)))
    pm.out_proj.bias.data[...] = tm.out_proj.bias.detach().numpy()
    x = f32(2, 5, 8)
    for causal in (False, True):
        px = pf.Tensor(x.copy(), requires_grad=True)
        tx = torch.tensor(x.copy(), requires_grad=True)
        po = pm(px, causal=causal)
        mask = torch.nn.Transformer.generate_square_subsequent_mask(5) if causal else None
        to = tm(tx, tx, tx, need_weights=False, attn_mask=mask, is_causal=causal)[0]
        np.testing.assert_allclose(po.numpy(), to.detach().numpy(), rtol=1e-4, atol=1e-5)
        po.sum().backward()
        to.sum().backward()
        np.testing.assert_allclose(px.grad, tx.grad.numpy(), rtol=1e-4, atol=1e-5)


@needs_attn
def test_attention_kv_cache_decoding():
    m = nn.Attention(8, 4, causal=True, num_kv_heads=2)
    x = f32(2, 6, 8)
    with pf.no_grad():
        full = m(pf.Tensor(x)).numpy()
        cache = nn.KVCache()
        steps = [m(pf.Tensor(x[:, i:i + 1]), kv_cache=cache).numpy() for i in range(6)]
    assert len(cache) == 6
    np.testing.assert_allclose(np.concatenate(steps, 1), full, rtol=1e-4, atol=1e-5)


@needs_attn
@pytest.mark.parametrize("d", [2, 16, 20])
def test_attention_reads_kv_cache_views_in_place(d):
    """k, v as a KV cache holds them (views of longer buffers: head blocks spaced by the
    capacity) give the float64 reference's answer, on the padded (d = 2, 20) and vector paths."""
    b, h, hkv, cap, n = 3, 4, 2, 41, 17
    kb, vb, q = f32(b, hkv, cap, d), f32(b, hkv, cap, d), f32(b, h, 1, d)
    k, v = kb[:, :, :n], vb[:, :, :n]
    assert not k.flags.c_contiguous
    got = pf.ops.attention(q, k, v, causal=True)
    want = pf.ops.attention(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64), causal=True,
                            impl="ref")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@needs_attn
def test_kv_cache_grows_past_its_buffer_and_keeps_grad_path():
    m = nn.Attention(16, 4, causal=True, num_kv_heads=2)
    x = f32(2, 70, 16)
    with pf.no_grad():
        full = m(pf.Tensor(x)).numpy()
        cache = nn.KVCache()
        steps = [m(pf.Tensor(x[:, i:i + 1]), kv_cache=cache).numpy() for i in range(70)]
    assert len(cache) == 70
    np.testing.assert_allclose(np.concatenate(steps, 1), full, rtol=1e-4, atol=1e-5)
    # with autograd the cache concatenates, so gradients reach every position's keys
    xt = pf.Tensor(x[:, :5], requires_grad=True)
    cache = nn.KVCache()
    outs = [m(xt[:, i:i + 1], kv_cache=cache) for i in range(5)]
    pf.functional.cat(outs, dim=1).sum().backward()
    assert np.abs(xt.grad[:, 0]).sum() > 0


@needs_attn
def test_attention_gradcheck():
    for kv_heads in (2, 1):  # multi-head and multi-query (one k/v head)
        m = nn.Attention(4, 2, causal=True, num_kv_heads=kv_heads).double()
        gradcheck(lambda x: m(x), r(2, 3, 4))


# ----------------------------------------------------------------------------- float64 finite differences
def test_layers_gradcheck_float64():
    for m, shape in [(nn.Linear(4, 3), (2, 4)), (nn.GroupNorm(2, 4), (2, 4, 3)), (nn.LayerNorm(4), (3, 4)),
                     (nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)), (4, 3))]:
        m.double()
        gradcheck(lambda x: m(x), r(*shape))
        # parameter gradients: finite differences of sum(m(x) * R) in each parameter
        x = r(*shape, seed=1)
        rr = r(*m(pf.Tensor(x)).shape, seed=2)
        m.zero_grad()
        (m(pf.Tensor(x)) * pf.Tensor(rr)).sum().backward()
        for name, p in m.named_parameters():
            base = p.data

            def f(w, p=p):
                p.data = w
                with pf.no_grad():
                    return float((m(pf.Tensor(x)).data * rr).sum())
            num = finite_diff(f, base.copy())
            p.data = base
            np.testing.assert_allclose(p.grad, num, rtol=1e-5, atol=1e-7, err_msg=name)


@needs_conv
def test_conv_layers_gradcheck_float64():
    m = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.GroupNorm(3, 3), nn.SiLU(),
                      nn.Conv2d(3, 2, 3, stride=2)).double()
    gradcheck(lambda x: m(x), r(2, 2, 5, 5))


# ----------------------------------------------------------------------------- init
def test_default_init_ranges():
    nn.init.manual_seed(0)
    lin = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    assert np.abs(lin.weight.data).max() <= bound and np.abs(lin.bias.data).max() <= bound
    assert abs(lin.weight.data.std() - bound / math.sqrt(3)) < 0.02 * bound
    assert lin.weight.dtype == np.float32
    conv = nn.Conv2d(8, 16, 3, groups=2)
    assert conv.weight.shape == (16, 4, 3, 3)
    assert np.abs(conv.weight.data).max() <= 1 / math.sqrt(4 * 9)
    convt = nn.ConvTranspose2d(8, 6, 4, groups=2)
    assert convt.weight.shape == (8, 3, 4, 4)
    assert np.abs(convt.weight.data).max() <= 1 / math.sqrt(3 * 16)
    emb = nn.Embedding(1000, 50)
    assert abs(emb.weight.data.std() - 1) < 0.02
    gn = nn.GroupNorm(2, 4)
    assert np.all(gn.weight.data == 1) and np.all(gn.bias.data == 0)
    nn.init.manual_seed(5)
    a = nn.Linear(3, 3).weight.data.copy()
    nn.init.manual_seed(5)
    np.testing.assert_array_equal(nn.Linear(3, 3).weight.data, a)


# ----------------------------------------------------------------------------- Module bookkeeping
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4))
        self.head = nn.Linear(4, 2)
        self.tied = self.head  # the same module twice: its parameters are listed once
        self.register_buffer("scale", np.ones(2, np.float32))
        self.register_buffer("tmp", np.zeros(1, np.float32), persistent=False)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return self.head(self.drop(self.body(x))) * pf.Tensor(self.scale)


def test_module_bookkeeping():
    m = Net()
    names = [n for n, _ in m.named_parameters()]
    assert names == ["body.0.weight", "body.0.bias", "body.2.weight", "body.2.bias", "head.weight", "head.bias"]
    # torch's order: a module's own parameters and buffers, then its children; a module reached
    # twice (tied) is saved under both names, as torch does
    assert list(m.state_dict()) == ["scale"] + names + ["tied.weight", "tied.bias"]
    assert [n for n, _ in m.named_children()] == ["body", "head", "tied", "drop"]
    assert len(list(m.modules())) == 7  # Net, body, 3 in body, head (once), drop
    assert m.num_parameters() == 3 * 4 + 4 + 16 + 4 + 8 + 2
    m.eval()
    assert not m.drop.training and not m.body[1].training
    x = pf.Tensor(f32(5, 3))
    np.testing.assert_array_equal(m(x).numpy(), m(x).numpy())  # dropout off in eval
    m.train()
    assert m.drop.training
    m(x).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    assert "Linear(in_features=3" in repr(m)


def test_state_dict_round_trip_bitwise():
    a, b = Net(), Net()
    sd = {k: v.copy() for k, v in a.state_dict().items()}
    b.load_state_dict(a.state_dict())
    for k, v in b.state_dict().items():
        assert v.tobytes() == sd[k].tobytes(), k
    # load copies in place: the Parameter objects (and views an optimizer holds) stay
    w = b.head.weight
    b.load_state_dict(Net().state_dict())
    assert b.head.weight is w


def test_load_state_dict_errors():
    m = Net()
    sd = dict(m.state_dict())
    missing = {k: v for k, v in sd.items() if k != "head.bias"}
    with pytest.raises(ValueError, match=r"missing keys: head\.bias"):
        m.load_state_dict(missing)
    with pytest.raises(ValueError, match=r"unexpected keys: extra"):
        m.load_state_dict(dict(sd, extra=np.zeros(1)))
    with pytest.raises(ValueError, match=r"body\.0\.weight: shape \(3, 4\) in the state dict, \(4, 3\) in the model"):
        m.load_state_dict(dict(sd, **{"body.0.weight": np.zeros((3, 4), np.float32)}))
    with pytest.raises(ValueError, match=r"scale: dtype float64 in the state dict, float32"):
        m.load_state_dict(dict(sd, scale=np.ones(2)))
    res = m.load_state_dict(missing, strict=False)
    assert res.missing_keys == ["head.bias"] and res.unexpected_keys == []
    with pytest.raises(TypeError, match="state_dict"):
        m.load_state_dict([1, 2])


def test_layer_errors():
    with pytest.raises(ValueError, match="input"):
        nn.Linear(3, 2)(pf.Tensor(f32(4, 5)))
    with pytest.raises(ValueError, match="GroupNorm expects"):
        nn.GroupNorm(2, 4)(pf.Tensor(f32(2, 6, 3)))
    with pytest.raises(ValueError, match="num_groups"):
        nn.GroupNorm(3, 4)
    with pytest.raises(ValueError, match="unknown activation 'swishy'"):
        nn.make_activation("swishy")
    with pytest.raises(ValueError, match="unknown activation"):
        nn.BiasAct(4, act="nope")
    with pytest.raises(ValueError, match="in_features"):
        nn.Linear(0, 3)
    with pytest.raises(ValueError, match="groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="kernel_size"):
        nn.Conv2d(3, 4, 0)
    with pytest.raises(ValueError, match="num_heads"):
        nn.Attention(10, 3)
    with pytest.raises(ValueError, match="Attention expects"):
        nn.Attention(8, 2)(pf.Tensor(f32(2, 8)))
    with pytest.raises(TypeError, match="parameter"):
        nn.Linear(2, 2).weight = np.zeros((2, 2))  # noqa: B010 - the error is the point
    with pytest.raises(TypeError, match="modules"):
        nn.Sequential(nn.Linear(2, 2), "relu")


def test_make_activation_and_bias_act_layer():
    assert isinstance(nn.make_activation("LReLU".replace("LReLU", "lrelu"), negative_slope=0.2), nn.LeakyReLU)
    layer = nn.BiasAct(3, act="lrelu").double()
    gradcheck(lambda x: layer(x), r(2, 3, 4))
