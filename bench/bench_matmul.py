"""matmul: GFLOP/s of pixelforge's GEMM against NumPy (OpenBLAS) and torch, float32, in one
process. Square 256..2048 and the shapes a small training loop is made of.

    pytest bench/bench_matmul.py                # pytest-benchmark, one table at the end
    python bench/bench_matmul.py [--quick]      # interleaved rounds, medians: less noisy
                                                # on a shared machine (used for RESULTS_matmul.md)
"""
import os
import sys
import time

import numpy as np
import pytest

import pixelforge as pf
from pixelforge.benchmarks import interleaved as harness_interleaved
from pixelforge.benchmarks import torch_or_none

# (M, N, K): C (M×N) = A (M×K) @ B (K×N)
SQUARE = [(s, s, s) for s in (256, 512, 1024, 2048)]
TRAINING = [(4096, 96, 384), (4096, 384, 96), (64, 128, 128), (128, 64, 2048), (100, 96, 288)]
SHAPES = SQUARE + TRAINING


def _operands(shape):
    m, n, k = shape
    g = np.random.default_rng(0)
    return g.standard_normal((m, k)).astype(np.float32), g.standard_normal((k, n)).astype(np.float32)


def _flops(shape):
    m, n, k = shape
    return 2.0 * m * n * k


def _name(shape):
    return "matmul {}x{}x{}".format(*shape)


def _torch():
    return torch_or_none(threads="pixelforge")


def _contenders(shape):
    a, b = _operands(shape)
    out = {}
    for impl in pf.available("matmul"):
        if impl != "ref":
            c = np.empty((a.shape[0], b.shape[1]), np.float32)
            out[f"pixelforge {impl}"] = (lambda impl=impl, c=c: pf.ops.matmul(a, b, out=c, impl=impl), False)
    c = np.empty((a.shape[0], b.shape[1]), np.float32)
    out["numpy (OpenBLAS)"] = (lambda: np.matmul(a, b, out=c), True)
    torch = _torch()
    if torch is not None:
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        tc = torch.empty(a.shape[0], b.shape[1])
        out["torch"] = (lambda: torch.matmul(ta, tb, out=tc), True)
    return out


@pytest.mark.parametrize("shape", SHAPES, ids=_name)
@pytest.mark.parametrize("who", ["pixelforge cpu", "numpy (OpenBLAS)", "torch"])
def test_matmul(record, shape, who):
    cont = _contenders(shape)
    if who not in cont:
        pytest.skip(f"{who} not available")
    fn, alt = cont[who]
    record(fn, group=_name(shape), name=who, amount=_flops(shape), unit="GFLOP/s", alt=alt)


def interleaved(shapes, rounds=7, target_s=0.05):
    """Median GFLOP/s per contender, the contenders taking turns within each round."""
    rows = []
    for shape in shapes:
        cont = _contenders(shape)
        med = harness_interleaved({k: fn for k, (fn, _) in cont.items()}, rounds, clock=time.perf_counter,
                                  target_s=target_s)
        rows.append((shape, {k: _flops(shape) / v / 1e9 for k, v in med.items()}))
    return rows


def main(argv):
    quick = "--quick" in argv
    rows = interleaved(SHAPES, rounds=3 if quick else 7)
    names = list(rows[0][1])
    print(f"threads={pf.info()['cpu']['threads']} isa={pf.info()['cpu']['isa']} "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}")
    print("| M×N×K | " + " | ".join(f"{n} GFLOP/s" for n in names) + " | pf / numpy | pf / torch |")
    print("|---" * (len(names) + 3) + "|")
    for shape, rates in rows:
        pfr = rates.get("pixelforge cpu", float("nan"))
        r_np = pfr / rates["numpy (OpenBLAS)"]
        r_t = pfr / rates["torch"] if "torch" in rates else float("nan")
        print("| {}×{}×{} | ".format(*shape) + " | ".join(f"{rates[n]:.1f}" for n in names)
              + f" | {r_np:.2f} | {r_t:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
