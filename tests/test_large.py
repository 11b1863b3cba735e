"""More than 2^31 elements through an elementwise kernel (bias_act, cpu impl): any 32-bit index
or offset would wrap and leave the end of the output unwritten or written from the wrong
place. Needs ~8.6 GiB for the output (the input is calloc'd zero pages, untouched except at the
probed positions); skipped unless MemAvailable >= 2^31 * 4 * 2.5 bytes."""
import numpy as np
import pytest

import pixelforge as pf

BIG = 2 ** 31
NEED = int(BIG * 4 * 2.5)


def _mem_available():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif("cpu" not in pf.available("bias_act"), reason="the cpu impl of bias_act is not built"),
]


# (shape, dim): many rows of one element with the bias on the last axis (the row offset r * 1
# passes 2^31, and the channel of a row is r % 2), and one row longer than 2^31 (the index inside
# the row passes 2^31)
CASES = {"rows_past_2^31": ((BIG // 2 + 4, 2), 1), "one_long_row": ((1, 1, BIG + 40), 1)}


@pytest.mark.parametrize("case", list(CASES))
def test_bias_act_past_2_31_elements(case):
    if _mem_available() < NEED:
        pytest.skip(f"needs MemAvailable >= {NEED / 2**30:.1f} GiB, have {_mem_available() / 2**30:.1f} GiB")
    shape, dim = CASES[case]
    n = int(np.prod(shape))
    assert n > BIG
    x = np.zeros(shape, np.float32)  # calloc: zero pages until written
    flat = x.reshape(-1)
    g = np.random.default_rng(0)
    probes = np.r_[0:5, BIG - 6:BIG + 6, n - 12:n]  # the start, around 2^31, the very end
    flat[probes] = g.standard_normal(probes.size).astype(np.float32) * 3
    b = np.array([0.75, -1.5], np.float32)[: shape[dim]]
    y = pf.ops.bias_act(x, b, dim=dim, act="lrelu", impl="cpu")
    assert y.shape == x.shape and y.dtype == np.float32
    yf = y.reshape(-1)
    # what each probed element must be: its channel's bias, leaky ReLU 0.2, gain sqrt(2)
    chan = (probes // int(np.prod(shape[dim + 1:]))) % shape[dim]
    v = flat[probes].astype(np.float64) + b[chan]
    want = np.where(v > 0, v, 0.2 * v) * np.sqrt(2)
    np.testing.assert_allclose(yf[probes], want, rtol=1e-5, atol=1e-6)
    # a stretch of untouched zeros just before 2^31 (x = 0 there: y = lrelu(bias) * gain)
    stretch = np.arange(BIG - 70, BIG - 6)
    chan = (stretch // int(np.prod(shape[dim + 1:]))) % shape[dim]
    v = b[chan].astype(np.float64)
    np.testing.assert_allclose(yf[stretch], np.where(v > 0, v, 0.2 * v) * np.sqrt(2), rtol=1e-5, atol=1e-6)
