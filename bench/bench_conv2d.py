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
    python bench/bench_conv2d.py --separate [--rounds 5] [--calls 7] [--shapes AC] [--single] [--ref]
        each library in its own process (bench/_separate.py), taking turns for --rounds rounds;
        medians over rounds of each process's median of --calls calls; both libraries get
        PF_BENCH_THREADS threads (default 2; --single: 1), as in one process
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np
import pytest

import _separate

# --separate: the parent imports neither library, each child only its own
ROLE = _separate.role() if __name__ == "__main__" else None
if ROLE == "pixelforge":
    # In one process torch.set_num_threads(PF_BENCH_THREADS) sets pixelforge's OpenMP threads too
    # (the two share one libgomp); alone, pixelforge gets that count from the environment.
    os.environ["OMP_NUM_THREADS"] = "1" if "--single" in sys.argv else os.environ.get("PF_BENCH_THREADS", "2")
if ROLE in (None, "pixelforge"):
    import pixelforge as pf
    from pixelforge.benchmarks import interleaved, torch_or_none
else:
    from _separate import torch_or_none

_SHAPE_TABLE = _separate.shape_table()  # pixelforge.benchmarks.shapes (read from its file without pixelforge)
PASSES, conv2d_flops = _SHAPE_TABLE.CONV_PASSES, _SHAPE_TABLE.conv2d_flops
# name: (N, Cin, Cout, H, k, stride, pad, transpose): the table `pixelforge bench` uses too
SHAPES = _SHAPE_TABLE.SHAPES["conv2d"]


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
    else:
        w = (g.standard_normal((cout, cin, k, k)) / np.sqrt(cin * k * k)).astype(np.float32)
    # the output side in closed form (conv_transpose2d: no output padding), so a torch-only
    # process builds the same inputs without pixelforge
    P = (H - 1) * s - 2 * p + k if tr else (H + 2 * p - k) // s + 1
    gy = g.standard_normal((N, cout, P, P)).astype(np.float32)
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
    if ROLE is not None:  # a --separate process: no pytest collection, and one library at most
        return []
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


def _selected(argv):
    only = argv[argv.index("--shapes") + 1] if "--shapes" in argv else "".join(SHAPES)
    return [n for n in SHAPES if n in only]


def _numpy_matmul_line():
    a = np.random.default_rng(0).standard_normal((2048, 2048)).astype(np.float32)
    ts = []
    for _ in range(4):  # wall clock: OpenBLAS runs on its own threads
        t = time.perf_counter()
        a @ a
        ts.append(time.perf_counter() - t)
    return (f"numpy 2048³ float32 matmul (OpenBLAS, its own threads, wall clock, same process): "
            f"{2 * 2048 ** 3 / np.median(ts[1:]) / 1e9:.1f} GFLOP/s (stretch goal for A forward: 75% of it)\n")


def main(argv):
    global _clock
    if ROLE == "parent":
        return _separate_main(argv)
    if ROLE is not None:
        return _side_main(argv, ROLE)
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
    print(_numpy_matmul_line())
    print("| shape | pass | pixelforge GFLOP/s | torch GFLOP/s | ratio pf/torch |" + (" ref GFLOP/s |" if with_ref else ""))
    print("|---|---|---:|---:|---:|" + ("---:|" if with_ref else ""))
    for name in _selected(argv):
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


# ----------------------------------------------------------------------------- --separate
def _side_main(argv, side):
    """A --separate child: one library's passes on the selected shapes, one JSON line."""
    single = "--single" in argv
    calls = _separate.opt(argv, "--calls", int, 7)
    clock = time.thread_time if single else time.perf_counter
    if side == "torch":
        torch = torch_or_none(threads=1 if single else int(os.environ.get("PF_BENCH_THREADS", "2")))
        if torch is None:
            sys.exit("--separate needs torch")
        info = {"version": torch.__version__, "threads": torch.get_num_threads()}
    else:
        from pixelforge import _backend  # noqa: PLC0415
        mod = _backend.cpu_module()
        if single and mod is not None and mod.max_threads() != 1:
            sys.exit("--single needs OMP_NUM_THREADS=1 in the environment")
        info = {"isa": mod.isa() if mod else "not built", "threads": mod.max_threads() if mod else 0}
    times = {}
    for name in _selected(argv):
        pr = problem(name)
        for pas in PASSES:
            if side == "torch":
                fns = {"torch": torch_fn(torch, pr, pas)}
            else:
                fns = {"pf": pf_fn(pr, pas, "cpu")}
                if "--ref" in argv:
                    fns["ref"] = pf_fn(pr, pas, "ref")
            for who, fn in fns.items():
                times[f"{name} {pas} {who}"] = _separate.median_seconds(fn, 1 if who == "ref" else calls, clock)
    _separate.report(side, times, info)


def _separate_main(argv):
    """--separate: the table of main, each library timed in its own processes."""
    if "--single" in argv and os.environ.get("OMP_NUM_THREADS") != "1":
        sys.exit("--single needs OMP_NUM_THREADS=1 in the environment")
    with_ref = "--ref" in argv
    rounds = _separate.opt(argv, "--rounds", int, 5)
    calls = _separate.opt(argv, "--calls", int, 7)
    sides = ("pixelforge", "torch")
    med, info = _separate.run(__file__, argv, sides, rounds)
    t_pf, t_torch = med["pixelforge"], med["torch"]
    pfi, ti = info["pixelforge"], info["torch"]
    if "--single" in argv:
        print("# timed by thread CPU time, one thread each")
    print(f"# conv2d, float32, pixelforge cpu ({pfi['isa']}, {pfi['threads']} threads) vs torch {ti['version']} "
          f"({ti['threads']} threads); {_separate.header(sides, rounds, calls)}\n")
    print(_numpy_matmul_line())
    print("| shape | pass | pixelforge GFLOP/s | torch GFLOP/s | ratio pf/torch |" + (" ref GFLOP/s |" if with_ref else ""))
    print("|---|---|---:|---:|---:|" + ("---:|" if with_ref else ""))
    for name in _selected(argv):
        flops = conv2d_flops(*SHAPES[name])
        back = {"pf": 0.0, "torch": 0.0}
        for pas in PASSES:
            t = {"pf": t_pf[f"{name} {pas} pf"], "torch": t_torch[f"{name} {pas} torch"]}
            row = f"| {name} | {pas} | {flops / t['pf'] / 1e9:.1f} | {flops / t['torch'] / 1e9:.1f} | " \
                  f"{t['torch'] / t['pf']:.2f} |"
            if with_ref:
                row += f" {flops / t_pf[f'{name} {pas} ref'] / 1e9:.2f} |"
            print(row)
            if pas.startswith("backward"):
                back = {k: back[k] + t[k] for k in back}
        print(f"| {name} | backward (data + weight) | {2 * flops / back['pf'] / 1e9:.1f} | "
              f"{2 * flops / back['torch'] / 1e9:.1f} | {back['torch'] / back['pf']:.2f} |"
              + (" |" if with_ref else ""), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
