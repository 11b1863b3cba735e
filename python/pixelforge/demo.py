"""``pixelforge demo``: trains the four generator families briefly on the digits, writes a
sample grid per family and one combined picture, and prints train time, sampling speed and
quality. ``pixelforge bench`` (:func:`kernels`) runs and times every kernel this
installation has, for every built impl, checked against the reference.

Each op contributes a *case* to ``CASES``: a builder of inputs, a call taking ``impl``, the
bytes or flops it moves, and a reference to check against.
"""
from __future__ import annotations

import time

import numpy as np

from . import _dispatch, info


def _time(fn, repeat):
    fn()  # warm-up (JIT compilation, caches)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _bias_act_case(quick):
    n = (1 << 20) if quick else (1 << 23)
    g = np.random.default_rng(0)
    x = g.standard_normal((16, 64, n // 1024)).astype(np.float32)
    b = g.standard_normal(64).astype(np.float32)
    from . import ops  # noqa: PLC0415

    def call(impl):
        return ops.bias_act(x, b, act="lrelu", impl=impl)

    def numpy_expr():
        v = x + b[None, :, None]
        return np.where(v > 0, v, v * np.float32(0.2)) * np.float32(np.sqrt(2))

    return dict(op="bias_act", label=f"bias_act lrelu, {x.size / 1e6:.1f}M float32", call=call,
                baseline=("numpy expression", numpy_expr), amount=2 * x.nbytes, unit="GB/s",
                reference=numpy_expr)


CASES = [_bias_act_case]


def kernels(quick: bool = False, only: str = "all") -> int:
    data = info()
    cpu = data["cpu"]
    print(f"pixelforge {data['version']}: CPU SIMD path {cpu['isa'] or 'n/a'}, {cpu['threads']} threads; "
          f"CUDA module {'built' if data['cuda']['built'] else 'not built'}, {data['cuda']['devices']} GPU(s)")
    repeat = 3 if quick else 7
    rows, failures = [], 0
    for make in CASES:
        case = make(quick)
        if only not in ("all", case["op"]):
            continue
        expected = case["reference"]()
        base_name, base_fn = case["baseline"]
        base_t = _time(base_fn, repeat)
        rows.append((case["label"], base_name, base_t, case["amount"] / base_t / 1e9, 1.0, "-"))
        for impl in _dispatch.available(case["op"], "cpu"):
            out = case["call"](impl)
            err = float(np.max(np.abs(np.asarray(out, np.float64) - expected))) if expected.size else 0.0
            ok = err <= 1e-4 * max(1.0, float(np.max(np.abs(expected))))
            failures += not ok
            t = _time(lambda: case["call"](impl), repeat)
            rows.append((case["label"], f"pixelforge impl={impl}", t, case["amount"] / t / 1e9, base_t / t,
                         "ok" if ok else f"MISMATCH {err:.2e}"))
    w = max(len(r[0]) for r in rows) if rows else 10
    print(f"\n{'op':<{w}}  {'implementation':<24} {'time':>10} {'rate':>12} {'vs base':>8}  check")
    for label, name, t, rate, speedup, check in rows:
        print(f"{label:<{w}}  {name:<24} {t * 1e3:8.2f}ms {rate:8.2f} GB/s {speedup:7.2f}x  {check}")
    return 1 if failures else 0


# ------------------------------------------------------------------------- the main job
# (family, steps) of the demo: about a minute of training each on 2 cores
DEMO = [("gan", 1500), ("vae", 1200), ("transformer", 500), ("diffusion", 600)]


def run(out="pixelforge-demo", quick: bool = False) -> int:
    """Train each family on the digits, sample, judge, and write PNGs under ``out``."""
    import pathlib  # noqa: PLC0415

    from . import data, models  # noqa: PLC0415
    from .cli import evaluate_model, save_grid  # noqa: PLC0415
    d = info()
    print(f"pixelforge {d['version']}: CPU SIMD path {d['cpu']['isa'] or 'n/a'}, {d['cpu']['threads']} threads; "
          f"CUDA module {'built' if d['cuda']['built'] else 'not built'}, {d['cuda']['devices']} GPU(s)")
    x, y = data.load_digits()
    outdir = pathlib.Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    rows, grids = [], []
    for family, steps in DEMO:
        steps = 3 if quick else steps
        model = models.create(family, (1, 8, 8))
        hist = model.fit(x, steps=steps, seed=0, progress=not quick)
        kw = {"steps": 5} if quick and family == "diffusion" else {}
        q, samples = evaluate_model(model, n=20 if quick else 500, **kw)
        save_grid(samples[:64], outdir / f"{family}.png", nrow=8)
        grids.append(samples[:64])
        rows.append((family, steps, hist["seconds"], q))
    save_grid(np.concatenate([np.pad(g, ((0, 64 - len(g)), (0, 0), (0, 0), (0, 0))) for g in grids]),
              outdir / "all.png", nrow=16)
    print(f"\n{'family':<12} {'steps':>6} {'train s':>8} {'samples/s':>10} {'confident':>10} {'entropy':>8} "
          f"{'Frechet':>8}")
    for family, steps, secs, q in rows:
        print(f"{family:<12} {steps:>6} {secs:8.1f} {q['samples_per_second']:10.1f} {q['confident']:10.3f} "
              f"{q['entropy']:8.3f} {q['frechet']:8.2f}")
    print(f"\nsample grids: {outdir}/<family>.png, all four: {outdir}/all.png")
    return 0
