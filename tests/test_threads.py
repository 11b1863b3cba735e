"""Kernels release the GIL and keep no shared mutable state: ops run from 4 Python threads
at once give the same results as run alone (bit for bit: the CPU kernels sum in a fixed order
for any thread count). Covers bias_act, conv2d (+backward, conv_transpose2d), attention
(+backward) and, where this installation has them, the sampling ops."""
import threading

import numpy as np
import pytest

import pixelforge as pf
from opcheck import fast_impls

CASES = []


def _bias_act_case(seed):
    g = np.random.default_rng(seed)
    x = g.standard_normal((4, 32, 2000)).astype(np.float32)
    b = g.standard_normal(32).astype(np.float32)

    def run(impl):
        y = pf.ops.bias_act(x, b, act="silu", impl=impl)
        dx, db = pf.ops.bias_act_backward(y, x, b, act="silu", impl=impl)
        return [y, dx, db]
    return "bias_act", run


def _conv2d_case(seed):
    g = np.random.default_rng(seed)
    x = g.standard_normal((3, 16, 23, 21)).astype(np.float32)
    w = g.standard_normal((24, 8, 3, 3)).astype(np.float32)  # groups=2
    b = g.standard_normal(24).astype(np.float32)
    wt = g.standard_normal((16, 6, 4, 4)).astype(np.float32)

    def run(impl):
        y = pf.ops.conv2d(x, w, b, stride=(1, 2), padding=1, groups=2, impl=impl)
        dx, dw, db = pf.ops.conv2d_backward(y, x, w, stride=(1, 2), padding=1, groups=2, impl=impl)
        t = pf.ops.conv_transpose2d(x, wt, None, stride=2, padding=1, groups=2, impl=impl)
        tdx, tdw, _ = pf.ops.conv_transpose2d_backward(t, x, wt, stride=2, padding=1, groups=2,
                                                       needs=(True, True, False), impl=impl)
        return [y, dx, dw, db, t, tdx, tdw]
    return "conv2d", run


def _attention_case(seed):
    g = np.random.default_rng(seed)
    q = g.standard_normal((2, 4, 100, 32)).astype(np.float32)
    k, v = (g.standard_normal((2, 2, 130, 32)).astype(np.float32) for _ in range(2))  # GQA
    do = g.standard_normal(q.shape).astype(np.float32)

    def run(impl):
        res = []
        for causal in (False, True):
            out, lse = pf.ops.attention(q, k, v, causal=causal, return_lse=True, impl=impl)
            res += [out, lse, *pf.ops.attention_backward(do, q, k, v, out, lse, causal=causal, impl=impl)]
        return res
    return "attention", run


CASES += [_bias_act_case, _conv2d_case, _attention_case]


# ----------------------------------------------------------------------------- sampling ops
def _api(path):
    """``pf.<path>`` or None while that op's branch has not landed. (hasattr is not enough: op
    modules load lazily, so a missing module raises ImportError, not AttributeError.)"""
    obj = pf
    try:
        for part in path.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return None
    return obj


def _impl_kw(impl):
    return {} if impl is None else {"impl": impl}


def _reparameterize_case(seed):
    g = np.random.default_rng(seed)
    mu = g.standard_normal((8, 4, 33, 31)).astype(np.float32)
    logvar = (0.3 * g.standard_normal(mu.shape)).astype(np.float32)

    def run(impl):
        kw = _impl_kw(impl)
        z, eps = pf.ops.reparameterize(mu, logvar, seed=seed, offset=7, **kw)
        kl = pf.ops.gaussian_kl(mu, logvar, **kw)
        return [z, eps, kl, *pf.ops.reparameterize_backward(z, eps, logvar, **kw)]
    return "reparameterize", run


def _add_noise_case(seed):
    g = np.random.default_rng(seed)
    x0 = g.standard_normal((8, 3, 40, 40)).astype(np.float32)
    noise = g.standard_normal(x0.shape).astype(np.float32)
    t = g.integers(0, 1000, 8)
    ac = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))

    def run(impl):
        kw = _impl_kw(impl)
        return [pf.ops.add_noise(x0, noise, t, ac, **kw), pf.ops.get_velocity(x0, noise, t, ac, **kw)]
    return "add_noise", run


def _randn_case(seed):
    def run(impl):
        return [pf.random.randn((1000, 257), seed=seed, offset=3), pf.random.rand((513, 7), seed=seed + 9)]
    return "random", run


for _path, _make in (("ops.reparameterize", _reparameterize_case), ("ops.add_noise", _add_noise_case),
                     ("random.randn", _randn_case)):
    CASES.append(pytest.param(_make, marks=pytest.mark.skipif(_api(_path) is None,
                                                              reason=f"pf.{_path} not available here")))


def _impls_for(op):
    """Built fast impls; ops without impl= dispatch (pf.random) or not registered run once as auto."""
    if op == "random":
        return [None]
    try:
        return fast_impls(op) or [None]
    except Exception:  # noqa: BLE001 - an op not registered with the dispatcher
        return [None]


@pytest.mark.parametrize("make", CASES)
def test_four_threads_agree_with_serial(make):
    cases = [make(seed) for seed in range(4)]
    op = cases[0][0]
    for impl in _impls_for(op):
        expected = [run(impl) for _, run in cases]
        results, errors = [None] * 4, []

        def worker(i):
            try:
                for _ in range(3):
                    results[i] = cases[i][1](impl)
            except Exception as e:  # noqa: BLE001
                errors.append(e)
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        for got, exp in zip(results, expected):
            for a, b in zip(got, exp):
                np.testing.assert_array_equal(a, b, err_msg=f"{op}/{impl}")
