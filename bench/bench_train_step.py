"""One training step (forward, backward, Adam) of a small conv net in pixelforge and torch CPU.

Net: conv3x3(Cin->16, pad 1) -> GroupNorm(4, 16) -> SiLU -> conv3x3(16->32, stride 2, pad 1)
-> GroupNorm(8, 32) -> SiLU -> Flatten -> Linear(32*H/2*W/2 -> 10), cross-entropy, Adam.
Cases: batch 128 of 1x8x8 and batch 32 of 3x32x32. An MLP step (digits-sized) is measured too:
it runs without the conv kernels and shows the autograd overhead alone.

pytest: ``pytest bench/bench_train_step.py`` (rates are GFLOP/s of the step's convolutions and
matmuls, 3x the forward count; the ratio column is against torch in the same run).
Interleaved medians (what bench/RESULTS_train_step.md records):
``PYTHONPATH=python python bench/bench_train_step.py`` (2 threads, wall time), and
``... bench_train_step.py --single``: one thread for every library (OpenMP, OpenBLAS, torch) and
the main thread's CPU time per step, which a busy shared machine disturbs far less than wall time.
``--cases mlp,b32`` keeps the cases whose name contains one of the words. Each library in its own
process (bench/_separate.py), taking turns, BENCH_SECONDS per process and case:
``... bench_train_step.py --separate [--rounds 5] [--single] [--cases mlp]``.
"""
import os
import sys
import time

if __name__ == "__main__" and "--single" in sys.argv:
    # before NumPy/torch load their thread pools
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = "1"

import numpy as np
import pytest

import _separate

# --separate: the parent imports neither library, each child only its own
ROLE = _separate.role() if __name__ == "__main__" else None
if ROLE in (None, "pixelforge"):
    import pixelforge as pf
    from pixelforge.benchmarks import interleaved as harness_interleaved

CASES = {"conv b128 1x8x8": (128, 1, 8), "conv b32 3x32x32": (32, 3, 32), "mlp b128 64": (128, 1, 8)}


def _has_conv():
    try:
        pf.ops.conv2d
        return True
    except (AttributeError, ImportError):
        return False


def step_flops(case):
    n, c, s = CASES[case]
    if case.startswith("mlp"):
        fwd = 2 * n * (64 * 256 + 256 * 256 + 256 * 10)
    else:
        h = s // 2
        fwd = 2 * n * (16 * c * 9 * s * s + 32 * 16 * 9 * h * h + 32 * h * h * 10)
    return 3 * fwd


def pf_model(case):
    from pixelforge import nn
    n, c, s = CASES[case]
    if case.startswith("mlp"):
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 256), nn.SiLU(), nn.LayerNorm(256), nn.Linear(256, 256),
                             nn.SiLU(), nn.Linear(256, 10))
    return nn.Sequential(nn.Conv2d(c, 16, 3, padding=1), nn.GroupNorm(4, 16), nn.SiLU(),
                         nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.GroupNorm(8, 32), nn.SiLU(), nn.Flatten(),
                         nn.Linear(32 * (s // 2) ** 2, 10))


def torch_model(case):
    import torch.nn as tnn
    n, c, s = CASES[case]
    if case.startswith("mlp"):
        return tnn.Sequential(tnn.Flatten(), tnn.Linear(64, 256), tnn.SiLU(), tnn.LayerNorm(256), tnn.Linear(256, 256),
                              tnn.SiLU(), tnn.Linear(256, 10))
    return tnn.Sequential(tnn.Conv2d(c, 16, 3, padding=1), tnn.GroupNorm(4, 16), tnn.SiLU(),
                          tnn.Conv2d(16, 32, 3, stride=2, padding=1), tnn.GroupNorm(8, 32), tnn.SiLU(), tnn.Flatten(),
                          tnn.Linear(32 * (s // 2) ** 2, 10))


def data(case):
    n, c, s = CASES[case]
    g = np.random.default_rng(0)
    x = g.random((n, 1, 8, 8) if case.startswith("mlp") else (n, c, s, s)).astype(np.float32)
    return x, g.integers(0, 10, n)


def make_pf_step(case):
    import pixelforge.functional as F
    model = pf_model(case)
    opt = pf.optim.Adam(model.parameters(), lr=1e-3)
    x, y = data(case)
    xt = pf.Tensor(x)

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(xt), y)
        loss.backward()
        opt.step()
        return loss
    return step


def make_torch_step(case):
    import torch
    model = torch_model(case)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = data(case)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xt), yt)
        loss.backward()
        opt.step()
        return loss
    return step


def _skip_unless_runnable(case):
    if case.startswith("conv") and not _has_conv():
        pytest.skip("pf.ops.conv2d not merged yet")


@pytest.mark.parametrize("case", list(CASES))
def test_train_step_pixelforge(record, case):
    _skip_unless_runnable(case)
    step = make_pf_step(case)
    step()  # compile / warm up
    record(step, group=f"train step {case}", name="pixelforge", amount=step_flops(case), unit="GFLOP/s")


@pytest.mark.parametrize("case", list(CASES))
def test_train_step_torch(record, case):
    torch = pytest.importorskip("torch")
    _skip_unless_runnable(case)
    torch.set_num_threads(pf.info()["cpu"]["threads"])
    step = make_torch_step(case)
    step()
    record(step, group=f"train step {case}", name="torch", amount=step_flops(case), unit="GFLOP/s", alt=True)


def interleaved(case, seconds=6.0, inner=5, clock=time.perf_counter, threads=None):
    """Median step times (pixelforge, torch) in ms, measured alternately in one process for about
    ``seconds``, ``inner`` steps per turn."""
    import torch
    torch.set_num_threads(threads or pf.info()["cpu"]["threads"])
    fns = {"pixelforge": make_pf_step(case), "torch": make_torch_step(case)}
    for f in fns.values():
        f()
    t0 = time.perf_counter()
    for f in fns.values():
        f()
    rounds = max(3, int(seconds / max(inner * (time.perf_counter() - t0), 1e-6)))
    turns = {k: (lambda f=f: [f() for _ in range(inner)]) for k, f in fns.items()}
    return {k: v / inner * 1e3 for k, v in harness_interleaved(turns, rounds, clock=clock).items()}


def _selected(argv):
    """--cases mlp,b32: the cases whose name contains one of the words (default: all)."""
    words = [w for w in (_separate.opt(argv, "--cases") or "").split(",") if w]
    return [c for c in CASES if not words or any(w in c for w in words)]


# ----------------------------------------------------------------------------- --separate
def _side_main(argv, side):
    """A --separate child: one library's step per selected case, timed like interleaved() (turns
    of ``inner`` steps for about BENCH_SECONDS, the median turn), one JSON line."""
    secs, inner = float(os.environ.get("BENCH_SECONDS", "6")), 5
    single = "--single" in argv
    clock = time.thread_time if single else time.perf_counter
    calls = _separate.opt(argv, "--calls", int)
    if side == "torch":
        torch = _separate.torch_or_none(1 if single else _separate.opt(argv, "--threads", int))
        info = {"version": torch.__version__, "threads": torch.get_num_threads()}
        cases, make = _selected(argv), make_torch_step
    else:
        info = {"threads": pf.info()["cpu"]["threads"], "isa": pf.info()["cpu"]["isa"]}
        cases, make = [c for c in _selected(argv) if not c.startswith("conv") or _has_conv()], make_pf_step
    times = {}
    for case in cases:
        f = make(case)
        f()
        t0 = time.perf_counter()
        f()
        rounds = calls or max(3, int(secs / max(inner * (time.perf_counter() - t0), 1e-6)))
        times[case] = _separate.median_seconds(lambda f=f: [f() for _ in range(inner)], rounds, clock) / inner
    _separate.report(side, times, info)


def _separate_main(argv):
    """--separate: the table below, each library timed in its own processes."""
    rounds = _separate.opt(argv, "--rounds", int, 5)
    calls = _separate.opt(argv, "--calls", int)
    sides = ("pixelforge", "torch")
    med, info = _separate.run(__file__, argv, sides, rounds)
    pfi, ti = info["pixelforge"], info["torch"]
    print(f"threads={pfi['threads']} isa={pfi['isa']} torch {ti['version']} threads={ti['threads']} "
          f"{'1 thread, thread CPU time' if '--single' in argv else 'wall time'}; load {os.getloadavg()}",
          file=sys.stderr)
    turns = f"{calls} turns of 5 steps" if calls else \
        f"the turns of 5 steps in about BENCH_SECONDS={os.environ.get('BENCH_SECONDS', '6')} s"
    print(f"# {_separate.header(sides, rounds, turns)}")
    print("| case | pixelforge ms/step | torch ms/step | speed-up (torch / pixelforge) |")
    print("|---|---|---|---|")
    for case in _selected(argv):
        if case in med["pixelforge"] and case in med["torch"]:
            t = {k: med[k][case] * 1e3 for k in sides}
            print(f"| {case} | {t['pixelforge']:.3f} | {t['torch']:.3f} | {t['torch'] / t['pixelforge']:.2f}x |")


if __name__ == "__main__" and ROLE is not None:
    sys.exit(_separate_main(sys.argv[1:]) if ROLE == "parent" else _side_main(sys.argv[1:], ROLE))

if __name__ == "__main__":
    secs = float(os.environ.get("BENCH_SECONDS", "6"))
    single = "--single" in sys.argv
    cases = [c for c in _selected(sys.argv[1:]) if not c.startswith("conv") or _has_conv()]
    print(f"threads={pf.info()['cpu']['threads']} isa={pf.info()['cpu']['isa']} "
          f"{'1 thread, thread CPU time' if single else 'wall time'}; load {os.getloadavg()}", file=sys.stderr)
    print("| case | pixelforge ms/step | torch ms/step | speed-up (torch / pixelforge) |")
    print("|---|---|---|---|")
    for case in cases:
        t = interleaved(case, secs, clock=time.thread_time if single else time.perf_counter,
                        threads=1 if single else None)
        print(f"| {case} | {t['pixelforge']:.3f} | {t['torch']:.3f} | {t['torch'] / t['pixelforge']:.2f}x |",
              flush=True)
