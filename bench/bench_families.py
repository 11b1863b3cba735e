"""The generator families on a dataset, measured the way the quality bars state it.

Each family is trained from the command line with its default config,
``pixelforge train FAMILY --data DATA --out DIR/FAMILY [--conditional]`` (the wall time of that
command, start-up included, is the "train s" column; Numba kernels compile on their first use
ever and come from the on-disk cache after that), then judged by ``pixelforge eval``'s judge for
the data: 500 samples by the digit classifier, 1,000 by the Fashion-MNIST judge (with the real
(R) and blurred (B) references beside them), 1,000 by the emoji figures. One combined picture
holds 64 samples of each family side by side (conditional runs: classes 0..9 cycling).

    PYTHONPATH=python python bench/bench_families.py --out runs [--data fashion-mnist] [--conditional]
        [--families gan vae]

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
    ap.add_argument("--data", default="digits", choices=["digits", "fashion-mnist", "emoji"])
    ap.add_argument("--conditional", action="store_true")
    ap.add_argument("--retrain", action="store_true")
    args = ap.parse_args(argv)

    import pixelforge as pf
    from pixelforge.io import save_image_grid
    from pixelforge.models.evaluate import evaluate_model, judge_for

    root = pathlib.Path(args.out)
    rows, tiles = [], []
    for fam in args.families:
        run = root / args.data / (fam + ("_cond" if args.conditional else ""))
        train_s = float("nan")
        if args.retrain or not (run / "model.safetensors").exists():
            cmd = [sys.executable, "-m", "pixelforge", "train", fam, "--data", args.data, "--out", os.fspath(run)]
            if args.conditional:
                cmd.append("--conditional")
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True)
            train_s = time.perf_counter() - t0
        model = pf.models.load(run)
        judge = judge_for(model.image_shape, args.data)
        q, samples = evaluate_model(model, n=500 if judge == "digits" else 1000, data=judge)
        tiles.append(tile(samples[:64]))
        rows.append((fam, train_s, model.steps_trained, q))

    name = f"families_{args.data}{'_cond' if args.conditional else ''}.png"
    save_image_grid(np.stack(tiles), root / name, nrow=len(tiles), scale=4 if args.data == "digits" else 2)
    cond = args.conditional
    if args.data == "emoji":
        print("| family | train s (CLI) | steps | Fréchet | nearest training emoji (RMS) | training emoji's own |"
              " samples/s |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for fam, secs, steps, q in rows:
            secs = "—" if secs != secs else f"{secs:.0f}"
            print(f"| {fam} | {secs} | {steps} | {q['frechet']:.1f} | {q['nearest']:.3f} | {q['nearest_train']:.3f} | "
                  f"{q['samples_per_second']:.1f} |")
        return 0
    refs = None
    if args.data == "fashion-mnist":
        from pixelforge.models import fashion_judge  # noqa: PLC0415
        refs = fashion_judge.references(1000)
        rows += [("R (real)", float("nan"), 0, refs["R"]), ("B (σ=1 blur)", float("nan"), 0, refs["B"])]
    print(f"| family | train s (CLI) | steps | confident (p ≥ 0.7) | label entropy |"
          f"{' in requested class |' if cond else ''} Fréchet |{' broken |' if refs else ''} samples/s |")
    print("|---|---:|---:|---:|---:|" + ("---:|" if cond else "") + "---:|" + ("---:|" if refs else "") + "---:|")
    for fam, secs, steps, q in rows:
        match = f" {q['class_match']:.3f} |" if cond else ""
        broken = f" {q['broken']:.3f} |" if refs else ""
        secs = "—" if secs != secs else f"{secs:.0f}"  # a reused run: not timed
        sps = f"{q['samples_per_second']:.0f}" if "samples_per_second" in q else "—"
        print(f"| {fam} | {secs} | {steps or '—'} | {q['confident']:.3f} | {q['entropy']:.3f} |{match} "
              f"{q['frechet']:.2f} |{broken} {sps} |")
    if refs:
        print(f"\njudge accuracy on the 10,000 test images: {refs['judge_accuracy']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
