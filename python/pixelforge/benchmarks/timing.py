"""Timing, written once: the interleaved :class:`Timer` (``pixelforge bench``), the
:func:`interleaved` helper the bench/ scripts use, the optional references (torch, a CuPy GPU)
and this machine's ceilings."""
from __future__ import annotations

import time

import numpy as np

from .. import _backend, info


# ----------------------------------------------------------------------------- optional deps
def torch_or_none(threads=None):
    """torch (its intra-op threads set to ``threads``, or to pixelforge's OpenMP threads with
    ``threads="pixelforge"``), or None when it is not installed."""
    try:
        import torch  # noqa: PLC0415 - optional reference package
    except ImportError:
        return None
    if threads == "pixelforge":
        threads = info()["cpu"]["threads"] or 1
    if threads is not None:
        torch.set_num_threads(int(threads))
    return torch


def cupy_gpu():
    """CuPy when a GPU is usable, else None."""
    try:
        cp = _backend.cupy()
        if cp is None or _backend.cuda_device_count() <= 0:
            return None
        return cp
    except Exception:  # noqa: BLE001
        return None


def default_clock():
    """CPU time of this thread when pixelforge runs single-threaded (OMP_NUM_THREADS=1: immune
    to other processes), else wall time."""
    return time.thread_time if info()["cpu"]["threads"] == 1 else time.perf_counter


def interleaved(fns, rounds=7, *, clock=None, target_s=None):
    """Median seconds per call of each callable (a list, or a dict name -> callable; the result
    has the same shape), the callables taking turns within each round after one warm-up each, so
    load from other processes hits every contender alike. ``target_s``: repeat each call within a
    round until a round lasts about that long (short kernels)."""
    named = dict(fns) if isinstance(fns, dict) else dict(enumerate(fns))
    clock = clock or default_clock()
    reps = {}
    for k, f in named.items():
        f()  # warm-up: JIT compilation, lazy loads, thread pools, packing buffers, pages
        if target_s:  # a second, warm call sizes the repetitions
            t0 = clock()
            f()
            reps[k] = max(1, int(target_s / max(clock() - t0, 1e-7)))
        else:
            reps[k] = 1
    times = {k: [] for k in named}
    for _ in range(rounds):
        for k, f in named.items():
            t0 = clock()
            for _ in range(reps[k]):
                f()
            times[k].append((clock() - t0) / reps[k])
    med = {k: float(np.median(v)) for k, v in times.items()}
    return med if isinstance(fns, dict) else [med[k] for k in named]


# ----------------------------------------------------------------------------- the command's timer
class Timer:
    """Median seconds of callables run interleaved. GPU callables are timed with CUDA events
    (the device time between two markers on the current stream)."""

    def __init__(self, rounds, budget_s):
        self.rounds, self.budget_s = rounds, budget_s

    @staticmethod
    def once(fn, device):
        if device == "cuda":
            cp = cupy_gpu()
            start, end = cp.cuda.Event(), cp.cuda.Event()
            start.record()
            fn()
            end.record()
            end.synchronize()
            return cp.cuda.get_elapsed_time(start, end) / 1e3
        if device == "torch-cuda":
            torch = torch_or_none()
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            return time.perf_counter() - t0
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    def run(self, cases):
        """cases: list of dicts with fn/device; returns seconds per case (None on error)."""
        live, first = [], []
        for c in cases:
            try:  # the warm-up: JIT compilation, lazy module loads, thread pools, caches
                first.append(self.once(c["fn"], c["device"]))
                live.append(c)
                c.setdefault("status", "ok")
            except Exception as e:  # noqa: BLE001
                c["status"] = f"error: {type(e).__name__}: {e}"[:200]
        if not live:
            return
        # cap the rounds so a slow contender (NumPy at L=4096, say) keeps the run short
        per_round = sum(first)
        rounds = max(1, min(self.rounds, int(self.budget_s / max(per_round, 1e-9))))
        times = [[] for _ in live]
        for _ in range(rounds):
            for c, t in zip(live, times):
                t.append(self.once(c["fn"], c["device"]))
        for c, t in zip(live, times):
            c["seconds"] = float(np.median(t))
            c["rounds"] = rounds


# ----------------------------------------------------------------------------- ceilings
def measure_ceilings(quick=False):
    """A float32 matmul rate through NumPy (GFLOP/s) and a copy rate (GB/s, read + write).
    A ceiling is the best this machine did, so each is the fastest of a few repeats (a median
    would carry the load of other processes into every percentage)."""
    n = 1024 if quick else 2048
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    c = np.empty_like(a)
    ts = []
    for _ in range(3 if quick else 5):
        t0 = time.perf_counter()
        np.matmul(a, a, out=c)
        ts.append(time.perf_counter() - t0)
    gflops = 2 * n ** 3 / min(ts[1:]) / 1e9
    nbytes = (64 if quick else 512) << 20
    src = np.ones(nbytes // 4, np.float32)
    dst = np.empty_like(src)
    ts = []
    for _ in range(3 if quick else 5):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        ts.append(time.perf_counter() - t0)
    gbs = 2 * nbytes / min(ts[1:]) / 1e9
    return {"matmul_gflops": gflops, "matmul_n": n, "copy_gbs": gbs, "copy_mib": nbytes >> 20}
