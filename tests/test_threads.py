"""Kernels release the GIL and keep no shared mutable state: ops run from 4 Python threads
at once give the same results as run alone."""
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


CASES.append(_bias_act_case)


@pytest.mark.parametrize("make", CASES)
def test_four_threads_agree_with_serial(make):
    cases = [make(seed) for seed in range(4)]
    op = cases[0][0]
    for impl in fast_impls(op):
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
