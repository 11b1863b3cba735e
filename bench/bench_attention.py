"""attention: GFLOP/s of pixelforge against torch's scaled_dot_product_attention (CPU) and the
float64 reference, float32, H=8, D=64 at L=256 (B=8), 1024 (B=2), 4096 (B=1), causal and not,
plus the peak extra memory at L=4096.

FLOPs: forward 4*B*H*Lq*Lk*D (halved when causal), backward 2.5x that: the conventional count,
so a causal run that skips the masked half shows its real speed-up.

    pytest bench/bench_attention.py                      # pytest-benchmark, one test per point
    python bench/bench_attention.py [--quick]            # the markdown table of RESULTS_attention.md
    python bench/bench_attention.py --single-thread      # 1 thread each, CPU time of the calling thread
    python bench/bench_attention.py --separate [--rounds 5] [--calls N] [--quick] [--single-thread] [--L 256,1024]
        # each library in its own process (bench/_separate.py), taking turns; timing table only
        # (--L picks the points in either mode)

Ratios are medians of interleaved runs in one process (pixelforge, torch, pixelforge, ...) so
load from other processes hits both sides alike. torch uses as many threads as pixelforge.
With --single-thread both run in the calling thread and are timed with its CPU time, which
other processes on a shared machine barely disturb.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

if __name__ == "__main__" and "--single-thread" in sys.argv:
    os.environ["OMP_NUM_THREADS"] = "1"  # before pixelforge's OpenMP runtime starts
    os.environ["OPENBLAS_NUM_THREADS"] = "1"  # the reference's matmuls too

import _separate  # noqa: E402

# --separate: the parent imports neither library, each child only its own
ROLE = _separate.role() if __name__ == "__main__" else None
if ROLE in (None, "pixelforge"):
    import pixelforge as pf  # noqa: E402

    from pixelforge.benchmarks import interleaved  # noqa: E402

_SHAPE_TABLE = _separate.shape_table()  # pixelforge.benchmarks.shapes (read from its file without pixelforge)
_ALL_SHAPES, attention_flops = _SHAPE_TABLE.SHAPES, _SHAPE_TABLE.attention_flops

# the table `pixelforge bench` uses too
H, D = _ALL_SHAPES["attention"]["H"], _ALL_SHAPES["attention"]["D"]
POINTS = [tuple(p) for p in _ALL_SHAPES["attention"]["points"]]  # (L, B)
REF_MAX_L = 1024  # the reference materializes B*H*L*L float64 scores: 1 GiB per copy at 4096


def flops(L, B, causal, direction):
    return attention_flops(L, B, H, D, causal, direction)


def make_inputs(L, B, seed=0):
    r = np.random.default_rng(seed)
    q, k, v = (r.standard_normal((B, H, L, D)).astype(np.float32) for _ in range(3))
    do = r.standard_normal((B, H, L, D)).astype(np.float32)
    return q, k, v, do


def pf_fns(q, k, v, do, causal, impl="cpu"):
    out, lse = pf.ops.attention(q, k, v, causal=causal, return_lse=True, impl=impl)
    fwd = lambda: pf.ops.attention(q, k, v, causal=causal, impl=impl)  # noqa: E731
    bwd = lambda: pf.ops.attention_backward(do, q, k, v, out, lse, causal=causal, impl=impl)  # noqa: E731
    return fwd, bwd


def torch_fns(q, k, v, do, causal, threads=None):
    """threads: torch's intra-op threads (default: as many as pixelforge's)."""
    import torch  # noqa: PLC0415
    import torch.nn.functional as F  # noqa: PLC0415
    torch.set_num_threads(threads or pf.info()["cpu"]["threads"])
    tq, tk, tv = (torch.from_numpy(a) for a in (q, k, v))

    def fwd():
        with torch.no_grad():
            return F.scaled_dot_product_attention(tq, tk, tv, is_causal=causal)
    gq, gk, gv = (t.clone().requires_grad_(True) for t in (tq, tk, tv))
    out = F.scaled_dot_product_attention(gq, gk, gv, is_causal=causal)
    tdo = torch.from_numpy(do)

    def bwd():  # the backward alone: the graph is kept, grads reset each time
        gq.grad = gk.grad = gv.grad = None
        out.backward(tdo, retain_graph=True)
    return fwd, bwd


# ----------------------------------------------------------------------------- pytest-benchmark
_cache = {}


def _inputs(L, B):
    if (L, B) not in _cache:
        _cache.clear()
        _cache[(L, B)] = make_inputs(L, B)
    return _cache[(L, B)]


@pytest.mark.parametrize("L,B", POINTS, ids=[f"L{L}" for L, _ in POINTS])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("impl", ["pixelforge", "torch", "ref"])
def test_attention(benchmark, impl, direction, causal, L, B):
    q, k, v, do = _inputs(L, B)
    if impl == "pixelforge":
        fwd, bwd = pf_fns(q, k, v, do, causal)
    elif impl == "torch":
        pytest.importorskip("torch")
        fwd, bwd = torch_fns(q, k, v, do, causal)
    else:
        if L > REF_MAX_L:
            pytest.skip("the reference materializes a 1 GiB float64 score matrix at L=4096")
        fwd, bwd = pf_fns(q, k, v, do, causal, impl="ref")
    fn = fwd if direction == "forward" else bwd
    benchmark.group = f"attention {direction} L={L} B={B} {'causal' if causal else 'full'}"
    rounds = 3 if (impl == "ref" or L >= 4096) else 7
    benchmark.pedantic(fn, rounds=rounds, warmup_rounds=1, iterations=1)
    benchmark.extra_info["GFLOP/s"] = flops(L, B, causal, direction) / benchmark.stats.stats.median / 1e9


@pytest.mark.parametrize("L,B", POINTS, ids=[f"L{L}" for L, _ in POINTS])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_ratio_vs_torch(benchmark, direction, causal, L, B):
    """pixelforge / torch time ratio from interleaved runs (the figure the targets refer to)."""
    pytest.importorskip("torch")
    q, k, v, do = _inputs(L, B)
    i = 0 if direction == "forward" else 1
    f_pf, f_t = pf_fns(q, k, v, do, causal)[i], torch_fns(q, k, v, do, causal)[i]
    t_pf, t_t = interleaved([f_pf, f_t], 3 if L >= 4096 else 7)
    benchmark.group = "attention ratio vs torch"
    benchmark.extra_info.update(pixelforge_s=t_pf, torch_s=t_t, speedup=t_t / t_pf)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    print(f"\n{direction} L={L} causal={causal}: pixelforge {t_pf * 1e3:.2f} ms, torch {t_t * 1e3:.2f} ms, "
          f"{t_t / t_pf:.2f}x")


# ----------------------------------------------------------------------------- peak memory
_MEM_CODE = """
import numpy as np, sys
sys.path.insert(0, {bench!r})
from bench_attention import make_inputs, pf_fns, torch_fns
L, B, what = {L}, {B}, {what!r}
q, k, v, do = make_inputs(L, B)
causal = False
if what.startswith("pixelforge"):
    fwd, bwd = pf_fns(q, k, v, do, causal)
else:
    fwd, bwd = torch_fns(q, k, v, do, causal)
fn = fwd if what.endswith("forward") else bwd
# warm up thread pools and lazy loads on small inputs, so the big call's growth is its own
sq, sk, sv, sdo = make_inputs(128, 1)
(pf_fns if what.startswith("pixelforge") else torch_fns)(sq, sk, sv, sdo, causal)[0 if what.endswith("forward") else 1]()

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak RSS to the current RSS
base = status("VmRSS:")
res = fn()
peak = status("VmHWM:")
print(peak - base)
"""


def peak_extra_bytes(what, L=4096, B=1):
    """Peak resident-memory growth (bytes) during one call, outputs included, in a fresh process.
    glibc is told to mmap every block over 64 KiB, so freed memory is not silently reused."""
    code = _MEM_CODE.format(bench=os.path.dirname(os.path.abspath(__file__)), L=L, B=B, what=what)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536"))
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    return int(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("what", ["pixelforge forward", "pixelforge backward", "torch forward", "torch backward"])
def test_peak_memory_L4096(benchmark, what):
    if what.startswith("torch"):
        pytest.importorskip("torch")
    extra = peak_extra_bytes(what)
    benchmark.group = "attention peak extra memory L=4096 B=1 H=8 D=64"
    benchmark.extra_info["peak_extra_MiB"] = extra / 2**20
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    print(f"\n{what}: {extra / 2**20:.1f} MiB")


# ----------------------------------------------------------------------------- table
def _points(quick=False, only_L=None):
    return [(L, B) for L, B in POINTS if not (quick and L >= 4096) and (not only_L or L in only_L)]


def main(quick=False, memory=True, only_L=None):
    try:
        import torch  # noqa: F401,PLC0415
        have_torch = True
    except ImportError:
        have_torch = False
    info = pf.info()["cpu"]
    clock = "thread CPU time" if info["threads"] == 1 else "wall time"
    print(f"CPU isa {info['isa']}, {info['threads']} thread(s); float32, H={H}, D={D}; medians of interleaved "
          f"runs ({clock}); load average {os.getloadavg()[0]:.1f}\n")
    print("| direction | L | B | mask | pixelforge GFLOP/s | torch GFLOP/s | ref GFLOP/s | pixelforge / torch |")
    print("|---|---|---|---|---|---|---|---|")
    for direction in ("forward", "backward"):
        for L, B in _points(quick, only_L):
            q, k, v, do = make_inputs(L, B)
            for causal in (False, True):
                i = 0 if direction == "forward" else 1
                fns = [pf_fns(q, k, v, do, causal)[i]]
                if have_torch:
                    fns.append(torch_fns(q, k, v, do, causal)[i])
                rounds = 3 if L >= 4096 else 9
                times = interleaved(fns, rounds)
                if L <= REF_MAX_L:
                    t_ref = interleaved([pf_fns(q, k, v, do, causal, impl="ref")[i]], 1 if L >= 1024 else 3)[0]
                else:
                    t_ref = None
                fl = flops(L, B, causal, direction)
                g = [fl / t / 1e9 for t in times]
                torch_s = f"{g[1]:.1f}" if have_torch else "-"
                ratio = f"{times[1] / times[0]:.2f}x" if have_torch else "-"
                ref_s = f"{fl / t_ref / 1e9:.2f}" if t_ref else "n/a (1 GiB scores)"
                mask = "causal" if causal else "full"
                print(f"| {direction} | {L} | {B} | {mask} | {g[0]:.1f} | {torch_s} | {ref_s} | {ratio} |", flush=True)
    if memory and not quick:
        print("\nPeak extra resident memory during one call at L=4096, B=1 (outputs included; "
              "q, k, v are 8 MiB each):\n")
        print("| call | peak extra MiB |")
        print("|---|---|")
        whats = ["pixelforge forward", "pixelforge backward"] + (["torch forward", "torch backward"] if have_torch
                                                                 else [])
        for what in whats:
            print(f"| {what} | {peak_extra_bytes(what) / 2**20:.1f} |", flush=True)


# ----------------------------------------------------------------------------- --separate
def _side_main(argv, side):
    """A --separate child: one library's calls (pixelforge: and the reference's), one JSON line."""
    only_L = _separate.opt(argv, "--L", lambda s: [int(x) for x in s.split(",")])
    threads = _separate.opt(argv, "--threads", int)  # pixelforge's, from the parent
    calls = _separate.opt(argv, "--calls", int)
    clock = time.thread_time if threads == 1 else time.perf_counter  # the in-process default clock
    if side == "torch":
        import torch  # noqa: PLC0415
        torch.set_num_threads(threads)
        info = {"version": torch.__version__, "threads": torch.get_num_threads()}
    else:
        info = {"isa": pf.info()["cpu"]["isa"], "threads": pf.info()["cpu"]["threads"]}
    times = {}
    for direction in ("forward", "backward"):
        for L, B in _points("--quick" in argv, only_L):
            q, k, v, do = make_inputs(L, B)
            i = 0 if direction == "forward" else 1
            n = calls or (3 if L >= 4096 else 9)
            for causal in (False, True):
                key = f"{direction} {L} {B} {'causal' if causal else 'full'}"
                if side == "torch":
                    times[key + " torch"] = _separate.median_seconds(torch_fns(q, k, v, do, causal, threads)[i], n,
                                                                     clock)
                    continue
                times[key + " pixelforge"] = _separate.median_seconds(pf_fns(q, k, v, do, causal)[i], n, clock)
                if L <= REF_MAX_L:
                    times[key + " ref"] = _separate.median_seconds(pf_fns(q, k, v, do, causal, impl="ref")[i],
                                                                   1 if L >= 1024 else 3, clock)
    _separate.report(side, times, info)


def _separate_main(argv):
    """--separate: main's timing table, each library timed in its own processes."""
    only_L = _separate.opt(argv, "--L", lambda s: [int(x) for x in s.split(",")])
    rounds = _separate.opt(argv, "--rounds", int, 5)
    calls = _separate.opt(argv, "--calls", int)
    sides = ("pixelforge", "torch")
    med, info = _separate.run(__file__, argv, sides, rounds)
    pfi, ti = info["pixelforge"], info["torch"]
    clock = "thread CPU time" if pfi["threads"] == 1 else "wall time"
    print(f"CPU isa {pfi['isa']}, {pfi['threads']} thread(s) (torch {ti['version']}: {ti['threads']}); float32, "
          f"H={H}, D={D}; {_separate.header(sides, rounds, calls or '9 calls (L=4096: 3)')} ({clock}); "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print("| direction | L | B | mask | pixelforge GFLOP/s | torch GFLOP/s | ref GFLOP/s | pixelforge / torch |")
    print("|---|---|---|---|---|---|---|---|")
    for direction in ("forward", "backward"):
        for L, B in _points("--quick" in argv, only_L):
            for causal in (False, True):
                mask = "causal" if causal else "full"
                key = f"{direction} {L} {B} {mask}"
                t_pf, t_t = med["pixelforge"][key + " pixelforge"], med["torch"][key + " torch"]
                t_ref = med["pixelforge"].get(key + " ref")
                fl = flops(L, B, causal, direction)
                ref_s = f"{fl / t_ref / 1e9:.2f}" if t_ref else "n/a (1 GiB scores)"
                print(f"| {direction} | {L} | {B} | {mask} | {fl / t_pf / 1e9:.1f} | {fl / t_t / 1e9:.1f} | {ref_s} | "
                      f"{t_t / t_pf:.2f}x |", flush=True)


if __name__ == "__main__":
    if ROLE == "parent":
        _separate_main(sys.argv[1:])
    elif ROLE is not None:
        _side_main(sys.argv[1:], ROLE)
    else:
        main(quick="--quick" in sys.argv, memory="--single-thread" not in sys.argv,
             only_L=_separate.opt(sys.argv, "--L", lambda s: [int(x) for x in s.split(",")]))
