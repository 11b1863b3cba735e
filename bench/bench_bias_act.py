"""bias_act: GB/s (bytes read + written) for every built impl against the NumPy expression
and torch (where installed), float32, 16M elements."""
import numpy as np
import pytest

import pixelforge as pf

SHAPE = (64, 64, 64, 64)  # 16M float32
ACTS = ["lrelu", "silu"]


@pytest.fixture(scope="module")
def data():
    g = np.random.default_rng(0)
    return g.standard_normal(SHAPE).astype(np.float32), g.standard_normal(SHAPE[1]).astype(np.float32)


def _bytes(x):
    return 2 * x.nbytes  # read x, write y


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("impl", pf.available("bias_act"))
def test_bias_act(record, data, impl, act):
    x, b = data
    if impl == "ref":
        pytest.skip("the reference is the NumPy expression below")
    record(lambda: pf.ops.bias_act(x, b, act=act, impl=impl), group=f"bias_act {act}", name=f"pixelforge {impl}",
           amount=_bytes(x))


@pytest.mark.parametrize("act", ACTS)
def test_bias_act_numpy(record, data, act):
    x, b = data

    def expr():
        v = x + b[None, :, None, None]
        if act == "lrelu":
            return np.where(v > 0, v, v * np.float32(0.2)) * np.float32(np.sqrt(2))
        return v / (1 + np.exp(-v)) * np.float32(np.sqrt(2))
    record(expr, group=f"bias_act {act}", name="numpy expression", amount=_bytes(x), alt=True, rounds=5)


@pytest.mark.parametrize("act", ACTS)
def test_bias_act_torch(record, data, act):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(pf.info()["cpu"]["threads"])
    x, b = (torch.from_numpy(a) for a in data)
    fn = torch.nn.functional.leaky_relu if act == "lrelu" else torch.nn.functional.silu

    def expr():
        with torch.no_grad():
            return fn(x + b[None, :, None, None]) * np.sqrt(2)
    record(expr, group=f"bias_act {act}", name="torch", amount=_bytes(x.numpy()), alt=True)
