"""Sampling ops at 16M float32 elements: GB/s (bytes read + written) of pf.random.randn,
pf.ops.reparameterize, pf.ops.add_noise and a DDIM step, against the unfused NumPy expression,
torch (when installed) and the machine's copy rate (np.copyto of 512 MiB).

    pytest bench/bench_sampling.py --benchmark-only        # pytest-benchmark, one row per case
    python bench/bench_sampling.py [--reps 7]              # the interleaved ratio table (RESULTS)
    python bench/bench_sampling.py --separate [--rounds 5] [--reps 7] [--ops add_noise,ddim_step]
        # pixelforge, NumPy and torch each in its own process (bench/_separate.py), taking turns,
        # --reps calls per process; --ops picks ops in either mode

The script times every case of one op round-robin in the same process and reports medians, so
a busy machine slows all of them alike and the ratios stay meaningful.
"""
from __future__ import annotations

import argparse
import os
import statistics
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

N = 1 << 24   # 16M elements
SHAPE = (16, 4, 512, 512)
BYTES = {"randn": 4 * N, "reparameterize": 16 * N, "add_noise": 12 * N, "ddim_step": 12 * N}  # read + written


def _arrays():
    """The inputs every contender reads (NumPy only: each --separate process draws the same)."""
    rng = np.random.default_rng(0)
    d = {k: rng.standard_normal(SHAPE, dtype=np.float32) for k in ("x", "n", "m", "mu")}
    d["lv"] = (0.5 * rng.standard_normal(SHAPE)).astype(np.float32)
    d["ts"] = rng.integers(0, 1000, SHAPE[0])
    d["rng"] = np.random.default_rng(1)
    return d


def _setup():
    d = _arrays()
    sched = pf.schedules.NoiseSchedule()
    d["ac"] = sched.alphas_cumprod
    ddim = pf.samplers.DDIMSampler(sched)
    ddim.set_timesteps(50)
    d["ddim"] = ddim
    d["t"] = int(ddim.timesteps[10])
    return d


def _cases(d, side=None):
    """op -> (bytes moved, {name: callable}); side: only that library's callables (a --separate
    child: "numpy" and "torch" need no d["ddim"])."""
    x, n, m, mu, lv, ac, ts, t, rng = (d[k] for k in ("x", "n", "m", "mu", "lv", "ac", "ts", "t", "rng"))
    ours, alt_np, alt_torch = side in (None, "pixelforge"), side in (None, "numpy"), side in (None, "torch")
    a_t, a_p = float(ac[t]), float(ac[t - 20])
    ca = np.sqrt(ac[ts]).astype(np.float32)[:, None, None, None]
    cb = np.sqrt(1 - ac[ts]).astype(np.float32)[:, None, None, None]
    sa, sb, sap, sbp = (np.float32(v) for v in (a_t ** 0.5, (1 - a_t) ** 0.5, a_p ** 0.5, (1 - a_p) ** 0.5))

    def np_ddim():
        x0 = np.clip((x - sb * m) / sa, -1, 1)
        return sap * x0 + sbp * m

    cases = {op: (nbytes, {}) for op, nbytes in BYTES.items()}
    if ours:
        ddim = d["ddim"]
        cases["randn"][1]["pixelforge"] = lambda: pf.random.randn(SHAPE, seed=7)
        cases["reparameterize"][1]["pixelforge"] = lambda: pf.ops.reparameterize(mu, lv, seed=7)
        cases["add_noise"][1]["pixelforge"] = lambda: pf.ops.add_noise(x, n, ts, ac)
        cases["ddim_step"][1]["pixelforge"] = lambda: ddim.step(m, t, x)
    if alt_np:
        cases["randn"][1]["numpy"] = lambda: rng.standard_normal(SHAPE, dtype=np.float32)
        cases["reparameterize"][1]["numpy"] = lambda: (lambda e: (mu + np.exp(0.5 * lv) * e, e))(
            rng.standard_normal(SHAPE, dtype=np.float32))
        cases["add_noise"][1]["numpy"] = lambda: ca * x + cb * n
        cases["ddim_step"][1]["numpy"] = np_ddim
    if ours:
        _ours_out(cases, d)
    if not alt_torch:
        return cases
    try:
        import torch
    except ImportError:
        return cases
    tx, tn, tm, tmu, tlv = (torch.from_numpy(v) for v in (x, n, m, mu, lv))
    tca, tcb = torch.from_numpy(ca), torch.from_numpy(cb)
    cases["randn"][1]["torch"] = lambda: torch.randn(SHAPE)
    cases["reparameterize"][1]["torch"] = lambda: (lambda e: (tmu + torch.exp(0.5 * tlv) * e, e))(torch.randn(SHAPE))
    cases["add_noise"][1]["torch"] = lambda: tca * tx + tcb * tn
    cases["ddim_step"][1]["torch"] = lambda: sap * torch.clamp((tx - sb * tm) / sa, -1, 1) + sbp * tm
    return cases


def _ours_out(cases, d):
    """pixelforge's kernels writing into preallocated outputs, and the libm variant."""
    x, n, m, mu, lv, ac, ts, t, ddim = (d[k] for k in ("x", "n", "m", "mu", "lv", "ac", "ts", "t", "ddim"))
    # The same kernels writing into preallocated outputs: the public ops return fresh arrays, and
    # the first touch of a fresh 64 MiB output costs about as much as the kernel itself here.
    from pixelforge.ops._numba import philox as P
    from pixelforge.ops._numba import sampling as S
    from pixelforge.schedules import round_coef
    from pixelforge.samplers import kernel_coefs
    o1, o2 = np.empty(N, np.float32), np.empty(N, np.float32)
    ca64, cb64 = round_coef(np.sqrt(ac[ts]), np.float32), round_coef(np.sqrt(1 - ac[ts]), np.float32)
    kc = kernel_coefs(ddim._spec(t), np.float32)
    flat = {k: v.reshape(-1) for k, v in (("x", x), ("n", n), ("m", m), ("mu", mu), ("lv", lv))}
    cases["randn"][1]["pixelforge (out=)"] = lambda: P.fill_cpu(o1, 7, 0, 0, 2)
    cases["reparameterize"][1]["pixelforge (out=)"] = lambda: S._reparam_cpu(
        flat["mu"], flat["lv"], o1, o2, np.uint64(0), np.uint64(7), np.uint64(0), True)
    cases["add_noise"][1]["pixelforge (out=)"] = lambda: S._lin2_cpu(flat["x"], flat["n"], o1, ca64, cb64,
                                                                     N // SHAPE[0])
    cases["ddim_step"][1]["pixelforge (out=)"] = lambda: S._step_cpu(
        flat["x"], flat["m"], o2[:1], o1, 0, np.uint64(0), np.uint64(0), np.uint64(0), kc["cs"], kc["cm"],
        -kc["r"], kc["r"], True, kc["px0"], kc["ps"], kc["pm"], kc["pn"])
    # What bit-reproducibility costs: the same Philox words through a plain float32 libm
    # Box-Muller and exp in Numba with fastmath (not reproducible across devices), preallocated.
    cases["reparameterize"][1]["numba libm (out=, not reproducible)"] = lambda: _reparam_libm(
        flat["mu"], flat["lv"], o1, o2, np.uint64(7), np.uint64(0))


def _reparam_libm(mu, lv, z, eps, k0, k1):
    import math  # noqa: PLC0415
    import numba  # noqa: PLC0415
    from pixelforge.ops._numba import philox as P  # noqa: PLC0415
    if "f" not in _LIBM:
        words = P._words_span

        @numba.njit(fastmath=True, error_model="numpy")
        def bm(o, w0, w1, w2, w3):
            for j in range(w0.shape[0]):
                r0 = math.sqrt(np.float32(-2.0) * math.log(np.float32(1.0) - np.float32(w0[j] >> np.uint32(8)) *
                                                            np.float32(2.0 ** -24)))
                r2 = math.sqrt(np.float32(-2.0) * math.log(np.float32(1.0) - np.float32(w2[j] >> np.uint32(8)) *
                                                            np.float32(2.0 ** -24)))
                t1, t3 = np.float32(w1[j]) * np.float32(2 * np.pi / 2 ** 32), np.float32(w3[j]) * np.float32(2 * np.pi / 2 ** 32)
                o[4 * j], o[4 * j + 1] = r0 * math.cos(t1), r0 * math.sin(t1)
                o[4 * j + 2], o[4 * j + 3] = r2 * math.cos(t3), r2 * math.sin(t3)

        @numba.njit(parallel=True, fastmath=True, error_model="numpy")
        def run(mu, lv, z, eps, k0, k1):
            for c in numba.prange(mu.shape[0] // 4096):  # (N is a multiple of 4096)
                w0, w1, w2, w3 = (np.empty(1024, np.uint32), np.empty(1024, np.uint32), np.empty(1024, np.uint32),
                                  np.empty(1024, np.uint32))
                lo = c * 4096
                words(w0, w1, w2, w3, np.uint64(lo // 4), k0, k1)
                bm(eps[lo:lo + 4096], w0, w1, w2, w3)
                for i in range(lo, lo + 4096):
                    z[i] = mu[i] + math.exp(np.float32(0.5) * lv[i]) * eps[i]

        _LIBM["f"] = run
    _LIBM["f"](mu, lv, z, eps, k0, k1)


_LIBM = {}


def copy_rate(reps=5):
    """GB/s of np.copyto on 512 MiB (bytes read + written), median of reps."""
    src = np.ones(1 << 27, np.float32)
    dst = np.empty_like(src)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - t0)
    return 2 * src.nbytes / statistics.median(times) / 1e9


def _ops(spec):
    """--ops add_noise,ddim_step: those ops (None: all)."""
    return [o for o in spec.split(",") if o] if spec else None


def measure(reps=7, ops=None):
    d = _setup()
    cases = _cases(d)
    rows = []
    copy = copy_rate()
    for op, (nbytes, fns) in cases.items():
        if ops and op not in ops:
            continue
        med = harness_interleaved(fns, reps, clock=time.perf_counter)  # one warm-up each compiles Numba
        for k in fns:
            rows.append((op, k, med[k] * 1e3, nbytes / med[k] / 1e9, med[k] / med["pixelforge"]))
    return copy, rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=7, help="interleaved rounds (--separate: calls per process)")
    ap.add_argument("--ops", default=None, help="comma-separated ops (randn, reparameterize, add_noise, ddim_step)")
    ap.add_argument("--separate", action="store_true",
                    help="pixelforge, NumPy and torch each in its own processes (bench/_separate.py)")
    ap.add_argument("--rounds", type=int, default=5, help="--separate: rounds of processes")
    _separate.add_arguments(ap)
    args = ap.parse_args()
    if ROLE == "parent":
        return _separate_main(args)
    if ROLE is not None:
        return _side_main(args)
    import numba
    copy, rows = measure(args.reps, _ops(args.ops))
    print(f"16M float32 elements, {numba.get_num_threads()} Numba threads; np.copyto 512 MiB: {copy:.1f} GB/s")
    print("| op | impl | ms (median) | GB/s | % of copy | time / pixelforge |")
    print("|---|---|---:|---:|---:|---:|")
    for op, impl, ms, gbs, ratio in rows:
        print(f"| {op} | {impl} | {ms:.1f} | {gbs:.1f} | {100 * gbs / copy:.0f}% | {ratio:.2f}x |")


# ------------------------------------------------------------------- --separate
def _side_main(args):
    """A --separate child: one library's contenders of the selected ops, one JSON line. The
    pixelforge child (first in every round) leaves the schedule's alphas_cumprod and the DDIM step
    in the scratch folder; the NumPy and torch children read them from there."""
    side, shared = args.side, os.path.join(args.scratch, "sampling_schedule.npz")
    info = {}
    if side == "pixelforge":
        import numba  # noqa: PLC0415
        d = _setup()
        if not os.path.exists(shared):
            np.savez(shared, ac=d["ac"], t=d["t"])
        info = {"numba_threads": numba.get_num_threads()}
    else:
        d = _arrays()
        with np.load(shared) as z:
            d["ac"], d["t"] = z["ac"], int(z["t"])
    times = {}
    ops = _ops(args.ops)
    for op, (_, fns) in _cases(d, side).items():
        if ops and op not in ops:
            continue
        for name, fn in fns.items():
            times[f"{op}|{name}"] = _separate.median_seconds(fn, args.reps)  # the warm-up compiles Numba
    if side == "torch":
        import torch  # noqa: PLC0415
        info = {"version": torch.__version__, "threads": torch.get_num_threads()}
    _separate.report(side, times, info)


def _separate_main(args):
    """--separate: main's table, pixelforge, NumPy and torch each timed in its own processes."""
    sides = ("pixelforge", "numpy", "torch")
    med, info = _separate.run(__file__, sys.argv[1:], sides, args.rounds)
    copy = copy_rate()  # in this process, which holds neither library
    print(f"16M float32 elements, {info['pixelforge']['numba_threads']} Numba threads, torch "
          f"{info['torch']['version']} ({info['torch']['threads']} threads); np.copyto 512 MiB: {copy:.1f} GB/s; "
          f"{_separate.header(sides, args.rounds, args.reps)}")
    print("| op | impl | ms (median) | GB/s | % of copy | time / pixelforge |")
    print("|---|---|---:|---:|---:|---:|")
    ops = _ops(args.ops)
    for op, nbytes in BYTES.items():
        if ops and op not in ops:
            continue
        times = {}
        for side in sides:
            times.update({c.split("|", 1)[1]: t for c, t in med[side].items() if c.split("|", 1)[0] == op})
        for impl, t in times.items():
            gbs = nbytes / t / 1e9
            print(f"| {op} | {impl} | {t * 1e3:.1f} | {gbs:.1f} | {100 * gbs / copy:.0f}% | "
                  f"{t / times['pixelforge']:.2f}x |")


# ------------------------------------------------------------------- pytest-benchmark
@pytest.fixture(scope="module")
def cases():
    return _cases(_setup())


@pytest.mark.parametrize("op", ["randn", "reparameterize", "add_noise", "ddim_step"])
@pytest.mark.parametrize("impl", ["pixelforge", "pixelforge (out=)", "numpy", "torch"])
def test_bench(benchmark, cases, op, impl):
    nbytes, fns = cases[op]
    if impl not in fns:
        pytest.skip(f"{impl} is not installed")
    fns[impl]()   # warm-up / compile
    benchmark.extra_info["bytes"] = nbytes
    benchmark.pedantic(fns[impl], rounds=5, iterations=1)
    benchmark.extra_info["GB/s"] = nbytes / benchmark.stats.stats.median / 1e9


if __name__ == "__main__":
    main()
