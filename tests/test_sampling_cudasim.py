"""The numba.cuda kernels of pf.random and the fused sampling ops, run by the CUDA simulator
(NUMBA_ENABLE_CUDASIM=1, in a subprocess), give the same bits as the CPU kernels: raw words,
uniforms, normals, add_noise/get_velocity, DDPM/DDIM steps (noise none / given / drawn in the
kernel), reparameterize (+ backward), gaussian_kl (+ backward), under several launch
configurations (grid-stride loops included). Small sizes: the simulator runs Python per thread.

The simulator proves the GPU kernels' logic and indexing; bitwise agreement on a real GPU rests on
the exact-product construction documented in ops/_numba/philox.py and sampling.py, checked on
hardware by the ``gpu`` params of test_random.py, test_add_noise.py, test_samplers.py and
test_reparameterize.py (and tests/gpu/test_sampling_gpu.py's launch configurations).
"""
import numpy as np
import pytest

from opcheck import run_cudasim

numba = pytest.importorskip("numba")
pytest.importorskip("numba.cuda")

from pixelforge.ops._numba import philox as P  # noqa: E402
from pixelforge.ops._numba import sampling as S  # noqa: E402

LAUNCHES = [(32, 1), (64, 3)]   # (threads, max blocks): 1 block forces grid-stride


def _inputs():
    rng = np.random.default_rng(20261125)
    d = {}
    d["ctr"] = rng.integers(0, 2 ** 32, (9, 4), dtype=np.uint64).astype(np.uint32)
    d["key"] = rng.integers(0, 2 ** 32, (9, 2), dtype=np.uint64).astype(np.uint32)
    for dt in ("float32",):
        d[f"x_{dt}"] = rng.standard_normal((3, 2, 7)).astype(dt)
        d[f"y_{dt}"] = rng.standard_normal((3, 2, 7)).astype(dt)
        d[f"m_{dt}"] = (1.5 * rng.standard_normal((3, 2, 7))).astype(dt)
    d["a"] = np.sqrt(rng.uniform(0.01, 1, 3))
    d["b"] = -np.sqrt(1 - d["a"] ** 2)
    # gaussian_kl rows longer than one 4096-element partial sum
    d["kl_mu"] = rng.standard_normal((2, 4100)).astype(np.float32)
    d["kl_lv"] = rng.standard_normal((2, 4100)).astype(np.float32)
    d["kl_g"] = rng.standard_normal(2)
    return d


# (seed-derived key, word offset, n) for the stream fills; odd offsets exercise partial blocks
FILLS = [(0x12345678, 0x9ABCDEF0, 3, 45), (1, 0, 0, 8), (7, 7, 2 ** 33 + 1, 6)]
STEP_COEFS = [
    dict(cs=1.0 / 0.7, cm=-0.714 / 0.7, clip=True, r=1.0, px0=0.8, ps=0.3, pm=0.0, pn=0.0),
    dict(cs=0.6, cm=-0.8, clip=False, r=1.0, px0=0.9, ps=0.25, pm=-0.125, pn=0.3),
]


def _rc(c, dtype):
    from pixelforge.schedules import round_coef
    out = {k: (round_coef(v, dtype) if isinstance(v, float) else v) for k, v in c.items()}
    out["r"] = c["r"]
    return out


def _cpu_results(d):
    res = {"philox": P.philox_cpu(d["ctr"], d["key"])}
    for fi, (k0, k1, off, n) in enumerate(FILLS):
        for kind in (0, 1, 2):
            for dt in ("float32", "float64"):
                if kind == 0 and dt == "float64":
                    continue
                res[f"fill_{fi}_{kind}_{dt}"] = P.fill_cpu(np.empty(n, dt), k0, k1, off, kind)
    for dt in ("float32",):   # the fused ops take float32 on the GPU
        x, y, m = d[f"x_{dt}"], d[f"y_{dt}"], d[f"m_{dt}"]
        from pixelforge.schedules import round_coef
        res[f"lin2_{dt}"] = S.lin2_cpu(x, y, round_coef(d["a"], dt), round_coef(d["b"], dt))
        for ci, c in enumerate(STEP_COEFS):
            cc = _rc(c, dt)
            if ci == 0:
                res[f"step_{dt}_{ci}_none"] = S.step_cpu(x, m, None, None, cc)
            else:
                res[f"step_{dt}_{ci}_arr"] = S.step_cpu(x, m, y, None, cc)
                res[f"step_{dt}_{ci}_gen"] = S.step_cpu(x, m, None, (5, 11, 3), cc)
        z, eps = S.reparam_cpu(x, m, 3, 0xDEADBEEF, 1)
        res[f"reparam_z_{dt}"], res[f"reparam_eps_{dt}"] = z, eps
        res[f"reparam_bwd_{dt}"] = S.reparam_bwd_cpu(y, eps, m)[1]
        res[f"kl_{dt}"] = S.kl_cpu(x, m)
        gmu, glv = S.kl_bwd_cpu(d["a"], x, m)
        res[f"kl_bwd_mu_{dt}"], res[f"kl_bwd_lv_{dt}"] = gmu, glv
    res["kl_long"] = S.kl_cpu(d["kl_mu"], d["kl_lv"])
    return res


_SIM = r"""
import sys
import numpy as np
from numba import config
assert config.ENABLE_CUDASIM
sys.path.insert(0, {tests!r})
import test_sampling_cudasim as T
from pixelforge.ops._numba import philox as P, sampling as S
from pixelforge.schedules import round_coef
d = dict(np.load({inp!r}))
out = {{}}
for li, (threads, blocks) in enumerate(T.LAUNCHES):
    L = dict(threads=threads, max_blocks=blocks)
    p = f"L{{li}}_"
    if li == 0:
        out[p + "philox"] = P.philox_gpu(d["ctr"], d["key"])
    for fi, (k0, k1, off, n) in enumerate(T.FILLS):
        for kind in (0, 1, 2):
            for dt in ("float32", "float64"):
                if kind == 0 and dt == "float64":
                    continue
                if li and (fi or dt == "float64"):
                    continue   # the other launches: one fill per kind is enough (the simulator is slow)
                out[p + f"fill_{{fi}}_{{kind}}_{{dt}}"] = P.fill_gpu(np.empty(n, dt), k0, k1, off, kind, **L)
    for dt in ("float32",):
        x, y, m = d["x_" + dt], d["y_" + dt], d["m_" + dt]
        out[p + "lin2_" + dt] = S.lin2_gpu(x, y, round_coef(d["a"], dt), round_coef(d["b"], dt), **L)
        for ci, c in enumerate(T.STEP_COEFS):
            cc = T._rc(c, dt)
            if ci == 0:
                out[p + f"step_{{dt}}_{{ci}}_none"] = S.step_gpu(x, m, None, None, cc, **L)
            else:
                out[p + f"step_{{dt}}_{{ci}}_arr"] = S.step_gpu(x, m, y, None, cc, **L)
                out[p + f"step_{{dt}}_{{ci}}_gen"] = S.step_gpu(x, m, None, (5, 11, 3), cc, **L)
        z, eps = S.reparam_gpu(x, m, 3, 0xDEADBEEF, 1, **L)
        out[p + "reparam_z_" + dt], out[p + "reparam_eps_" + dt] = z, eps
        out[p + "reparam_bwd_" + dt] = S.reparam_bwd_gpu(y, eps, m, **L)[1]
        out[p + "kl_" + dt] = S.kl_gpu(x, m, **L)
        gmu, glv = S.kl_bwd_gpu(d["a"], x, m, **L)
        out[p + "kl_bwd_mu_" + dt], out[p + "kl_bwd_lv_" + dt] = gmu, glv
    if li == 0:
        out[p + "kl_long"] = S.kl_gpu(d["kl_mu"], d["kl_lv"], **L)
np.savez({outp!r}, **out)
print("ok", len(out))
"""


@pytest.fixture(scope="module")
def sim_results(tmp_path_factory):
    import os
    tmp = tmp_path_factory.mktemp("cudasim")
    d = _inputs()
    np.savez(tmp / "in.npz", **d)
    code = _SIM.format(tests=os.path.dirname(__file__), inp=str(tmp / "in.npz"), outp=str(tmp / "out.npz"))
    stdout = run_cudasim(code, timeout=900)
    assert stdout.startswith("ok")
    return d, dict(np.load(tmp / "out.npz"))


def test_gpu_kernels_match_cpu_bitwise(sim_results):
    d, gpu = sim_results
    cpu = _cpu_results(d)
    checked = 0
    for key, got in gpu.items():
        name = key.split("_", 1)[1]
        want = cpu[name]
        assert got.dtype == want.dtype, key
        np.testing.assert_array_equal(got, want, err_msg=key)
        checked += 1
    # every CPU result was compared at least once (launch 0 covers them all)
    assert {k.split("_", 1)[1] for k in gpu} == set(cpu)
    assert checked > len(cpu)


def test_gpu_fill_matches_reference_stream(sim_results):
    """Independent of the CPU kernels: the simulated GPU fill equals the NumPy reference."""
    from pixelforge.ops._ref import random as R
    _, gpu = sim_results
    for fi, (k0, k1, off, n) in enumerate(FILLS):
        np.testing.assert_array_equal(gpu[f"L0_fill_{fi}_2_float64"], R.normal(n, k0, k1, off))
        np.testing.assert_array_equal(gpu[f"L0_fill_{fi}_1_float64"], R.uniform32(R.words(n, k0, k1, off)))
