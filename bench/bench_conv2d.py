"""conv2d benchmarks: GFLOP/s (2·N·K·C/groups·R·S·P·Q) of forward, backward-data and
backward-weight for pixelforge's cpu impl, torch CPU (where installed, 2 threads) and the
NumPy reference, on the issue's shapes:

    A) N=64, 64→64, 32×32, k3 p1      B) N=128, 1→32, 28×28, k3 p1
    C) N=32, 128→128, 16×16, k3 p1    D) N=128, 64→128, 8×8, k4 s2 p1
    E) conv_transpose2d N=128, 128→64, 4×4→8×8, k4 s2 p1

    pytest bench/bench_conv2d.py --benchmark-only          (pytest-benchmark; GFLOP/s in extra_info)
    python bench/bench_conv2d.py [--ref] [--rounds 7] [--shapes AC]
        one process, interleaved, medians, ratios; after each shape's passes a
        "backward (data + weight)" row: the two backward medians summed, the issue's backward target
    OMP_WAIT_POLICY=passive python bench/bench_conv2d.py        (fairer on a shared machine: idle
        OpenMP workers of one library then do not spin on the cores the other one needs)
    OMP_NUM_THREADS=1 python bench/bench_conv2d.py --single [--rounds 5]
        one thread each, timed by the thread's CPU time (time.thread_time): robust when other
        processes share the cores, which wall-clock medians are not
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np
import pytest

import pixelforge as pf

from pixelforge.benchmarks import CONV_PASSES as PASSES
from pixelforge.benchmarks import conv2d_flops, interleaved, torch_or_none
from pixelforge.benchmarks import SHAPES as _ALL_SHAPES

# name: (N, Cin, Cout, H, k, stride, pad, transpose): the table `pixelforge bench` uses too
SHAPES = _ALL_SHAPES["conv2d"]


def _torch():
    return torch_or_none(threads=int(os.environ.get("PF_BENCH_THREADS", "2")))


def problem(name, seed=0):
    """Inputs and the GFLOP count of one shape (the conv2d view for E: its forward is
    conv2d's backward-data of the 8×8 → 4×4 conv)."""
    N, cin, cout, H, k, s, p, tr = SHAPES[name]
    g = np.random.default_rng(seed)
    x = g.standard_normal((N, cin, H, H)).astype(np.float32)
    if tr:
        w = (g.standard_normal((cin, cout, k, k)) / np.sqrt(cin * k * k)).astype(np.float32)
        y = pf.ops.conv_transpose2d(x, w, None, s, p)
    else:
        w = (g.standard_normal((cout, cin, k, k)) / np.sqrt(cin * k * k)).astype(np.float32)
        y = pf.ops.conv2d(x, w, None, s, p)
    gy = g.standard_normal(y.shape).astype(np.float32)
    return dict(x=x, w=w, gy=gy, s=s, p=p, tr=tr, flops=conv2d_flops(*SHAPES[name]))


def pf_fn(pr, pas, impl):
    x, w, gy, s, p = pr["x"], pr["w"], pr["gy"], pr["s"], pr["p"]
    if pr["tr"]:
        if pas == "forward":
            return lambda: pf.ops.conv_transpose2d(x, w, None, s, p, impl=impl)
        needs = (pas == "backward_data", pas == "backward_weight", False)
        return lambda: pf.ops.conv_transpose2d_backward(gy, x, w, s, p, needs=needs, impl=impl)
    if pas == "forward":
        return lambda: pf.ops.conv2d(x, w, None, s, p, impl=impl)
    needs = (pas == "backward_data", pas == "backward_weight", False)
    return lambda: pf.ops.conv2d_backward(gy, x, w, s, p, needs=needs, impl=impl)


def torch_fn(torch, pr, pas):
    x, w, gy = (torch.from_numpy(pr[k]) for k in ("x", "w", "gy"))
    s, p, tr = pr["s"], pr["p"], pr["tr"]
    F = torch.nn.functional
    if pas == "forward":
        f = F.conv_transpose2d if tr else F.conv2d
        return lambda: f(x, w, None, s, p)
    mask = [pas == "backward_data", pas == "backward_weight", False]
    return lambda: torch.ops.aten.convolution_backward(gy, x, w, None, [s, s], [p, p], [1, 1], tr, [0, 0], 1, mask)


# ----------------------------------------------------------------------------- pytest-benchmark
def _impls():
    out = [("pf-" + i) for i in pf.available("conv2d") if i != "ref"]
    if _torch() is not None:
        out.append("torch")
    return out


@pytest.mark.parametrize("pas", PASSES)
@pytest.mark.parametrize("name", list(SHAPES))
@pytest.mark.parametrize("who", _impls())
def test_conv2d(benchmark, who, name, pas):
    pr = problem(name)
    fn = torch_fn(_torch(), pr, pas) if who == "torch" else pf_fn(pr, pas, who[3:])
    benchmark.group = f"conv2d-{name}-{pas}"
    benchmark.pedantic(fn, rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info["gflops"] = pr["flops"] / benchmark.stats.stats.median / 1e9


# ----------------------------------------------------------------------------- table
_clock = time.perf_counter


def _median_interleaved(fns, rounds):
    return interleaved(fns, rounds, clock=_clock)


def main(argv):
    global _clock
    with_ref = "--ref" in argv
    rounds = int(argv[argv.index("--rounds") + 1]) if "--rounds" in argv else 7
    if "--single" in argv:
        os.environ["PF_BENCH_THREADS"] = "1"
    torch = _torch()  # note: torch.set_num_threads also sets the OpenMP threads pixelforge uses
    from pixelforge import _backend  # noqa: PLC0415
    mod = _backend.cpu_module()
    if "--single" in argv:
        if mod is not None and mod.max_threads() != 1:
            sys.exit("--single needs OMP_NUM_THREADS=1 in the environment")
        if torch is not None:
            torch.set_num_threads(1)
        _clock = time.thread_time
        print("# timed by thread CPU time, one thread each")
    print(f"# conv2d, float32, pixelforge cpu ({mod.isa() if mod else 'not built'}, "
          f"{mod.max_threads() if mod else 0} threads) vs torch {torch.__version__ if torch else '-'} "
          f"({torch.get_num_threads() if torch else 0} threads); median of {rounds} interleaved runs\n")
    a = np.random.default_rng(0).standard_normal((2048, 2048)).astype(np.float32)
    ts = []
    for _ in range(4):  # wall clock: OpenBLAS runs on its own threads
        t = time.perf_counter()
        a @ a
        ts.append(time.perf_counter() - t)
    print(f"numpy 2048³ float32 matmul (OpenBLAS, its own threads, wall clock, same process): "
          f"{2 * 2048 ** 3 / np.median(ts[1:]) / 1e9:.1f} GFLOP/s (stretch goal for A forward: 75% of it)\n")
    print("| shape | pass | pixelforge GFLOP/s | torch GFLOP/s | ratio pf/torch |" + (" ref GFLOP/s |" if with_ref else ""))
    print("|---|---|---:|---:|---:|" + ("---:|" if with_ref else ""))
    only = argv[argv.index("--shapes") + 1] if "--shapes" in argv else "".join(SHAPES)
    for name in [n for n in SHAPES if n in only]:
        pr = problem(name)
        back = {}
        for pas in PASSES:
            fns = {"pf": pf_fn(pr, pas, "cpu")}
            if torch is not None:
                fns["torch"] = torch_fn(torch, pr, pas)
            t = _median_interleaved(fns, rounds)
            gf = {k: pr["flops"] / v / 1e9 for k, v in t.items()}
            row = f"| {name} | {pas} | {gf['pf']:.1f} | {gf.get('torch', float('nan')):.1f} | " \
                  f"{t.get('torch', float('nan')) / t['pf']:.2f} |"
            if with_ref:
                tr = _median_interleaved({"ref": pf_fn(pr, pas, "ref")}, 1)["ref"]
                row += f" {pr['flops'] / tr / 1e9:.2f} |"
            print(row, flush=True)
            if pas.startswith("backward") and "torch" in t:
                back[pas] = t
        if len(back) == 2:
            pf_t = sum(v["pf"] for v in back.values())
            torch_t = sum(v["torch"] for v in back.values())
            print(f"| {name} | backward (data + weight) | {2 * pr['flops'] / pf_t / 1e9:.1f} | "
                  f"{2 * pr['flops'] / torch_t / 1e9:.1f} | {torch_t / pf_t:.2f} |" + (" |" if with_ref else ""),
                  flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
