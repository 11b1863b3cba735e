"""``pixelforge demo``: trains the four generator families briefly on the digits, writes a
sample grid per family and one combined picture, and prints train time, sampling speed and
quality. (``pixelforge bench`` lives in :mod:`pixelforge.benchmarks`.)
"""
from __future__ import annotations

import pathlib

import numpy as np

from . import data, info, models
from .io import save_image_grid
from .models.evaluate import evaluate_model


# ------------------------------------------------------------------------- the main job
# (family, steps for the learning-rate schedule, seconds at most): 4 minutes of training in all
# on 2 cores, judged on DEMO_SAMPLES samples each; the GAN gets the most time because it is the
# slowest to converge (measured: 1800 steps 0.67 confident, 880 steps 0.55), the VAE the least
# (but enough for its first-use kernel compilation, ~35 s on a fresh install)
DEMO = [("gan", 1500, 75), ("vae", 1000, 45), ("transformer", 400, 60), ("diffusion", 900, 60)]
DEMO_SAMPLES = 200


def run(out="pixelforge-demo", quick: bool = False) -> int:
    """Train each family on the digits, sample, judge, and write PNGs and the runs under ``out``."""
    d = info()
    print(f"pixelforge {d['version']}: CPU SIMD path {d['cpu']['isa'] or 'n/a'}, {d['cpu']['threads']} threads; "
          f"CUDA module {'built' if d['cuda']['built'] else 'not built'}, {d['cuda']['devices']} GPU(s)")
    x, y = data.load_digits()
    outdir = pathlib.Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    rows, grids = [], []
    for family, steps, seconds in DEMO:
        steps = 3 if quick else steps
        model = models.create(family, (1, 8, 8))
        hist = model.fit(x, steps=steps, seed=0, progress=not quick, max_seconds=seconds)
        kw = {"steps": 5 if quick else 25} if family == "diffusion" else {}
        q, samples = evaluate_model(model, n=20 if quick else DEMO_SAMPLES, **kw)
        save_image_grid(samples[:64], outdir / f"{family}.png", nrow=8, scale=4)
        model.save(outdir / family)          # a run folder: pixelforge sample / serve use it
        grids.append(samples[:64])
        rows.append((family, hist["steps"], hist["seconds"], q))
    save_image_grid(np.concatenate([np.pad(g, ((0, 64 - len(g)), (0, 0), (0, 0), (0, 0))) for g in grids]),
                    outdir / "all.png", nrow=16, scale=4)
    print(f"\n{'family':<12} {'steps':>6} {'train s':>8} {'samples/s':>10} {'confident':>10} {'entropy':>8} "
          f"{'Frechet':>8}")
    for family, steps, secs, q in rows:
        print(f"{family:<12} {steps:>6} {secs:8.1f} {q['samples_per_second']:10.1f} {q['confident']:10.3f} "
              f"{q['entropy']:8.3f} {q['frechet']:8.2f}")
    print(f"\nsample grids: {outdir}/<family>.png, all four: {outdir}/all.png; the trained runs: "
          f"{outdir}/<family>/ (pixelforge serve {outdir} opens them in the studio)")
    return 0
