"""conv2d CUDA kernels (kernels/conv2d/conv2d_cuda.cu) against the float64 reference, for
float32, float16 and bfloat16, all three passes and conv_transpose2d. Runs only where a GPU
and CuPy are present (the ``gpu`` marker is skipped elsewhere)."""
from __future__ import annotations

import numpy as np
import pytest

import pixelforge as pf

pytestmark = pytest.mark.gpu

OPS = pf.ops

CONFIGS = [
    dict(N=2, C=3, K=5, H=7, W=9, R=3, S=3, stride=1, padding=1, dilation=1, groups=1),
    dict(N=3, C=4, K=6, H=11, W=10, R=3, S=2, stride=(2, 1), padding=(1, 2), dilation=(2, 1), groups=2),
    dict(N=1, C=6, K=6, H=8, W=8, R=3, S=3, stride=1, padding="same", dilation=1, groups=6),
    dict(N=2, C=5, K=7, H=9, W=9, R=4, S=4, stride=1, padding="same", dilation=2, groups=1),
    dict(N=2, C=16, K=70, H=13, W=17, R=5, S=5, stride=3, padding=2, dilation=1, groups=1),
    dict(N=4, C=64, K=128, H=8, W=8, R=4, S=4, stride=2, padding=1, dilation=1, groups=1),
    dict(N=0, C=4, K=6, H=5, W=5, R=3, S=3, stride=1, padding=1, dilation=1, groups=2),
]


def _cp():
    from pixelforge import _backend  # noqa: PLC0415
    cp = _backend.cupy()
    if cp is None:
        pytest.skip("CuPy with a GPU is required")
    return cp


def _dtype(cp, name):
    if name == "bfloat16":
        try:
            import ml_dtypes  # noqa: PLC0415
            dt = np.dtype(ml_dtypes.bfloat16)
            cp.asarray(np.zeros(1, dt))
            return dt
        except ImportError:
            pytest.skip("bfloat16 arrays need ml_dtypes")
        except Exception as e:  # noqa: BLE001 - this CuPy cannot hold bfloat16 arrays
            pytest.skip(f"CuPy has no bfloat16 arrays here ({e})")
    return np.dtype(name)


def _to(cp, a, dt):
    return cp.asarray(np.asarray(a, np.float32).astype(dt))


def _host(cp, a):
    return cp.asnumpy(a).astype(np.float64)


def _tol(name, red):
    # Inputs are rounded to the storage dtype before the float64 reference runs, so the
    # error left is float32 accumulation plus the final rounding of each output.
    eps = {"float32": 2e-6, "float16": 1e-3, "bfloat16": 8e-3}[name]
    return eps * 4, eps * 4 * max(1.0, np.sqrt(red))


@pytest.mark.parametrize("dtname", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c['C']}-{c['K']}-k{c['R']}{c['S']}-s{c['stride']}")
def test_conv2d_cuda_against_ref(dtname, cfg):
    cp = _cp()
    if "cuda" not in pf.available("conv2d", "cuda"):
        pytest.skip("the cuda impl is not built")
    dt = _dtype(cp, dtname)
    g = np.random.default_rng(0)
    kw = dict(stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"], groups=cfg["groups"])
    # round the inputs to the storage dtype first: the reference then sees the same values
    x = g.standard_normal((cfg["N"], cfg["C"], cfg["H"], cfg["W"])).astype(dt).astype(np.float64)
    w = g.standard_normal((cfg["K"], cfg["C"] // cfg["groups"], cfg["R"], cfg["S"])).astype(dt).astype(np.float64)
    b = g.standard_normal(cfg["K"]).astype(dt).astype(np.float64)
    want = OPS.conv2d(x, w, b, **kw, impl="ref")
    gy = g.standard_normal(want.shape).astype(dt).astype(np.float64)
    dx_w, dw_w, db_w = OPS.conv2d_backward(gy, x, w, **kw, impl="ref")
    xd, wd, bd, gyd = (_to(cp, a, dt) for a in (x, w, b, gy))
    red = w[0].size
    rtol, atol = _tol(dtname, red)
    y = OPS.conv2d(xd, wd, bd, **kw, impl="cuda")
    assert y.dtype == dt
    np.testing.assert_allclose(_host(cp, y), want, rtol=rtol, atol=atol)
    dx, dw, db = OPS.conv2d_backward(gyd, xd, wd, **kw, impl="cuda")
    rtol, atol = _tol(dtname, cfg["K"] * cfg["R"] * cfg["S"])
    np.testing.assert_allclose(_host(cp, dx), dx_w, rtol=rtol, atol=atol)
    rtol, atol = _tol(dtname, max(1, gy.size // max(1, gy.shape[1])))
    np.testing.assert_allclose(_host(cp, dw), dw_w, rtol=rtol, atol=atol)
    np.testing.assert_allclose(_host(cp, db), db_w, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtname", ["float32", "float16", "bfloat16"])
def test_conv_transpose2d_cuda_against_ref(dtname):
    cp = _cp()
    dt = _dtype(cp, dtname)
    g = np.random.default_rng(1)
    kw = dict(stride=2, padding=1, output_padding=1, groups=2, dilation=1)
    x = g.standard_normal((3, 8, 5, 6)).astype(dt).astype(np.float64)
    w = g.standard_normal((8, 3, 3, 3)).astype(dt).astype(np.float64)
    b = g.standard_normal(6).astype(dt).astype(np.float64)
    want = OPS.conv_transpose2d(x, w, b, **kw, impl="ref")
    gy = g.standard_normal(want.shape).astype(dt).astype(np.float64)
    refs = OPS.conv_transpose2d_backward(gy, x, w, **kw, impl="ref")
    xd, wd, bd, gyd = (_to(cp, a, dt) for a in (x, w, b, gy))
    rtol, atol = _tol(dtname, 400)
    np.testing.assert_allclose(_host(cp, OPS.conv_transpose2d(xd, wd, bd, **kw, impl="cuda")), want,
                               rtol=rtol, atol=atol)
    for a, e in zip(OPS.conv_transpose2d_backward(gyd, xd, wd, **kw, impl="cuda"), refs):
        np.testing.assert_allclose(_host(cp, a), e, rtol=rtol, atol=atol)


def test_cuda_matches_torch_when_available():
    cp = _cp()
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    g = np.random.default_rng(2)
    x = g.standard_normal((4, 64, 32, 32)).astype(np.float32)
    w = (g.standard_normal((64, 64, 3, 3)) / 24).astype(np.float32)
    want = F.conv2d(torch.tensor(x, dtype=torch.float64), torch.tensor(w, dtype=torch.float64), None, 1, 1).numpy()
    got = cp.asnumpy(OPS.conv2d(cp.asarray(x), cp.asarray(w), None, 1, 1, impl="cuda"))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
