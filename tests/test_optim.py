"""pf.optim: fused Numba SGD/Adam/AdamW against torch.optim step by step (serial and parallel
kernels, float32 and float64), skipping of parameters without gradients, EMA, the warm-up +
cosine schedule, gradient clipping against torch, the numba.cuda kernels in the simulator, and
a small network that learns the digits."""
import math

import numpy as np
import pytest

import pixelforge as pf
import pixelforge.functional as F
from opcheck import run_cudasim
from pixelforge import nn, optim
from pixelforge.ops._numba import optim as kern


def make_pair(dtype=np.float32, sizes=(6, 8, 3), seed=0):
    """A pf MLP and a torch copy of it."""
    torch = pytest.importorskip("torch")
    nn.init.manual_seed(seed)
    pm = nn.Sequential(nn.Linear(sizes[0], sizes[1]), nn.Tanh(), nn.Linear(sizes[1], sizes[2])).to(dtype)
    tm = torch.nn.Sequential(torch.nn.Linear(sizes[0], sizes[1]), torch.nn.Tanh(), torch.nn.Linear(sizes[1], sizes[2]))
    tm = tm.to(torch.float64 if dtype == np.float64 else torch.float32)
    tm.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in pm.state_dict().items()})
    return pm, tm


OPTS = {
    "sgd": ("SGD", dict(lr=0.1)),
    "sgd_momentum": ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    "sgd_nesterov": ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True)),
    "adam": ("Adam", dict(lr=0.01)),
    "adam_wd": ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    "adamw": ("AdamW", dict(lr=0.01)),
    "adamw_wd": ("AdamW", dict(lr=0.02, weight_decay=0.3)),
}


def run_steps(pm, tm, name, kw, steps=6, set_to_none=True, x=None, y=None):
    torch = pytest.importorskip("torch")
    cls, tcls = getattr(optim, OPTS[name][0]), getattr(torch.optim, OPTS[name][0])
    po, to = cls(pm.parameters(), **kw), tcls(tm.parameters(), **kw)
    dt = next(iter(pm.parameters())).dtype
    g = np.random.default_rng(1)
    for _ in range(steps):
        xb = g.standard_normal((5, pm[0].in_features)).astype(dt) if x is None else x
        yb = g.standard_normal((5, pm[-1].out_features)).astype(dt) if y is None else y
        po.zero_grad(set_to_none=set_to_none)
        F.mse_loss(pm(pf.Tensor(xb)), pf.Tensor(yb)).backward()
        # torch's optimizer gets our gradients: this compares the update rules alone (Adam's
        # normalisation would amplify float32 rounding differences of near-zero gradients)
        for p, tp in zip(pm.parameters(), tm.parameters()):
            tp.grad = torch.from_numpy(p.grad.copy())
        po.step()
        to.step()
    return po


@pytest.mark.parametrize("name", sorted(OPTS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_torch(name, dtype):
    pm, tm = make_pair(dtype)
    run_steps(pm, tm, name, OPTS[name][1])
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    for k, v in tm.state_dict().items():
        np.testing.assert_allclose(pm.state_dict()[k], v.numpy(), err_msg=k, **tol)


@pytest.mark.parametrize("name", ["adamw_wd", "sgd_momentum"])
def test_parallel_kernel_matches_torch(name, monkeypatch):
    monkeypatch.setattr(kern, "PARALLEL_MIN", 1000)  # the prange kernel runs for these sizes
    pm, tm = make_pair(np.float32, sizes=(300, 300, 4))
    run_steps(pm, tm, name, OPTS[name][1], steps=3, set_to_none=False)
    for k, v in tm.state_dict().items():
        np.testing.assert_allclose(pm.state_dict()[k], v.numpy(), rtol=1e-5, atol=1e-6, err_msg=k)


def test_params_without_grad_are_skipped_like_torch():
    torch = pytest.importorskip("torch")
    pm, tm = make_pair()
    extra_p = nn.Parameter(np.ones(3, np.float32))
    extra_t = torch.nn.Parameter(torch.ones(3))
    po = optim.Adam(list(pm.parameters()) + [extra_p], lr=0.1)
    to = torch.optim.Adam(list(tm.parameters()) + [extra_t], lr=0.1)
    x = np.ones((2, 6), np.float32)
    for step in range(3):
        po.zero_grad()
        to.zero_grad()
        loss_p = pm(pf.Tensor(x)).sum()
        loss_t = tm(torch.from_numpy(x)).sum()
        if step == 1:  # the extra parameter gets a gradient only on one step
            loss_p = loss_p + (extra_p * 2.0).sum()
            loss_t = loss_t + (extra_t * 2.0).sum()
        loss_p.backward()
        loss_t.backward()
        po.step()
        to.step()
    np.testing.assert_allclose(extra_p.data, extra_t.detach().numpy(), rtol=1e-6)
    for k, v in tm.state_dict().items():
        np.testing.assert_allclose(pm.state_dict()[k], v.numpy(), rtol=1e-5, atol=1e-6)


def test_flat_buffer_views_and_replaced_data():
    m = nn.Linear(3, 2)
    opt = optim.SGD(m.parameters(), lr=1.0)
    w = m.weight
    assert w.data.base is not None  # a view of the optimizer's flat buffer
    m.load_state_dict({"weight": np.zeros((2, 3), np.float32), "bias": np.zeros(2, np.float32)})
    opt.zero_grad(set_to_none=False)
    assert w.grad is not None and not w.grad.any()
    m(pf.Tensor(np.ones((1, 3), np.float32))).sum().backward()
    opt.step()
    np.testing.assert_allclose(w.data, -np.ones((2, 3)))
    w.data = np.full((2, 3), 5.0, np.float32)  # replaced: taken back into the flat buffer
    opt.zero_grad()
    m(pf.Tensor(np.ones((1, 3), np.float32))).sum().backward()
    opt.step()
    np.testing.assert_allclose(w.data, 4.0)


def test_optimizer_state_dict_round_trip():
    pm, _ = make_pair()
    opt = optim.AdamW(pm.parameters(), lr=0.01)
    x = np.ones((2, 6), np.float32)
    pm(pf.Tensor(x)).sum().backward()
    opt.step()
    sd = opt.state_dict()
    opt2 = optim.AdamW(make_pair()[0].parameters(), lr=0.5)
    opt2.load_state_dict(sd)
    assert opt2.step_count == 1 and opt2.lr == 0.01
    np.testing.assert_array_equal(opt2.state_dict()["group0.exp_avg"], sd["group0.exp_avg"])


def test_ema():
    m = nn.Linear(3, 2)
    w0 = m.weight.data.copy()
    ema = optim.EMA(m, decay=0.9)
    with pf.no_grad():
        m.weight.data[...] = 1.0
    ema.update()
    np.testing.assert_allclose(ema.shadow["weight"], 0.9 * w0 + 0.1, rtol=1e-6)
    ema.update()
    np.testing.assert_allclose(ema.shadow["weight"], 0.81 * w0 + 0.19, rtol=1e-6)
    target = nn.Linear(3, 2)
    ema.copy_to(target)
    np.testing.assert_array_equal(target.weight.data, ema.shadow["weight"])
    warm = optim.EMA(m, decay=0.999, warmup=True)
    assert warm.current_decay() == pytest.approx(0.1)
    with pytest.raises(ValueError, match="decay"):
        optim.EMA(m, decay=1.5)


def test_warmup_cosine():
    base = 0.1
    lrs = [optim.warmup_cosine(s, base, 10, 110, min_lr=0.001) for s in range(130)]
    np.testing.assert_allclose(lrs[:10], base * np.arange(1, 11) / 10)
    assert lrs[10] == pytest.approx(base)
    assert lrs[60] == pytest.approx(0.001 + 0.5 * (base - 0.001))
    assert lrs[110] == pytest.approx(0.001) and lrs[129] == pytest.approx(0.001)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    opt = optim.SGD(nn.Linear(2, 2).parameters(), lr=base)
    sched = optim.WarmupCosine(opt, 10, 110, min_lr=0.001)
    seen = [opt.lr]
    for _ in range(20):
        sched.step()
        seen.append(opt.lr)
    np.testing.assert_allclose(seen, lrs[:21])


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.1, 100.0])
def test_clip_grad_norm_torch(norm_type, max_norm):
    torch = pytest.importorskip("torch")
    pm, tm = make_pair()
    x = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    pm(pf.Tensor(x)).sum().backward()
    tm(torch.from_numpy(x)).sum().backward()
    total = nn.utils.clip_grad_norm_(pm.parameters(), max_norm, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tm.parameters(), max_norm, norm_type)
    assert total == pytest.approx(float(ttotal), rel=1e-5)
    for (name, p), tp in zip(pm.named_parameters(), tm.parameters()):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-5, atol=1e-7, err_msg=name)


def test_errors():
    m = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="lr"):
        optim.Adam(m.parameters(), lr=-1)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam(m.parameters(), betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="params"):
        optim.SGD([np.zeros(3)], lr=0.1)
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD(m.parameters(), lr=0.1, nesterov=True)


@pytest.mark.cudasim
def test_gpu_kernels_in_simulator():
    out = run_cudasim("""
        import numpy as np
        from pixelforge.ops._numba import optim as k
        g = np.random.default_rng(0)
        n = 1000
        p, gr, m, v = (g.standard_normal(n).astype(np.float32) for _ in range(4))
        v = np.abs(v)
        starts, ends = np.array([0, 600], np.int64), np.array([400, 1000], np.int64)
        a = [x.copy() for x in (p, gr, m, v)]
        b = [x.copy() for x in (p, gr, m, v)]
        k.adam_step_cpu(*a, starts, ends, 0.01, 0.9, 0.99, 1e-8, 0.1, True, [3, 1])
        k.adam_step_gpu(*b, starts, ends, 0.01, 0.9, 0.99, 1e-8, 0.1, True, [3, 1])
        # the simulator evaluates the device function in float32 NumPy scalars, the CPU kernel
        # in float64: one float32 rounding per operation apart
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
        assert np.array_equal(a[0][400:600], p[400:600])  # outside the ranges: untouched
        a = [x.copy() for x in (p, gr, m)]
        b = [x.copy() for x in (p, gr, m)]
        k.sgd_step_cpu(*a, starts, ends, 0.1, 0.9, 0.0, 0.01, True, [False, True])
        k.sgd_step_gpu(*b, starts, ends, 0.1, 0.9, 0.0, 0.01, True, [False, True])
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
        s1, s2 = m.copy(), m.copy()
        k.ema_cpu(s1, p, 0.9)
        k.ema_gpu(s2, p, 0.9)
        np.testing.assert_allclose(s1, s2, rtol=1e-5, atol=1e-7)
        print("ok")
    """)
    assert out.strip().endswith("ok")


def _learn(model, steps, lr=3e-3, batch=64):
    images, labels = pf.data.load_digits()
    opt = optim.Adam(model.parameters(), lr=lr)
    it = pf.data.batches(len(images), batch, seed=0)
    losses = []
    for _ in range(steps):
        idx = next(it)
        opt.zero_grad()
        loss = F.cross_entropy(model(pf.Tensor(images[idx])), labels[idx])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with pf.no_grad():
        acc = (model(pf.Tensor(images[:500])).numpy().argmax(1) == labels[:500]).mean()
    return np.mean(losses[:5]), np.mean(losses[-10:]), acc


def test_mlp_learns_digits():
    nn.init.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.SiLU(), nn.LayerNorm(64), nn.Linear(64, 10))
    first, last, acc = _learn(model, 150)
    assert last < 0.3 * first and acc > 0.85, (first, last, acc)


@pytest.mark.skipif(not hasattr(pf.ops, "_OPS") or "conv2d" not in pf.ops._OPS, reason="no conv2d entry")
def test_convnet_learns_digits():
    try:
        pf.ops.conv2d
    except (AttributeError, ImportError):
        pytest.skip("pf.ops.conv2d not merged yet")
    nn.init.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.GroupNorm(4, 16), nn.SiLU(),
                          nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.GroupNorm(8, 32), nn.SiLU(),
                          nn.Flatten(), nn.Linear(32 * 16, 10))
    first, last, acc = _learn(model, 120)
    assert last < 0.3 * first and acc > 0.85, (first, last, acc)


@pytest.mark.parametrize("op", ["adam", "adamw", "sgd", "nesterov", "ema"])
def test_fused_update_impls_match_reference(op):
    """Every built impl of the fused updates (adam_step / sgd_step / ema_update) against the
    readable float64 reference, on ranges that skip a gap and differ in step count."""
    from pixelforge._dispatch import available, resolve
    g = np.random.default_rng(7)
    n = 1037
    base = [g.standard_normal(n).astype(np.float32) for _ in range(4)]
    base[3] = np.abs(base[3])  # second moment
    starts, ends = np.array([0, 500], np.int64), np.array([400, 1037], np.int64)
    name = {"adam": "adam_step", "adamw": "adam_step", "sgd": "sgd_step", "nesterov": "sgd_step",
            "ema": "ema_update"}[op]
    impls = available(name)
    assert impls[-1] == "ref" and "numba" in impls
    results = {}
    for impl in impls:
        p, gr, m, v = (a.copy() for a in base)
        fn = resolve(name, "cpu", impl)[1]
        if op in ("adam", "adamw"):
            fn(p, gr, m, v, starts, ends, 1e-2, 0.9, 0.999, 1e-8, 0.1, op == "adamw", np.array([1, 3]))
            results[impl] = (p, m, v)
        elif op in ("sgd", "nesterov"):
            fn(p, gr, m, starts, ends, 1e-2, 0.9, 0.0, 0.05, op == "nesterov", np.array([True, False]))
            results[impl] = (p, m)
        else:
            fn(p, gr, 0.9)
            results[impl] = (p,)
    want = results["ref"]
    for impl, got in results.items():
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-7, err_msg=f"{op} {impl}")
    # the gap between the ranges is untouched
    if op != "ema":
        np.testing.assert_array_equal(want[0][400:500], base[0][400:500])
        assert not np.allclose(want[0][:400], base[0][:400])
