"""Autograd, layers and the fused optimizers on CuPy arrays (GPU machines only): the same
training steps on the GPU and the CPU give the same parameters."""
import numpy as np
import pytest

import pixelforge as pf
import pixelforge.functional as F
from pixelforge import nn, optim

pytestmark = pytest.mark.gpu


def _mlp_pair():
    nn.init.manual_seed(0)
    cpu = nn.Sequential(nn.Linear(6, 16), nn.SiLU(), nn.LayerNorm(16), nn.Linear(16, 3))
    nn.init.manual_seed(0)
    gpu = nn.Sequential(nn.Linear(6, 16), nn.SiLU(), nn.LayerNorm(16), nn.Linear(16, 3)).to(device="cuda")
    return cpu, gpu


@pytest.mark.parametrize("opt_name,kw", [("Adam", dict(lr=0.01)), ("AdamW", dict(lr=0.01, weight_decay=0.1)),
                                         ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True))])
def test_training_steps_match_cpu(opt_name, kw):
    import cupy as cp
    cpu, gpu = _mlp_pair()
    oc, og = getattr(optim, opt_name)(cpu.parameters(), **kw), getattr(optim, opt_name)(gpu.parameters(), **kw)
    g = np.random.default_rng(0)
    for _ in range(4):
        x = g.standard_normal((8, 6)).astype(np.float32)
        y = g.integers(0, 3, 8)
        for model, opt, xp in ((cpu, oc, np), (gpu, og, cp)):
            opt.zero_grad()
            F.cross_entropy(model(pf.Tensor(xp.asarray(x))), xp.asarray(y)).backward()
            opt.step()
    for (name, a), b in zip(cpu.state_dict().items(), gpu.state_dict().values()):
        assert isinstance(b, cp.ndarray)
        np.testing.assert_allclose(a, b.get(), rtol=1e-4, atol=1e-5, err_msg=name)


def test_group_norm_and_ema_on_gpu():
    import cupy as cp
    x = np.random.default_rng(1).standard_normal((2, 4, 3, 3)).astype(np.float32)
    a = pf.Tensor(x, requires_grad=True)
    b = pf.Tensor(cp.asarray(x), requires_grad=True)
    F.group_norm(a, 2, act="silu").sum().backward()
    F.group_norm(b, 2, act="silu").sum().backward()
    np.testing.assert_allclose(a.grad, b.grad.get(), rtol=1e-4, atol=1e-5)
    m = nn.Linear(3, 2).to(device="cuda")
    ema = optim.EMA(m, decay=0.5)
    m.weight.data[...] = 1.0
    ema.update()
    assert isinstance(ema.shadow["weight"], cp.ndarray)
