"""matmul: GFLOP/s of pixelforge's GEMM against NumPy (OpenBLAS) and torch, float32, in one
process. Square 256..2048 and the shapes a small training loop is made of.

    pytest bench/bench_matmul.py                # pytest-benchmark, one table at the end
    python bench/bench_matmul.py [--quick]      # interleaved rounds, medians: less noisy
                                                # on a shared machine (used for RESULTS_matmul.md)
    python bench/bench_matmul.py --separate [--rounds 5] [--calls 7] [--quick] [--shapes 256,64x128x128]
        # pixelforge, NumPy and torch each in its own process (bench/_separate.py), taking turns;
        # --shapes (S: S×S×S, or M×N×K) picks shapes in either mode
"""
import os
import sys
import time

import numpy as np
import pytest

import _separate

# --separate: the parent imports neither library, each child only its own (the NumPy one neither)
ROLE = _separate.role() if __name__ == "__main__" else None
if ROLE in (None, "pixelforge"):
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


def _contenders(shape, side=None, threads=None):
    """name -> (callable, is_alternative); side: only that library's (a --separate child, torch
    with ``threads`` threads)."""
    a, b = _operands(shape)
    out = {}
    if side in (None, "pixelforge"):
        for impl in pf.available("matmul"):
            if impl != "ref":
                c = np.empty((a.shape[0], b.shape[1]), np.float32)
                out[f"pixelforge {impl}"] = (lambda impl=impl, c=c: pf.ops.matmul(a, b, out=c, impl=impl), False)
    if side in (None, "numpy"):
        c = np.empty((a.shape[0], b.shape[1]), np.float32)
        out["numpy (OpenBLAS)"] = (lambda: np.matmul(a, b, out=c), True)
    torch = None
    if side is None:
        torch = _torch()
    elif side == "torch":
        torch = _separate.torch_or_none(threads)
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


def _selected(argv):
    """--shapes 256,64x128x128 (S: S×S×S; M×N×K): those shapes, else SHAPES."""
    spec = _separate.opt(argv, "--shapes")
    if not spec:
        return SHAPES
    dims = [tuple(int(d) for d in tok.lower().split("x")) for tok in spec.split(",") if tok]
    return [d * 3 if len(d) == 1 else d for d in dims]


def _print_table(rows):
    names = list(rows[0][1])
    print("| M×N×K | " + " | ".join(f"{n} GFLOP/s" for n in names) + " | pf / numpy | pf / torch |")
    print("|---" * (len(names) + 3) + "|")
    for shape, rates in rows:
        pfr = rates.get("pixelforge cpu", float("nan"))
        r_np = pfr / rates["numpy (OpenBLAS)"]
        r_t = pfr / rates["torch"] if "torch" in rates else float("nan")
        print("| {}×{}×{} | ".format(*shape) + " | ".join(f"{rates[n]:.1f}" for n in names)
              + f" | {r_np:.2f} | {r_t:.2f} |")


def main(argv):
    if ROLE == "parent":
        return _separate_main(argv)
    if ROLE is not None:
        return _side_main(argv, ROLE)
    quick = "--quick" in argv
    rows = interleaved(_selected(argv), rounds=3 if quick else 7)
    print(f"threads={pf.info()['cpu']['threads']} isa={pf.info()['cpu']['isa']} "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}")
    _print_table(rows)


# ----------------------------------------------------------------------------- --separate
def _side_main(argv, side):
    """A --separate child: one library's contenders on the selected shapes, one JSON line."""
    threads = _separate.opt(argv, "--threads", int)  # pixelforge's, from the parent: torch gets as many
    calls = _separate.opt(argv, "--calls", int, 3 if "--quick" in argv else 7)
    info = {}
    if side == "pixelforge":
        info = {"threads": pf.info()["cpu"]["threads"], "isa": pf.info()["cpu"]["isa"]}
    times = {}
    for shape in _selected(argv):
        for name, (fn, _) in _contenders(shape, side, threads).items():
            times["{}x{}x{}|".format(*shape) + name] = _separate.median_seconds(fn, calls, time.perf_counter,
                                                                                target_s=0.05)
    if side == "torch":
        import torch  # noqa: PLC0415
        info = {"version": torch.__version__, "threads": torch.get_num_threads()}
    _separate.report(side, times, info)


def _separate_main(argv):
    """--separate: main's table, pixelforge, NumPy and torch each timed in its own processes."""
    rounds = _separate.opt(argv, "--rounds", int, 5)
    calls = _separate.opt(argv, "--calls", int, 3 if "--quick" in argv else 7)
    sides = ("pixelforge", "numpy", "torch")
    med, info = _separate.run(__file__, argv, sides, rounds)
    rows = []
    for shape in _selected(argv):
        key = "{}x{}x{}|".format(*shape)
        rates = {}
        for side in sides:  # each side's contenders in the order it timed them
            rates.update({c[len(key):]: _flops(shape) / t / 1e9 for c, t in med[side].items() if c.startswith(key)})
        rows.append((shape, rates))
    pfi, ti = info["pixelforge"], info["torch"]
    print(f"threads={pfi['threads']} isa={pfi['isa']} OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')} "
          f"torch {ti['version']} threads={ti['threads']}; {_separate.header(sides, rounds, calls)}")
    _print_table(rows)


if __name__ == "__main__":
    main(sys.argv[1:])
