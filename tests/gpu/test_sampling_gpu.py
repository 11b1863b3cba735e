"""On a real GPU, what only the GPU has: the numba.cuda fill gives the same bits under any launch
configuration (threads, blocks: grid-stride loops), and pf.random runs on CuPy's current stream.
The GPU's values are the per-op files' tests, run there for the GPU impls too (marker ``gpu``):
draws and Philox known answers (tests/test_random.py), add_noise / get_velocity
(test_add_noise.py), DDPM / DDIM steps (test_samplers.py), reparameterize and the KL ops
(test_reparameterize.py), each against its reference and, for the numba.cuda kernels, bit for
bit against the CPU kernels (FMA contraction by NVVM included, which the exact-product
construction of ops/_numba/philox.py and sampling.py makes harmless).
"""
import numpy as np
import pytest

import pixelforge as pf

pytestmark = pytest.mark.gpu
cp = pytest.importorskip("cupy")


def test_launch_configurations_do_not_change_bits():
    from pixelforge.ops._numba import philox as P
    want = pf.random.randn(100003, seed=9, offset=2)
    for threads, blocks in [(32, 1), (256, 7), (1024, 4096)]:
        out = cp.empty(100003, cp.float32)
        P.fill_gpu(out, 9, 0, 2, 2, threads=threads, max_blocks=blocks)
        np.testing.assert_array_equal(cp.asnumpy(out), want)


def test_runs_on_the_current_cupy_stream():
    s = cp.cuda.Stream(non_blocking=True)
    with s:
        g = pf.random.randn(1 << 16, seed=2, device="cuda")
        s.synchronize()
    np.testing.assert_array_equal(cp.asnumpy(g), pf.random.randn(1 << 16, seed=2))
