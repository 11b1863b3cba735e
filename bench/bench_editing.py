"""Sketch -> image, inpainting and inversion with the default trained diffusion model on the
8x8 digits, judged by the package's digit classifier (pixelforge.models.evaluate) on the 360
held-out real digits of its fixed split; draws bench/editing.png.

Sketch: the real digit binarised at 0.5 (a crude black/white silhouette of the strokes, the
kind of image a user draws with a hard brush). "class kept": the judge reads the original's
class in the result. Inpainting: the right half (columns 4-7) or the centre square (rows and
columns 2-5) repainted with RePaint, the rest kept.

    PYTHONPATH=python python bench/bench_editing.py [--run runs/diffusion] [--picture bench/editing.png]
"""
from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

import pixelforge as pf
from pixelforge.models import evaluate


def _row(q):
    return (f"{q['confident']:.3f} | {q.get('class_match', float('nan')):.3f} | {q['entropy']:.3f} | "
            f"{q['frechet']:.2f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="runs/diffusion", help="a diffusion run (trained from the CLI if missing)")
    ap.add_argument("--run-cond", default="runs/diffusion_cond", help="a conditional diffusion run (likewise)")
    ap.add_argument("--picture", default="bench/editing.png")
    ap.add_argument("--steps", type=int, default=50)
    args = ap.parse_args(argv)
    run, run_c = pathlib.Path(args.run), pathlib.Path(args.run_cond)
    for r, extra in ((run, []), (run_c, ["--conditional"])):
        if not (r / "model.safetensors").exists():
            subprocess.run([sys.executable, "-m", "pixelforge", "train", "diffusion", "--data", "digits",
                            "--out", os.fspath(r)] + extra, check=True)
    m, mc = pf.models.load(run), pf.models.load(run_c)
    _, _, xt, yt = evaluate.split()
    x = xt.reshape(-1, 1, 8, 8)
    sketch = (x >= 0.5).astype(np.float32)
    steps = args.steps
    print(f"diffusion run {run} ({m.steps_trained} steps), {len(x)} held-out digits, {steps} DDIM steps")
    print("| input | confident (p ≥ 0.7) | class kept | label entropy | Fréchet | s |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| real digits | {_row(evaluate.quality(x, yt))} | — |")
    print(f"| sketches (binarised at 0.5) | {_row(evaluate.quality(sketch, yt))} | — |")
    outs = {}
    for s in (0.2, 0.3, 0.5, 0.6, 0.7, 0.8):
        t0 = time.perf_counter()
        outs[s] = m.img2img(sketch, s, seed=0, steps=steps)
        print(f"| img2img of the sketches, strength {s} | {_row(evaluate.quality(outs[s], yt))} | "
              f"{time.perf_counter() - t0:.1f} |", flush=True)
    for s in (0.5, 0.6, 0.7, 0.8):
        for w in (1.0, 2.0):
            t0 = time.perf_counter()
            out = mc.img2img(sketch, s, seed=0, steps=steps, labels=yt, guidance_scale=w)
            print(f"| conditional img2img with the sketch's class, strength {s}, guidance {w:g} | "
                  f"{_row(evaluate.quality(out, yt))} | {time.perf_counter() - t0:.1f} |", flush=True)
    right = np.zeros((8, 8), np.float32)
    right[:, 4:] = 1
    centre = np.zeros((8, 8), np.float32)
    centre[2:6, 2:6] = 1
    inp = {}
    for name, mask, jl, jn in (("right half", right, 1, 1), ("right half, RePaint jumps 5 x 3", right, 5, 3),
                               ("centre square", centre, 1, 1), ("centre square, jumps 5 x 3", centre, 5, 3)):
        t0 = time.perf_counter()
        inp[name] = m.inpaint(x, mask, seed=0, steps=steps, jump_length=jl, jump_n_sample=jn)
        print(f"| inpainted {name} | {_row(evaluate.quality(inp[name], yt))} | {time.perf_counter() - t0:.1f} |",
              flush=True)
    holes = {"right half": x * (1 - right), "centre square": x * (1 - centre)}
    for name, h in holes.items():
        print(f"| the input with the {name} blacked out | {_row(evaluate.quality(h, yt))} | — |")

    print("\nDDIM inversion round trip (64 held-out digits; sample(init_noise=invert(x)) vs x):")
    print("| steps | mean abs error | max abs error | clip_sample |")
    print("|---:|---:|---:|---|")
    for clip in (False, True):
        for n_steps in (50, 200):
            z = m.invert(x[:64], steps=n_steps)
            back = m.sample(64, init_noise=z, steps=n_steps, sampler="ddim", clip_sample=clip)
            err = np.abs(back - x[:64])
            print(f"| {n_steps} | {err.mean():.4f} | {err.max():.4f} | {clip} |", flush=True)

    # the picture: 16 columns; rows: real, sketch, img2img 0.3 / 0.5 / 0.8, conditional img2img
    # with the sketch's class at 0.7, centre-masked input (hole grey), its inpainting, right-half
    # input, its inpainting, a 16-frame interpolation
    k = 16
    pick = np.arange(k) * 7
    grey = 0.5
    rows = [x[pick], sketch[pick], m.img2img(sketch[pick], 0.3, seed=0), m.img2img(sketch[pick], 0.5, seed=0),
            m.img2img(sketch[pick], 0.8, seed=0), mc.img2img(sketch[pick], 0.7, seed=0, labels=yt[pick]),
            np.where(centre > 0, grey, x[pick]), inp["centre square, jumps 5 x 3"][pick],
            np.where(right > 0, grey, x[pick]), inp["right half, RePaint jumps 5 x 3"][pick],
            m.interpolate(3, 11, k)]
    pf.io.save_image_grid(np.concatenate(rows), args.picture, nrow=k, scale=4)
    print(f"\npicture -> {args.picture}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
