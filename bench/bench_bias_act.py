"""bias_act: GB/s (bytes read + written) of pixelforge against the NumPy expression and torch
(where installed), float32, forward and backward, at 131k elements (a layer of a small model:
(8, 16, 32, 32)) and 16M elements ((64, 64, 64, 64)).

    pytest bench/bench_bias_act.py                  # pytest-benchmark, one test per point
    python bench/bench_bias_act.py [--quick]        # the markdown table of RESULTS_bias_act.md
    python bench/bench_bias_act.py --single-thread  # 1 thread each, CPU time of the calling thread

Bytes: forward reads x and writes y (2 x nbytes), backward reads gy and x and writes dx
(3 x nbytes); the bias and dbias are negligible. Ratios are medians of interleaved runs in one
process (pixelforge, numpy, torch, pixelforge, ...), so load from other processes hits all
alike; torch uses as many threads as pixelforge. With --single-thread everything runs in the
calling thread and is timed with its CPU time, which other processes barely disturb.
"""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

if __name__ == "__main__" and "--single-thread" in sys.argv:
    os.environ["OMP_NUM_THREADS"] = "1"  # before pixelforge's OpenMP runtime starts

import pixelforge as pf  # noqa: E402
from pixelforge.benchmarks import interleaved  # noqa: E402

SHAPES = {"131k": (8, 16, 32, 32), "16M": (64, 64, 64, 64)}
ACTS = ["lrelu", "tanh", "silu", "gelu"]
GAIN = {"lrelu": np.sqrt(2), "tanh": 1.0, "silu": np.sqrt(2), "gelu": np.sqrt(2)}  # StyleGAN2's defaults


def make_data(shape):
    g = np.random.default_rng(0)
    return (g.standard_normal(shape).astype(np.float32), g.standard_normal(shape[1]).astype(np.float32),
            g.standard_normal(shape).astype(np.float32))


def _np_erf(v):
    from scipy.special import erf  # noqa: PLC0415  (NumPy has no erf; SciPy's ufunc is the fair stand-in)
    return erf(v)


def numpy_fns(x, b, gy, act):
    gain = np.float32(GAIN[act])
    bb = b[None, :, None, None]

    def fwd():
        v = x + bb
        if act == "lrelu":
            return np.where(v > 0, v, v * np.float32(0.2)) * gain
        if act == "tanh":
            return np.tanh(v) * gain
        if act == "silu":
            return v / (1 + np.exp(-v)) * gain
        return np.float32(0.5) * v * (1 + _np_erf(v * np.float32(0.70710678))) * gain

    def bwd():
        v = x + bb
        if act == "lrelu":
            d = np.where(v > 0, np.float32(1), np.float32(0.2))
        elif act == "tanh":
            t = np.tanh(v)
            d = 1 - t * t
        elif act == "silu":
            s = 1 / (1 + np.exp(-v))
            d = s * (1 + v * (1 - s))
        else:
            d = np.float32(0.5) * (1 + _np_erf(v * np.float32(0.70710678))) + \
                v * np.exp(np.float32(-0.5) * v * v) * np.float32(0.39894228)
        gx = gy * gain * d
        return gx, gx.sum(axis=(0, 2, 3))
    return fwd, bwd


def torch_fns(x, b, gy, act):
    import torch  # noqa: PLC0415
    torch.set_num_threads(pf.info()["cpu"]["threads"])
    F = torch.nn.functional
    fn = {"lrelu": lambda v: F.leaky_relu(v, 0.2), "tanh": torch.tanh, "silu": F.silu, "gelu": F.gelu}[act]
    gain = float(GAIN[act])
    tx, tb, tgy = (torch.from_numpy(a) for a in (x, b, gy))
    tx.requires_grad_(True)
    tb.requires_grad_(True)
    y = fn(tx + tb[None, :, None, None]) * gain

    def fwd():
        with torch.no_grad():
            return fn(tx + tb[None, :, None, None]) * gain

    def bwd():
        return torch.autograd.grad(y, (tx, tb), tgy, retain_graph=True)
    return fwd, bwd


def pf_fns(x, b, gy, act):
    return (lambda: pf.ops.bias_act(x, b, act=act, impl="cpu"),
            lambda: pf.ops.bias_act_backward(gy, x, b, act=act, impl="cpu"))


# ----------------------------------------------------------------------------- pytest-benchmark
_cache = {}


def _data(size):
    if size not in _cache:
        _cache.clear()
        _cache[size] = make_data(SHAPES[size])
    return _cache[size]


@pytest.mark.parametrize("size", list(SHAPES))
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("impl", ["pixelforge", "numpy", "torch"])
def test_bias_act(record, impl, direction, act, size):
    x, b, gy = _data(size)
    if impl == "torch":
        pytest.importorskip("torch")
    if impl == "pixelforge" and "cpu" not in pf.available("bias_act"):
        pytest.skip("C++ module not built")
    make = {"pixelforge": pf_fns, "numpy": numpy_fns, "torch": torch_fns}[impl]
    fn = make(x, b, gy, act)[direction == "backward"]
    record(fn, group=f"bias_act {direction} {act} {size}", name=impl,
           amount=(2 if direction == "forward" else 3) * x.nbytes, alt=impl != "pixelforge",
           rounds=None if size == "131k" else 5)


# ----------------------------------------------------------------------------- table
def main(quick=False):
    try:
        import torch  # noqa: F401, PLC0415
        have_torch = True
    except ImportError:
        have_torch = False
    info = pf.info()
    print(f"pixelforge {pf.__version__}, isa {info['cpu']['isa']}, threads {info['cpu']['threads']}")
    print("| size | act | dir | pixelforge GB/s | numpy GB/s | torch GB/s | vs numpy | vs torch |")
    print("|---|---|---|---|---|---|---|---|")
    for size, shape in SHAPES.items():
        x, b, gy = make_data(shape)
        rounds = (15 if quick else 41) if size == "131k" else (3 if quick else 7)
        for act in ACTS:
            fns = [pf_fns(x, b, gy, act), numpy_fns(x, b, gy, act)]
            if have_torch:
                fns.append(torch_fns(x, b, gy, act))
            for d, direction in enumerate(["fwd", "bwd"]):
                t = interleaved([f[d] for f in fns], rounds)
                nbytes = (2 if d == 0 else 3) * x.nbytes
                rate = [nbytes / s / 1e9 for s in t] + [float("nan")] * (3 - len(t))
                print(f"| {size} | {act} | {direction} | {rate[0]:.2f} ({t[0] * 1e3:.3f} ms) | {rate[1]:.2f} | "
                      f"{rate[2]:.2f} | {t[1] / t[0]:.2f}x | " + (f"{t[2] / t[0]:.2f}x |" if have_torch else "- |"),
                      flush=True)


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
