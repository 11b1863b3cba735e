"""The four generator families on the digits, measured the way issue 7's quality bar states it.

Each family is trained from the command line with its default config,
``pixelforge train FAMILY --data digits --out DIR/FAMILY [--conditional]`` (the wall time of that
command, start-up included, is the "train s" column; Numba kernels compile on their first use
ever and come from the on-disk cache after that), then judged on 500
samples by the digit classifier of ``pixelforge eval``. One combined picture holds 64 samples of
each family side by side (conditional runs: digits 0..9 cycling).

    PYTHONPATH=python python bench/bench_families.py --out runs [--conditional] [--families gan vae]

A run already in DIR/FAMILY is judged again without retraining (``--retrain`` redoes it).
Prints a Markdown table (the README's) and writes DIR/families.png.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

FAMILIES = ("gan", "vae", "transformer", "diffusion")


def tile(samples, nrow=8):
    """(64, 1, H, W) -> one (1, 8H, 8W) image, no padding."""
    n, c, h, w = samples.shape
    rows = samples.reshape(n // nrow, nrow, c, h, w).transpose(2, 0, 3, 1, 4)
    return rows.reshape(c, (n // nrow) * h, nrow * w)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs")
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    ap.add_argument("--conditional", action="store_true")
    ap.add_argument("--retrain", action="store_true")
    args = ap.parse_args(argv)

    import pixelforge as pf
    from pixelforge.io import save_image_grid
    from pixelforge.models.evaluate import evaluate_model

    root = pathlib.Path(args.out)
    rows, tiles = [], []
    for fam in args.families:
        run = root / (fam + ("_cond" if args.conditional else ""))
        train_s = float("nan")
        if args.retrain or not (run / "model.safetensors").exists():
            cmd = [sys.executable, "-m", "pixelforge", "train", fam, "--data", "digits", "--out", os.fspath(run)]
            if args.conditional:
                cmd.append("--conditional")
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True)
            train_s = time.perf_counter() - t0
        model = pf.models.load(run)
        q, samples = evaluate_model(model, n=500)
        tiles.append(tile(samples[:64]))
        rows.append((fam, train_s, model.steps_trained, q))

    save_image_grid(np.stack(tiles), root / ("families_cond.png" if args.conditional else "families.png"),
                    nrow=len(tiles), scale=4)
    cond = args.conditional
    print(f"| family | train s (CLI) | steps | confident (p ≥ 0.7) | label entropy |"
          f"{' in requested class |' if cond else ''} Fréchet | samples/s |")
    print("|---|---:|---:|---:|---:|" + ("---:|" if cond else "") + "---:|---:|")
    for fam, secs, steps, q in rows:
        match = f" {q['class_match']:.3f} |" if cond else ""
        secs = "—" if secs != secs else f"{secs:.0f}"  # a reused run: not timed
        print(f"| {fam} | {secs} | {steps} | {q['confident']:.3f} | {q['entropy']:.3f} |{match} "
              f"{q['frechet']:.2f} | {q['samples_per_second']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
