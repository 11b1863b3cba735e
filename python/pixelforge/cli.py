"""The ``pixelforge`` command: info | train | sample | eval | edit | interpolate | complete | demo | serve | bench."""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

from . import data, demo, info, models
from . import io as pfio
from .models import evaluate


def _cmd_info(args) -> int:
    data = info()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    cpu, cuda = data["cpu"], data["cuda"]
    print(f"pixelforge {data['version']} (Python {data['python']})")
    if cpu["native"]:
        print(f"  CPU module : built; SIMD path {cpu['isa']} (processor supports {cpu['native_isa']}; "
              f"built {', '.join(cpu['built_isas'])}); {cpu['threads']} OpenMP threads")
    else:
        print("  CPU module : NOT built (reference and Numba paths only)")
    if cuda["built"]:
        print(f"  CUDA module: built for sm_{', sm_'.join(cuda['archs'])}; {cuda['devices']} device(s) visible")
    else:
        print("  CUDA module: not built")
    print(f"  numba      : {data['numba'] or 'not installed'}; numba-cuda: {data['numba_cuda'] or 'not installed'}")
    print(f"  cupy       : {data['cupy'] or 'not installed'}{' (GPU visible)' if data['cupy_gpu'] else ''}")
    return 0


def _cmd_train(args) -> int:
    x, y = data.load_data(args.data, None if args.image_shape is None else tuple(args.image_shape))
    shape = tuple(x.shape[1:])
    num_classes = None
    if args.conditional:
        if y is None:
            print("--conditional needs labels in the data", file=sys.stderr)
            return 2
        named = args.data in data.CLASSES
        num_classes = len(data.CLASSES[args.data]) if named else int(y.max() + 1)
    config = json.loads(args.config) if args.config else {}
    model = models.create(args.family, shape, num_classes, device=args.device, **config)
    if args.precision != "float32":
        model.to(dtype=args.precision)  # float32 weights and optimizer state, bfloat16 GEMMs/convs
    out = pathlib.Path(args.out)
    ckpt_dir = out / "checkpoints"
    try:
        hist = model.fit(x, y if num_classes else None, steps=args.steps, seed=args.seed, progress=not args.quiet,
                         checkpoint_dir=ckpt_dir, checkpoint_every=args.checkpoint_every, resume=args.resume)
    except KeyboardInterrupt:
        print(f"\ninterrupted: checkpoint in {ckpt_dir}; continue with the same command and --resume",
              file=sys.stderr)
        return 130
    model.save(out)
    pfio.save_loss_plot(hist, out / "loss.png")
    samples = model.sample(64, seed=args.seed)
    pfio.save_image_grid(samples, out / "samples.png", nrow=8, scale=4)
    with open(out / "history.json", "w") as f:
        json.dump({k: v for k, v in hist.items()}, f)
    print(f"trained {args.family} for {model.steps_trained} steps in {hist['seconds']:.1f} s "
          f"({hist['images_per_second']:.0f} images/s); wrote {out}/model.safetensors, loss.png, samples.png")
    return 0


def _cmd_sample(args) -> int:
    model = models.load(args.run, device=args.device)
    if args.precision != "float32":
        model.to(dtype=args.precision)
    kw = {}
    if args.steps is not None:
        if model.family != "diffusion":
            print("--steps applies to diffusion models only", file=sys.stderr)
            return 2
        kw["steps"] = args.steps
    if args.guidance_scale is not None:
        kw["guidance_scale"] = args.guidance_scale   # the model checks it (conditional diffusion)
    if args.autoguidance is not None:
        if getattr(model, "guide_unet", None) is None:
            raise ValueError("--autoguidance: this run has no guide network (unconditional diffusion models "
                             "trained with autoguidance != 1 have one)")
        from .models.diffusion import check_autoguidance  # noqa: PLC0415
        model.config["autoguidance"] = check_autoguidance(args.autoguidance, "--autoguidance")
    labels = None
    if args.label is not None:
        labels = np.full(args.n, args.label, np.int64)
    t0 = time.perf_counter()
    samples = model.sample(args.n, seed=args.seed, labels=labels, **kw)
    dt = time.perf_counter() - t0
    pfio.save_image_grid(samples, args.out, scale=4)
    print(f"{args.n} samples in {dt:.2f} s ({args.n / dt:.1f}/s) -> {args.out}")
    return 0


def _cmd_eval(args) -> int:
    model = models.load(args.run)
    judge = evaluate.judge_for(model.image_shape, args.data)
    n = args.n if args.n is not None else (500 if judge == "digits" else 1000)
    q, _ = evaluate.evaluate_model(model, n=n, seed=args.seed, data=judge)
    refs = None
    if judge == "fashion-mnist":
        from .models import fashion_judge  # noqa: PLC0415
        refs = fashion_judge.references(n)
        q["references"] = refs
    if args.json:
        print(json.dumps(q, indent=2))
        return 0
    print(f"{model.family} ({'conditional' if model.conditional else 'unconditional'}, "
          f"{model.steps_trained} steps), {q['n']} samples, {judge} judge:")
    if judge == "emoji":
        print(f"  Frechet distance (judge features) : {q['frechet']:.2f}")
        print(f"  nearest training emoji (RMS, median): {q['nearest']:.3f}  "
              f"(training emoji to their nearest other: {q['nearest_train']:.3f})")
        print(f"  colourfulness                     : {q['colourfulness']:.3f}")
    else:
        rows = [("confident (p >= 0.7)", "confident"), ("label entropy (normalized)", "entropy"),
                ("in requested class", "class_match"), ("Frechet distance", "frechet"), ("broken", "broken")]
        if refs:
            print(f"  {'':27s} {'run':>8s} {'R (real)':>9s} {'B (blur)':>9s}")
        for name, key in rows:
            if key not in q:
                continue
            line = f"  {name:27s} {q[key]:8.3f}"
            if refs:
                line += f" {refs['R'][key]:9.3f} {refs['B'][key]:9.3f}"
            print(line)
        if refs:
            print(f"  judge accuracy on the 10,000 test images: {refs['judge_accuracy']:.3f}")
    print(f"  samples/s: {q['samples_per_second']:.1f}")
    return 0


def _labels_arg(model, label, n):
    if label is None:
        return None
    if not model.conditional:
        raise ValueError("--label: this run is unconditional (train it with --conditional)")
    return np.full(n, label, np.int64)


def _cmd_edit(args) -> int:
    model = models.load(args.run, device=args.device)
    x = pfio.load_image(args.input, model.image_shape)
    labels = _labels_arg(model, args.label, 1)
    kw = {} if args.steps is None else {"steps": args.steps}
    t0 = time.perf_counter()
    if args.mask is not None:
        if model.family != "diffusion":
            raise ValueError(f"--mask: inpainting needs a diffusion run, this one is {model.family!r}")
        mask = pfio.load_mask(args.mask, model.image_shape)
        out = model.inpaint(x, mask, seed=args.seed, labels=labels, jump_length=args.jump_length,
                            jump_n_sample=args.jump_n_sample, **kw)
        what = "inpainted"
    elif model.family in ("diffusion", "vae"):
        if model.family == "vae" and kw:
            raise ValueError("--steps: applies to diffusion runs only")
        out = model.img2img(x, args.strength, seed=args.seed, labels=labels, **kw)
        what = f"img2img at strength {args.strength}"
    else:
        hint = " (use `pixelforge complete` for the transformer)" if model.family == "transformer" else ""
        raise ValueError(f"edit: a {model.family} run cannot edit images (diffusion and VAE runs can){hint}")
    pfio.save_image_grid(out, args.out, padding=0, scale=args.scale)
    print(f"{what} in {time.perf_counter() - t0:.2f} s -> {args.out}")
    return 0


def _cmd_interpolate(args) -> int:
    model = models.load(args.run, device=args.device)
    kw = {} if args.steps is None else {"steps": args.steps}
    frames = model.interpolate(args.seeds[0], args.seeds[1], args.frames, labels=args.label, **kw)
    if str(args.out).lower().endswith(".gif"):
        pfio.save_gif(frames, args.out, scale=args.scale)
    else:
        pfio.save_image_grid(frames, args.out, nrow=len(frames), scale=args.scale)
    print(f"{len(frames)} frames from seed {args.seeds[0]} to {args.seeds[1]} -> {args.out}")
    return 0


def _cmd_complete(args) -> int:
    model = models.load(args.run, device=args.device)
    if model.family != "transformer":
        raise ValueError(f"complete: needs a transformer run, this one is {model.family!r}")
    x = pfio.load_image(args.input, model.image_shape)
    out = model.complete(x, args.rows, seed=args.seed, labels=_labels_arg(model, args.label, 1))
    pfio.save_image_grid(out, args.out, padding=0, scale=args.scale)
    print(f"completed below row {args.rows} -> {args.out}")
    return 0


def _cmd_demo(args) -> int:
    return demo.run(out=args.out, quick=args.quick)


def _cmd_serve(args) -> int:
    try:
        from . import serve  # noqa: PLC0415 - the optional extra
    except ImportError as e:
        print(f"pixelforge serve: {e}", file=sys.stderr)
        return 2
    return serve.serve(args.runs, host=args.host, port=args.port, token=args.token, queue_size=args.queue,
                       device=args.device)




def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="pixelforge", description="pixelforge: fast image generation")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="what this installation can run")
    p.add_argument("--json", action="store_true", help="print the pf.info() dict as JSON")
    p.set_defaults(fn=_cmd_info)

    p = sub.add_parser("train", help="train a generator family")
    p.add_argument("family", choices=["gan", "vae", "transformer", "diffusion"])
    p.add_argument("--data", default="digits",
                   help="digits | fashion-mnist | emoji, or a folder of images / IDX file / .npz")
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the family's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--conditional", action="store_true", help="class-conditional on the data's labels")
    p.add_argument("--image-shape", type=int, nargs=3, default=None, metavar=("C", "H", "W"),
                   help="resize the data to this shape (default: the named set's own, 1 8 8 for a path)")
    p.add_argument("--config", default=None, help="JSON dict of family config overrides")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--checkpoint-every", type=int, default=500,
                   help="write OUT/checkpoints/ckpt-STEP every N steps (also at the end and on Ctrl-C)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the newest intact checkpoint in OUT/checkpoints (same arguments)")
    p.add_argument("--precision", choices=["float32", "bfloat16"], default="float32",
                   help="bfloat16: mixed precision (bfloat16 products, float32 sums and weights; "
                        "float32 where the CPU lacks avx512_bf16, as pf.info() says)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help="train on the CPU (NumPy) or an NVIDIA GPU (CuPy)")
    p.set_defaults(fn=_cmd_train)

    p = sub.add_parser("sample", help="sample a trained run into a PNG grid")
    p.add_argument("run")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--out", default="grid.png")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--label", type=int, default=None)
    p.add_argument("--steps", type=int, default=None, help="diffusion sampling steps")
    p.add_argument("--guidance-scale", type=float, default=None,
                   help="classifier-free guidance of a conditional diffusion run (default: its config's)")
    p.add_argument("--autoguidance", type=float, default=None,
                   help="the guide network's scale for an unconditional diffusion run (1: off)")
    p.add_argument("--precision", choices=["float32", "bfloat16"], default="float32",
                   help="bfloat16: bfloat16 products and float32 sums (see train --precision)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="sample on the CPU or an NVIDIA GPU")
    p.set_defaults(fn=_cmd_sample)

    p = sub.add_parser("eval", help="quality numbers of a trained run (digits, Fashion-MNIST or emoji judge)")
    p.add_argument("run")
    p.add_argument("--n", type=int, default=None, help="samples judged (default: 500 digits, 1000 otherwise)")
    p.add_argument("--data", choices=list(evaluate.JUDGES), default=None,
                   help="which judge (default: by the run's image shape)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=_cmd_eval)

    p = sub.add_parser("edit", help="img2img (a sketch or photo) or inpainting (--mask) with a trained run")
    p.add_argument("run")
    p.add_argument("--input", required=True, help="PNG/JPEG of any size; resized, grey/RGB as the model needs")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--strength", type=float, default=0.6, help="img2img: 0 keeps the input, 1 ignores it")
    p.add_argument("--mask", default=None, help="PNG/JPEG: white = repaint, black = keep (diffusion)")
    p.add_argument("--jump-length", type=int, default=10, help="RePaint: steps per resampling jump")
    p.add_argument("--jump-n-sample", type=int, default=1, help="RePaint: resamplings per jump (1: none)")
    p.add_argument("--label", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="diffusion sampling steps")
    p.add_argument("--scale", type=int, default=4, help="each pixel drawn scale x scale in the PNG")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.set_defaults(fn=_cmd_edit)

    p = sub.add_parser("interpolate", help="frames between two seeds (slerp of the latent / initial noise)")
    p.add_argument("run")
    p.add_argument("--seeds", type=int, nargs=2, required=True, metavar=("A", "B"))
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--out", required=True, help="a PNG strip, or an animated GIF when the name ends in .gif")
    p.add_argument("--label", type=int, default=None)
    p.add_argument("--steps", type=int, default=None, help="diffusion sampling steps")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.set_defaults(fn=_cmd_interpolate)

    p = sub.add_parser("complete", help="transformer: keep an image's first rows, sample the rest")
    p.add_argument("run")
    p.add_argument("--input", required=True, help="PNG/JPEG of any size")
    p.add_argument("--rows", type=int, required=True, help="pixel rows kept from the top")
    p.add_argument("--out", required=True)
    p.add_argument("--label", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.set_defaults(fn=_cmd_complete)

    p = sub.add_parser("demo", help="the main job: train all four families briefly on the digits")
    p.add_argument("--out", default="pixelforge-demo", help="folder for the sample grids")
    p.add_argument("--quick", action="store_true", help="a few steps each (a smoke test)")
    p.set_defaults(fn=_cmd_demo)

    p = sub.add_parser("serve", help="the studio: a local web page and JSON API over trained runs "
                                     "(needs pip install \"pixelforge[serve]\")")
    p.add_argument("runs", nargs="+", help="run folders (or a folder of runs, e.g. pixelforge-demo)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: this machine only; "
                                                        "any other needs --token)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--token", default=None, help="a secret every request must carry (Bearer header or ?token=)")
    p.add_argument("--queue", type=int, default=16, help="jobs waiting at most; more get HTTP 429")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.set_defaults(fn=_cmd_serve)

    # `pixelforge bench ...` is parsed by pixelforge.benchmarks (listed here for --help)
    sub.add_parser("bench", help="time every op and impl against NumPy/torch (pixelforge bench --help)",
                   add_help=False)
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:
        from . import benchmarks  # noqa: PLC0415
        return int(benchmarks.main(argv[1:]) or 0)
    args = parser.parse_args(argv)
    try:
        return int(args.fn(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (ValueError, TypeError, FileNotFoundError, NotImplementedError) as e:
        print(f"pixelforge {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
