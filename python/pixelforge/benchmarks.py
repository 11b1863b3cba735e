"""``pixelforge bench``: how fast each kernel runs on this machine.

    pixelforge bench [--op conv2d|attention|sampling|matmul|train_step|bias_act|all]
                     [--impl cpu,cuda,numba,ref] [--quick] [--rounds N] [--json FILE] [--plot FILE]

For every op this runs its benchmark shapes (the one table below, which the pytest-benchmark
suites in bench/ import too) on every built pixelforge impl and on the installed alternatives
(NumPy; torch where installed), and prints one table: time (median of interleaved rounds, so
load from other processes hits every contender alike), GFLOP/s or GB/s, percent of this
machine's own ceiling, and the ratio to the best alternative (> 1: pixelforge is faster).

The ceilings are measured at start: a float32 matmul through NumPy's BLAS (compute-bound
rows are compared with it) and ``np.copyto`` of 512 MiB (memory-bound rows: a copy reads and
writes every byte, the most a streaming kernel can move). ``--quick`` shrinks shapes, the
ceiling sizes and the rounds so the whole run takes seconds.

Ops that are not in this installation (say sampling before its branch lands) print
"not available" and are skipped. GPU rows (CuPy arrays) are timed with CUDA events around the
call, so they measure device time, not launch time. ``--json`` writes every row and the
machine description; ``--plot`` draws a bar chart (needs matplotlib: ``pip install
pixelforge[plot]``).

Python use: ``from pixelforge.benchmarks import SHAPES, main``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np

# ----------------------------------------------------------------------------- the shapes
# The one table of benchmark shapes. bench/bench_conv2d.py and bench/bench_attention.py read
# theirs from here, so the command and the pytest-benchmark suites time the same problems.
SHAPES = {
    # issue 3: name -> (N, Cin, Cout, H(=W), k, stride, pad, transpose); E is conv_transpose2d
    "conv2d": {
        "A": (64, 64, 64, 32, 3, 1, 1, False),
        "B": (128, 1, 32, 28, 3, 1, 1, False),
        "C": (32, 128, 128, 16, 3, 1, 1, False),
        "D": (128, 64, 128, 8, 4, 2, 1, False),
        "E": (128, 128, 64, 4, 4, 2, 1, True),
    },
    # issue 4: float32, H=8 heads of D=64; (L, B) points
    "attention": {"H": 8, "D": 64, "points": [(256, 8), (1024, 2), (4096, 1)]},
    # issue 5: 16M float32 elements (N, C, H, W) for the sampling ops
    "sampling": {"shape": (64, 4, 256, 256)},
    # (M, K, N): a square GEMM and two linear-layer shapes (tokens x features)
    "matmul": [(2048, 2048, 2048), (8192, 512, 2048), (4096, 1024, 256)],
    # a small conv net on 8x8 digits, one optimizer step: batch, channels, image side, classes
    "train_step": {"batch": 128, "channels": (1, 32, 64), "side": 8, "classes": 10},
    # fused bias + leaky ReLU over (N, C, L)
    "bias_act": {"shape": (16, 64, 8192)},
}

QUICK_SHAPES = {
    "conv2d": {k: (min(v[0], 2),) + v[1:] for k, v in SHAPES["conv2d"].items()},
    "attention": {"H": 8, "D": 64, "points": [(256, 1)]},
    "sampling": {"shape": (4, 4, 128, 128)},
    "matmul": [(256, 256, 256), (512, 128, 256)],
    "train_step": {"batch": 16, "channels": (1, 8, 16), "side": 8, "classes": 10},
    "bias_act": {"shape": (4, 64, 1024)},
}

CONV_PASSES = ("forward", "backward_data", "backward_weight")
OPS = ("conv2d", "attention", "sampling", "matmul", "train_step", "bias_act")


def shapes(quick=False):
    return QUICK_SHAPES if quick else SHAPES


def conv2d_flops(N, cin, cout, H, k, s, p, transpose):
    """Multiply-adds x 2 of one pass (all three passes do the same work)."""
    if transpose:  # the conv2d view: an (Hout -> H) convolution; its work scales with the input side H
        return 2 * N * cin * cout * k * k * H * H
    P = (H + 2 * p - k) // s + 1
    return 2 * N * cout * cin * k * k * P * P


def attention_flops(L, B, H, D, causal, direction="forward"):
    """The conventional count: 4·B·H·L²·D forward (halved when causal), 2.5x that backward."""
    f = 4.0 * B * H * L * L * D * (0.5 if causal else 1.0)
    return f * (2.5 if direction == "backward" else 1.0)


# ----------------------------------------------------------------------------- optional deps
def _torch():
    try:
        import torch  # noqa: PLC0415
    except ImportError:
        return None
    return torch


def _cupy_gpu():
    """CuPy when a GPU is usable, else None."""
    try:
        from . import _backend  # noqa: PLC0415
        cp = _backend.cupy()
        if cp is None or _backend.cuda_device_count() <= 0:
            return None
        return cp
    except Exception:  # noqa: BLE001
        return None


def _lookup(path):
    """``pf.<a>.<b>`` or None when that part of the API is not in this installation. Op modules
    load lazily, so a missing module shows as ImportError, a missing name as AttributeError."""
    import pixelforge as pf  # noqa: PLC0415
    obj = pf
    try:
        for part in path.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return None
    return obj


def _impls(op, device, wanted):
    import pixelforge as pf  # noqa: PLC0415
    try:
        got = pf.available(op, device)
    except Exception:  # noqa: BLE001
        return []
    if wanted is None:
        # ref is the float64 truth for tests, orders of magnitude slower: only when asked for
        return [i for i in got if i != "ref"]
    return [i for i in got if i in wanted]


# ----------------------------------------------------------------------------- timing
class Timer:
    """Median seconds of callables run interleaved. GPU callables are timed with CUDA events
    (the device time between two markers on the current stream)."""

    def __init__(self, rounds, budget_s):
        self.rounds, self.budget_s = rounds, budget_s

    @staticmethod
    def once(fn, device):
        if device == "cuda":
            cp = _cupy_gpu()
            start, end = cp.cuda.Event(), cp.cuda.Event()
            start.record()
            fn()
            end.record()
            end.synchronize()
            return cp.cuda.get_elapsed_time(start, end) / 1e3
        if device == "torch-cuda":
            torch = _torch()
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


# ----------------------------------------------------------------------------- groups
# A group is one problem (op, shape, device) timed by its contenders together. Each builder
# returns (label, amount, unit, cases) lazily, so only one problem's arrays live at a time.
def _case(impl, kind, fn, device="cpu"):
    return {"impl": impl, "kind": kind, "fn": fn, "device": device}


def _numpy_conv2d(x, w, s, p):
    """float32 im2col + one BLAS GEMM: the fair NumPy way to do a convolution."""
    from numpy.lib.stride_tricks import sliding_window_view  # noqa: PLC0415
    k = w.shape[2]
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    win = sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::s, ::s]  # (N, C, P, Q, k, k)
    out = np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3]))  # (N, P, Q, K)
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def _conv2d_groups(sh, wanted, gpu):
    import pixelforge as pf  # noqa: PLC0415
    torch = _torch()
    groups = []
    for name, (N, cin, cout, H, k, s, p, tr) in sh["conv2d"].items():
        for pas in CONV_PASSES:
            for device in (("cpu", "cuda") if gpu else ("cpu",)):
                def build(name=name, N=N, cin=cin, cout=cout, H=H, k=k, s=s, p=p, tr=tr, pas=pas, device=device):
                    g = np.random.default_rng(0)
                    x = g.standard_normal((N, cin, H, H)).astype(np.float32)
                    wshape = (cin, cout, k, k) if tr else (cout, cin, k, k)
                    w = (g.standard_normal(wshape) / math.sqrt(cin * k * k)).astype(np.float32)
                    f = pf.ops.conv_transpose2d if tr else pf.ops.conv2d
                    y = f(x, w, None, s, p)
                    gy = g.standard_normal(y.shape).astype(np.float32)
                    needs = (pas == "backward_data", pas == "backward_weight", False)
                    cases = []
                    xs = _to_device((x, w, gy), device)
                    for impl in _impls("conv2d", device, wanted):
                        xd, wd, gyd = xs
                        if pas == "forward":
                            fn = (lambda xd=xd, wd=wd, impl=impl: f(xd, wd, None, s, p, impl=impl))
                        else:
                            b = pf.ops.conv_transpose2d_backward if tr else pf.ops.conv2d_backward
                            fn = (lambda b=b, xd=xd, wd=wd, gyd=gyd, impl=impl:
                                  b(gyd, xd, wd, s, p, needs=needs, impl=impl))
                        cases.append(_case(impl, "pixelforge", fn, device))
                    if device == "cpu" and pas == "forward" and not tr:
                        cases.append(_case("numpy", "alternative", lambda: _numpy_conv2d(x, w, s, p)))
                    if torch is not None and (device == "cpu" or torch.cuda.is_available()):
                        dev = "cuda" if device == "cuda" else "cpu"
                        tx, tw, tgy = (torch.from_numpy(a).to(dev) for a in (x, w, gy))
                        F = torch.nn.functional
                        if pas == "forward":
                            tf = F.conv_transpose2d if tr else F.conv2d
                            fn = lambda: tf(tx, tw, None, s, p)  # noqa: E731
                        else:
                            mask = [pas == "backward_data", pas == "backward_weight", False]
                            fn = lambda: torch.ops.aten.convolution_backward(  # noqa: E731
                                tgy, tx, tw, None, [s, s], [p, p], [1, 1], tr, [0, 0], 1, mask)
                        cases.append(_case("torch", "alternative", fn, "torch-cuda" if device == "cuda" else "cpu"))
                    kind = "conv_transpose2d" if tr else "conv2d"
                    label = f"{name}: {kind} {pas} N{N} {cin}->{cout} {H}x{H} k{k} s{s} p{p}"
                    return label, conv2d_flops(N, cin, cout, H, k, s, p, tr), "GFLOP/s", cases
                groups.append(("conv2d", device, build))
    return groups


def _to_device(arrays, device):
    if device != "cuda":
        return arrays
    cp = _cupy_gpu()
    return tuple(cp.asarray(a) for a in arrays)


def _numpy_attention(q, k, v, causal, scale):
    s = np.matmul(q, k.swapaxes(-1, -2)) * np.float32(scale)
    if causal:  # an additive -inf bias broadcasts; boolean-mask assignment would be 50x slower
        L = q.shape[2]
        s += np.triu(np.full((L, L), -np.inf, np.float32), 1)
    s -= s.max(-1, keepdims=True)
    np.exp(s, out=s)
    s /= s.sum(-1, keepdims=True)
    return np.matmul(s, v)


def _attention_groups(sh, wanted, gpu):
    import pixelforge as pf  # noqa: PLC0415
    torch = _torch()
    a = sh["attention"]
    H, D = a["H"], a["D"]
    groups = []
    for L, B in a["points"]:
        for causal in (False, True):
            for direction in ("forward", "backward"):
                for device in (("cpu", "cuda") if gpu else ("cpu",)):
                    def build(L=L, B=B, causal=causal, direction=direction, device=device):
                        g = np.random.default_rng(0)
                        q, k, v, do = (g.standard_normal((B, H, L, D)).astype(np.float32) for _ in range(4))
                        qd, kd, vd, dod = _to_device((q, k, v, do), device)
                        cases = []
                        for impl in _impls("attention", device, wanted):
                            if direction == "forward":
                                fn = (lambda impl=impl: pf.ops.attention(qd, kd, vd, causal=causal, impl=impl))
                            else:
                                out, lse = pf.ops.attention(qd, kd, vd, causal=causal, return_lse=True, impl=impl)
                                fn = (lambda impl=impl, out=out, lse=lse: pf.ops.attention_backward(
                                    dod, qd, kd, vd, out, lse, causal=causal, impl=impl))
                            cases.append(_case(impl, "pixelforge", fn, device))
                        if device == "cpu" and direction == "forward":
                            cases.append(_case("numpy", "alternative",
                                               lambda: _numpy_attention(q, k, v, causal, D ** -0.5)))
                        if torch is not None and (device == "cpu" or torch.cuda.is_available()):
                            F = torch.nn.functional
                            dev = "cuda" if device == "cuda" else "cpu"
                            tq, tk, tv, tdo = (torch.from_numpy(x).to(dev) for x in (q, k, v, do))
                            if direction == "forward":
                                def fn():
                                    with torch.no_grad():
                                        return F.scaled_dot_product_attention(tq, tk, tv, is_causal=causal)
                            else:
                                gq, gk, gv = (t.clone().requires_grad_(True) for t in (tq, tk, tv))
                                tout = F.scaled_dot_product_attention(gq, gk, gv, is_causal=causal)

                                def fn():  # the backward alone: the graph is kept
                                    gq.grad = gk.grad = gv.grad = None
                                    tout.backward(tdo, retain_graph=True)
                            cases.append(_case("torch", "alternative", fn, "torch-cuda" if device == "cuda" else "cpu"))
                        label = (f"attention {direction} B{B} H{H} L{L} D{D} {'causal' if causal else 'full'}")
                        return label, attention_flops(L, B, H, D, causal, direction), "GFLOP/s", cases
                    groups.append(("attention", device, build))
    return groups


def _sampling_groups(sh, wanted, gpu):
    import pixelforge as pf  # noqa: F401,PLC0415
    torch = _torch()
    shape = tuple(sh["sampling"]["shape"])
    n = int(np.prod(shape))
    groups = []

    def randn_build():
        randn = _lookup("random.randn")
        cases = []
        if randn is not None:
            cases.append(_case("auto", "pixelforge", lambda: randn(shape, seed=1)))
        g = np.random.default_rng(1)
        cases.append(_case("numpy", "alternative", lambda: g.standard_normal(shape, dtype=np.float32)))
        if torch is not None:
            cases.append(_case("torch", "alternative", lambda: torch.randn(shape)))
        # a draw writes every element once
        return f"randn {shape} float32 ({n / 1e6:.1f}M)", 4 * n, "GB/s", cases, randn is not None

    def reparam_build():
        rep = _lookup("ops.reparameterize")
        g = np.random.default_rng(0)
        mu = g.standard_normal(shape).astype(np.float32)
        logvar = (0.1 * g.standard_normal(shape)).astype(np.float32)
        cases = []
        if rep is not None:
            for impl in _impls("reparameterize", "cpu", wanted):
                cases.append(_case(impl, "pixelforge",
                                   lambda impl=impl: rep(mu, logvar, seed=1, impl=impl)))
        rng = np.random.default_rng(1)

        def np_fn():
            eps = rng.standard_normal(shape, dtype=np.float32)
            return mu + np.exp(np.float32(0.5) * logvar) * eps, eps
        cases.append(_case("numpy", "alternative", np_fn))
        if torch is not None:
            tmu, tlv = torch.from_numpy(mu), torch.from_numpy(logvar)

            def t_fn():
                eps = torch.randn(shape)
                return tmu + torch.exp(0.5 * tlv) * eps, eps
            cases.append(_case("torch", "alternative", t_fn))
        # reads mu, logvar; writes z, eps
        return f"reparameterize {shape} float32", 16 * n, "GB/s", cases, rep is not None

    def add_noise_build():
        add = _lookup("ops.add_noise")
        g = np.random.default_rng(0)
        x0 = g.standard_normal(shape).astype(np.float32)
        noise = g.standard_normal(shape).astype(np.float32)
        t = g.integers(0, 1000, shape[0]).astype(np.int64)
        ac = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))
        cases = []
        if add is not None:
            cases.append(_case("auto", "pixelforge", lambda: add(x0, noise, t, ac)))
        bshape = (-1,) + (1,) * (len(shape) - 1)
        sa = np.sqrt(ac[t]).astype(np.float32).reshape(bshape)
        sb = np.sqrt(1 - ac[t]).astype(np.float32).reshape(bshape)
        cases.append(_case("numpy", "alternative", lambda: sa * x0 + sb * noise))
        if torch is not None:
            tx, tn, tsa, tsb = (torch.from_numpy(a) for a in (x0, noise, sa, sb))
            cases.append(_case("torch", "alternative", lambda: tsa * tx + tsb * tn))
        return f"add_noise {shape} float32", 12 * n, "GB/s", cases, add is not None

    def ddim_build():
        samplers = _lookup("samplers")
        schedules = _lookup("schedules")
        g = np.random.default_rng(0)
        eps_pred = g.standard_normal(shape).astype(np.float32)
        sample = g.standard_normal(shape).astype(np.float32)
        ac = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))
        t, t_prev = 500, 480  # 50 steps over 1000
        cases = []
        ok = samplers is not None and schedules is not None and hasattr(samplers, "DDIMSampler")
        if ok:
            try:
                sampler = samplers.DDIMSampler(schedules.NoiseSchedule())
                sampler.set_timesteps(50)
                t = int(sampler.timesteps[len(sampler.timesteps) // 2])
                cases.append(_case("auto", "pixelforge", lambda: sampler.step(eps_pred, t, sample)))
            except Exception:  # noqa: BLE001
                ok = False
        a_t, a_p = np.float32(ac[t]), np.float32(ac[max(t - 20, 0)])

        def np_fn():  # DDIM, eta = 0, epsilon prediction, clip_sample
            x0 = np.clip((sample - np.sqrt(1 - a_t) * eps_pred) / np.sqrt(a_t), -1, 1)
            eps = (sample - np.sqrt(a_t) * x0) / np.sqrt(1 - a_t)
            return np.sqrt(a_p) * x0 + np.sqrt(1 - a_p) * eps
        cases.append(_case("numpy", "alternative", np_fn))
        if torch is not None:
            te, ts = torch.from_numpy(eps_pred), torch.from_numpy(sample)

            def t_fn():
                x0 = torch.clamp((ts - math.sqrt(1 - a_t) * te) / math.sqrt(a_t), -1, 1)
                eps = (ts - math.sqrt(a_t) * x0) / math.sqrt(1 - a_t)
                return math.sqrt(a_p) * x0 + math.sqrt(1 - a_p) * eps
            cases.append(_case("torch", "alternative", t_fn))
        del t_prev
        # reads model output and sample, writes the previous sample
        return f"DDIM step {shape} float32", 12 * n, "GB/s", cases, ok

    for b in (randn_build, reparam_build, add_noise_build, ddim_build):
        groups.append(("sampling", "cpu", b))
    return groups


def _matmul_groups(sh, wanted, gpu):
    torch = _torch()
    groups = []
    for M, K, N in sh["matmul"]:
        def build(M=M, K=K, N=N):
            mm = _lookup("ops.matmul")
            lin = _lookup("ops.linear")
            g = np.random.default_rng(0)
            a = g.standard_normal((M, K)).astype(np.float32)
            b = g.standard_normal((K, N)).astype(np.float32)
            w = np.ascontiguousarray(b.T)  # linear's weight (out, in)
            cases = []
            if mm is not None:
                for impl in _impls("matmul", "cpu", wanted):
                    cases.append(_case(impl, "pixelforge", lambda impl=impl: mm(a, b, impl=impl)))
            if lin is not None:
                for impl in _impls("linear", "cpu", wanted):
                    cases.append(_case(f"linear-{impl}", "pixelforge", lambda impl=impl: lin(a, w, impl=impl)))
            cases.append(_case("numpy", "alternative", lambda: a @ b))
            if torch is not None:
                ta, tb = torch.from_numpy(a), torch.from_numpy(b)
                cases.append(_case("torch", "alternative", lambda: ta @ tb))
            return f"matmul {M}x{K} @ {K}x{N} float32", 2 * M * K * N, "GFLOP/s", cases, mm is not None
        groups.append(("matmul", "cpu", build))
    return groups


def _train_step_groups(sh, wanted, gpu):
    torch = _torch()
    cfg = sh["train_step"]
    B, (c0, c1, c2), side, ncls = cfg["batch"], cfg["channels"], cfg["side"], cfg["classes"]
    half = side // 2
    # conv 3x3 p1 (c0->c1), conv 3x3 s2 p1 (c1->c2), linear (c2*half^2 -> classes): forward
    # flops; a step is forward + backward-data + backward-weight, 3x the forward
    fwd = (2 * B * c1 * c0 * 9 * side * side + 2 * B * c2 * c1 * 9 * half * half
           + 2 * B * c2 * half * half * ncls)

    def build():
        g = np.random.default_rng(0)
        x = g.standard_normal((B, c0, side, side)).astype(np.float32)
        y = g.standard_normal((B, ncls)).astype(np.float32)
        cases = []
        ok = False
        nn, optim, functional = _lookup("nn"), _lookup("optim"), _lookup("functional")
        if nn is not None and optim is not None and functional is not None:
            try:
                import pixelforge as pf  # noqa: PLC0415
                model = nn.Sequential(nn.Conv2d(c0, c1, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.ReLU(),
                                      nn.Flatten(), nn.Linear(c2 * half * half, ncls))
                opt = optim.Adam(model.parameters(), lr=1e-3)
                px, py = pf.Tensor(x), pf.Tensor(y)

                def pf_step():
                    opt.zero_grad()
                    loss = functional.mse_loss(model(px), py)
                    loss.backward()
                    opt.step()
                cases.append(_case("auto", "pixelforge", pf_step))
                ok = True
            except Exception:  # noqa: BLE001 - the layers' branch not merged yet
                ok = False
        if torch is not None:
            tn = torch.nn
            tm = tn.Sequential(tn.Conv2d(c0, c1, 3, padding=1), tn.ReLU(), tn.Conv2d(c1, c2, 3, stride=2, padding=1),
                               tn.ReLU(), tn.Flatten(), tn.Linear(c2 * half * half, ncls))
            topt = torch.optim.Adam(tm.parameters(), lr=1e-3)
            tx, ty = torch.from_numpy(x), torch.from_numpy(y)

            def t_step():
                topt.zero_grad()
                loss = torch.nn.functional.mse_loss(tm(tx), ty)
                loss.backward()
                topt.step()
            cases.append(_case("torch", "alternative", t_step))
        label = f"train step: conv{c0}-{c1}-{c2} + linear, batch {B}, {side}x{side}, Adam"
        return label, 3 * fwd, "GFLOP/s", cases, ok
    return [("train_step", "cpu", build)]


def _bias_act_groups(sh, wanted, gpu):
    import pixelforge as pf  # noqa: PLC0415
    torch = _torch()
    shape = tuple(sh["bias_act"]["shape"])
    groups = []
    for device in (("cpu", "cuda") if gpu else ("cpu",)):
        def build(device=device):
            g = np.random.default_rng(0)
            x = g.standard_normal(shape).astype(np.float32)
            b = g.standard_normal(shape[1]).astype(np.float32)
            xd, bd = _to_device((x, b), device)
            cases = [_case(impl, "pixelforge", lambda impl=impl: pf.ops.bias_act(xd, bd, act="lrelu", impl=impl),
                           device) for impl in _impls("bias_act", device, wanted)]
            gain = np.float32(np.sqrt(2))
            if device == "cpu":
                def np_fn():
                    v = x + b[None, :, None]
                    return np.where(v > 0, v, v * np.float32(0.2)) * gain
                cases.append(_case("numpy", "alternative", np_fn))
            if torch is not None and (device == "cpu" or torch.cuda.is_available()):
                dev = "cuda" if device == "cuda" else "cpu"
                tx, tb = torch.from_numpy(x).to(dev), torch.from_numpy(b).to(dev)
                cases.append(_case("torch", "alternative",
                                   lambda: torch.nn.functional.leaky_relu(tx + tb[None, :, None], 0.2) * float(gain),
                                   "torch-cuda" if device == "cuda" else "cpu"))
            return f"bias_act lrelu {shape} float32", 2 * x.nbytes, "GB/s", cases
        groups.append(("bias_act", device, build))
    return groups


_BUILDERS = {"conv2d": _conv2d_groups, "attention": _attention_groups, "sampling": _sampling_groups,
             "matmul": _matmul_groups, "train_step": _train_step_groups, "bias_act": _bias_act_groups}


# ----------------------------------------------------------------------------- running
def _progress(total, enabled):
    if not enabled:
        return None
    try:
        from tqdm import tqdm  # noqa: PLC0415
    except ImportError:
        return _PlainProgress(total)
    return tqdm(total=total, desc="pixelforge bench", unit="shape", file=sys.stderr, leave=False)


class _PlainProgress:
    """The fallback when tqdm is not installed: a counter on stderr."""

    def __init__(self, total):
        self.total, self.n = total, 0

    def set_postfix_str(self, s):
        self.label = s

    def update(self, k=1):
        self.n += k
        print(f"\r[{self.n}/{self.total}] {getattr(self, 'label', '')[:60]:<60}", end="", file=sys.stderr, flush=True)

    def close(self):
        print(file=sys.stderr)


def run(ops=OPS, impls=None, quick=False, rounds=None, progress=True, log=print):
    """Run the benchmarks; returns the result dict that ``--json`` writes."""
    import pixelforge as pf  # noqa: PLC0415
    sh = shapes(quick)
    torch = _torch()
    if torch is not None:
        # as many threads as pixelforge's OpenMP runtime uses: a like-for-like comparison
        torch.set_num_threads(max(1, int(pf.info()["cpu"]["threads"] or 1)))
    gpu = _cupy_gpu() is not None
    ceilings = measure_ceilings(quick)
    info = pf.info()
    result = {
        "pixelforge": info.get("version"), "quick": bool(quick),
        "machine": {"cpu": info.get("cpu"), "cuda": info.get("cuda"), "numpy": np.__version__,
                    "torch": getattr(torch, "__version__", None), "load_average": os.getloadavg()[0]},
        "ceilings": ceilings, "ceilings_start": dict(ceilings), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "rows": [], "skipped": [],
    }
    log(f"pixelforge {info.get('version')} bench ({'quick' if quick else 'full'}): CPU {info['cpu'].get('isa')}, "
        f"{info['cpu'].get('threads')} threads; torch {result['machine']['torch'] or 'not installed'}; "
        f"GPU {'yes (CUDA events)' if gpu else 'no'}")
    log(f"ceilings: float32 matmul (NumPy, {ceilings['matmul_n']}^3) {ceilings['matmul_gflops']:.1f} GFLOP/s; "
        f"np.copyto {ceilings['copy_mib']} MiB {ceilings['copy_gbs']:.1f} GB/s (read + write)")
    groups = [g for op in ops for g in _BUILDERS[op](sh, impls, gpu)]
    timer = Timer(rounds or (3 if quick else 7), budget_s=0.3 if quick else 8.0)
    bar = _progress(len(groups), progress)
    noted = set()
    for op, device, build in groups:
        built = build()
        label, amount, unit, cases = built[:4]
        present = built[4] if len(built) > 4 else True
        if bar is not None:
            bar.set_postfix_str(label[:40])
        if not present:
            name = label.split()[0] if op == "sampling" else op
            if name not in noted:
                noted.add(name)
                result["skipped"].append({"op": op, "shape": label, "reason": "not available"})
                # tqdm.write keeps the bar intact; plain print otherwise
                _note(bar, f"{name}: not available in this installation (skipped; alternatives still timed)")
        timer.run(cases)
        ceiling = ceilings["matmul_gflops"] if unit == "GFLOP/s" else ceilings["copy_gbs"]
        alts = [c for c in cases if c["kind"] == "alternative" and "seconds" in c]
        best = min(alts, key=lambda c: c["seconds"]) if alts else None
        for c in cases:
            row = {"op": op, "shape": label, "impl": c["impl"], "kind": c["kind"],
                   "device": "cuda" if c["device"] in ("cuda", "torch-cuda") else "cpu",
                   "status": c.get("status", "ok"), "amount": amount, "unit": unit}
            if "seconds" in c:
                rate = amount / c["seconds"] / 1e9
                row.update(seconds=c["seconds"], rounds=c["rounds"], rate=rate,
                           # GPU rates against CPU ceilings would mislead
                           pct_ceiling=100 * rate / ceiling if row["device"] == "cpu" else None,
                           ratio=(best["seconds"] / c["seconds"]) if best else None,
                           best_alternative=best["impl"] if best else None)
            result["rows"].append(row)
        del built, cases
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    # measured again at the end: load from other processes that held the start down shows up
    # as a difference; percentages use the higher of the two
    end = measure_ceilings(quick)
    result["ceilings_end"] = end
    for key in ("matmul_gflops", "copy_gbs"):
        if end[key] > ceilings[key]:
            ceilings[key] = end[key]
            unit = "GFLOP/s" if key == "matmul_gflops" else "GB/s"
            for row in result["rows"]:
                if row.get("pct_ceiling") is not None and row["unit"] == unit:
                    row["pct_ceiling"] = 100 * row["rate"] / end[key]
    log(f"ceilings at the end: matmul {end['matmul_gflops']:.1f} GFLOP/s, copy {end['copy_gbs']:.1f} GB/s "
        f"(% of ceiling uses the higher of start and end)")
    return result


def _note(bar, msg):
    if bar is not None and hasattr(bar, "write"):
        bar.write(msg, file=sys.stderr)
    else:
        print(msg, file=sys.stderr)


def format_table(result):
    rows = result["rows"]
    if not rows:
        return "(no rows)"
    w = max(len(r["shape"]) for r in rows)
    lines = [f"{'shape':<{w}}  {'impl':<12} {'dev':<4} {'time':>11} {'rate':>17} {'% ceil':>7} "
             f"{'vs best alt':>17}"]
    last = None
    for r in rows:
        shape = r["shape"] if r["shape"] != last else ""
        last = r["shape"]
        if "seconds" not in r:
            lines.append(f"{shape:<{w}}  {r['impl']:<12} {r['device']:<4} {r['status']}")
            continue
        t = r["seconds"]
        ts = f"{t * 1e3:8.3f} ms" if t >= 1e-3 else f"{t * 1e6:8.1f} us"
        pct = f"{r['pct_ceiling']:6.1f}%" if r["pct_ceiling"] is not None else "      -"
        # no alternative installed for this problem (e.g. torch absent): no ratio
        ratio = f"{r['ratio']:6.2f}x {r['best_alternative']}" if r["ratio"] is not None else "\u2013"
        lines.append(f"{shape:<{w}}  {r['impl']:<12} {r['device']:<4} {ts:>11} {r['rate']:9.2f} {r['unit']:<7} "
                     f"{pct:>7} {ratio:>17}")
    return "\n".join(lines)


def plot(result, path):
    """A horizontal bar chart of the rates, one bar per row, grouped by shape."""
    import matplotlib  # noqa: PLC0415
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    rows = [r for r in result["rows"] if "rate" in r]
    labels = [f"{r['shape']} | {r['impl']}" for r in rows]
    colors = ["tab:blue" if r["kind"] == "pixelforge" else "tab:gray" for r in rows]
    fig, ax = plt.subplots(figsize=(11, max(3.0, 0.22 * len(rows) + 1)))
    y = np.arange(len(rows))
    ax.barh(y, [r["pct_ceiling"] if r["pct_ceiling"] is not None else 0 for r in rows], color=colors)
    ax.set_yticks(y, labels, fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel("% of this machine's ceiling (matmul GFLOP/s or copy GB/s); blue: pixelforge, gray: alternatives")
    c = result["ceilings"]
    ax.set_title(f"pixelforge bench: matmul {c['matmul_gflops']:.0f} GFLOP/s, copy {c['copy_gbs']:.1f} GB/s")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="pixelforge bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--op", default="all", help=f"comma-separated ops from {', '.join(OPS)}, or all")
    p.add_argument("--impl", default=None,
                   help="comma-separated pixelforge impls (cpu,cuda,numba,ref); default: every built one but ref")
    p.add_argument("--quick", action="store_true", help="small shapes and ceilings, 3 rounds: seconds, not minutes")
    p.add_argument("--rounds", type=int, default=None, help="timed rounds per contender (default 7, quick 3)")
    p.add_argument("--json", metavar="FILE", default=None, help="write every row and the machine description")
    p.add_argument("--plot", metavar="FILE", default=None, help="bar chart PNG (needs matplotlib)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv=None) -> int:
    """Entry point of ``pixelforge bench``; returns the exit status."""
    args = parse_args(argv)
    # Contenders from three thread pools (pixelforge's OpenMP, torch's OpenMP, OpenBLAS) run in
    # turn: with spinning idle workers the one that just finished steals the cores of the next.
    # Passive waiting makes the comparison fair; it only takes effect when no OpenMP runtime has
    # started yet in this process, and an explicit setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    ops = OPS if args.op == "all" else tuple(o.strip() for o in args.op.split(",") if o.strip())
    bad = [o for o in ops if o not in OPS]
    if bad:
        print(f"pixelforge bench: --op: unknown op(s) {bad}; expected {', '.join(OPS)} or all", file=sys.stderr)
        return 2
    impls = None
    if args.impl:
        impls = [i.strip() for i in args.impl.split(",") if i.strip()]
        unknown = [i for i in impls if i not in ("cpu", "cuda", "numba", "ref")]
        if unknown:
            print(f"pixelforge bench: --impl: unknown impl(s) {unknown}; expected cpu, cuda, numba, ref",
                  file=sys.stderr)
            return 2
    if args.plot:
        try:
            import matplotlib  # noqa: F401,PLC0415
        except ImportError:
            print("pixelforge bench: --plot needs matplotlib (pip install 'pixelforge[plot]')", file=sys.stderr)
            return 2
    result = run(ops, impls, quick=args.quick, rounds=args.rounds, progress=not args.no_progress)
    print()
    print(format_table(result))
    print("\nrate: GFLOP/s for compute-bound ops, GB/s (bytes read + written) for memory-bound ones; % ceil: of "
          "the matching ceiling above; vs best alt: best alternative's time / this time (> 1: faster)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1, default=str)
        print(f"wrote {args.json}")
    if args.plot:
        plot(result, args.plot)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
