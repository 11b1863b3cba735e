"""bfloat16 on the CPU: pixelforge's bfloat16 kernels against its own float32 ones (the issue's
≥ 1.6× target) and torch's CPU bfloat16 (torch.autocast), at matmul's and conv2d's benchmark
shapes, each library in its own process with every thread pool limited, interleaved, medians.

    PYTHONPATH=python python bench/bench_bfloat16.py [--threads 1 2] [--rounds 3] [--only matmul conv2d]

pixelforge: f32 = the float32 kernels; bf16 = the same op under pf.autocast("bfloat16") for
matmul, and the bfloat16 kernel forced (always=True) for conv2d, so a layer the op would keep in
float32 shows why. torch: float32, and bfloat16 under torch.autocast("cpu", dtype=torch.bfloat16)
(its result rounded to bfloat16, as autocast returns it). Errors: max |result − float64| over
max |float64|, on the same inputs. Prints markdown tables: GFLOP/s (direct-convolution flops).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

MATMUL = [(256, 256, 256), (512, 512, 512), (1024, 1024, 1024), (2048, 2048, 2048), (4096, 96, 384),
          (4096, 384, 96), (64, 128, 128), (128, 64, 2048), (100, 96, 288)]
# name: N, C, H, W, K, R, stride, pad (bench_conv2d.py's A-E and the families' layers)
CONV = {"A N64 64→64 32² k3": (64, 64, 32, 32, 64, 3, 1, 1),
        "B N128 1→32 28² k3": (128, 1, 28, 28, 32, 3, 1, 1),
        "C N32 128→128 16² k3": (32, 128, 16, 16, 128, 3, 1, 1),
        "D N128 64→128 8² k4 s2": (128, 64, 8, 8, 128, 4, 2, 1),
        "GAN 28² D: N128 32→64 14² k4 s2": (128, 32, 14, 14, 64, 4, 2, 1),
        "UNet 28²: N64 64→64 28² k3": (64, 64, 28, 28, 64, 3, 1, 1),
        "cifar10 UNet: N8 256→256 16² k3": (8, 256, 16, 16, 256, 3, 1, 1),
        "cifar10 UNet: N8 256→256 8² k3": (8, 256, 8, 8, 256, 3, 1, 1)}

_CHILD = r"""
import json, os, sys, time
import numpy as np
lib, only, rounds = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3])
MATMUL, CONV = json.loads(sys.argv[4]), json.loads(sys.argv[5])
threads = int(os.environ["OMP_NUM_THREADS"])

def medians(fns, target=0.2):
    for f in fns.values(): f()
    reps = {}
    for k, f in fns.items():
        t0 = time.perf_counter(); f(); dt = time.perf_counter() - t0
        reps[k] = max(1, int(target / max(dt, 1e-6) / 5))
    ts = {k: [] for k in fns}
    for _ in range(5 * rounds):
        for k, f in fns.items():
            t0 = time.perf_counter()
            for _ in range(reps[k]): f()
            ts[k].append((time.perf_counter() - t0) / reps[k])
    return {k: float(np.median(v)) for k, v in ts.items()}

def rel(got, exact):
    return float(np.abs(np.asarray(got, np.float64) - exact).max() / np.abs(exact).max())

g = np.random.default_rng(0)
out = {}
if lib == "torch":
    import torch
    torch.set_num_threads(threads)
    bf = lambda: torch.autocast("cpu", dtype=torch.bfloat16)
else:
    import pixelforge as pf
    mod = pf._backend.cpu_module()
if "matmul" in only:
    for m, n, k in MATMUL:
        a = g.standard_normal((m, k)).astype(np.float32); b = g.standard_normal((k, n)).astype(np.float32)
        exact = a.astype(np.float64) @ b
        if lib == "torch":
            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            def f32(): return torch.matmul(ta, tb)
            def b16():
                with bf(): return torch.matmul(ta, tb)
        else:
            c = np.empty((m, n), np.float32)
            def f32(): return pf.ops.matmul(a, b, out=c)
            def b16():
                with pf.autocast("bfloat16"): return pf.ops.matmul(a, b, out=c)
        errs = {"f32": rel(np.array(f32(), np.float32) if lib != "torch" else f32().numpy(), exact),
                "bf16": rel(b16().float().numpy() if lib == "torch" else np.array(b16()), exact)}
        med = medians({"f32": f32, "bf16": b16})
        out[f"matmul {m}x{n}x{k}"] = {"flops": 2.0 * m * n * k, "s": med, "err": errs}
if "conv2d" in only:
    for name, (N, C, H, W, K, R, st, pad) in CONV.items():
        x = g.standard_normal((N, C, H, W)).astype(np.float32)
        w = (g.standard_normal((K, C, R, R)) / np.sqrt(C * R * R)).astype(np.float32)
        P = (H + 2 * pad - R) // st + 1
        flops = 2.0 * N * K * C * R * R * P * P
        if lib == "torch":
            tx, tw = torch.from_numpy(x), torch.from_numpy(w)
            exact = torch.nn.functional.conv2d(tx.double(), tw.double(), stride=st, padding=pad).numpy()
            def f32(): return torch.nn.functional.conv2d(tx, tw, stride=st, padding=pad)
            def b16():
                with bf(): return torch.nn.functional.conv2d(tx, tw, stride=st, padding=pad)
            errs = {"f32": rel(f32().numpy(), exact), "bf16": rel(b16().float().numpy(), exact)}
        else:
            exact = pf.ops.conv2d(x.astype(np.float64), w.astype(np.float64), stride=st, padding=pad)
            y = np.empty((N, K, P, P), np.float32)
            geo = [st, st, pad, pad, pad, pad, 1, 1, 1]
            def f32(): mod.conv2d_forward(x, w, None, y, geo); return y
            def b16(): mod.conv2d_forward_bf16(x, w, None, y, geo, always=True); return y
            errs = {"f32": rel(f32().copy(), exact), "bf16": rel(b16().copy(), exact)}
        med = medians({"f32": f32, "bf16": b16})
        out[f"conv2d {name}"] = {"flops": flops, "s": med, "err": errs}
print(json.dumps(out))
"""


def run_child(lib, threads, only, rounds):
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "NUMBA_NUM_THREADS": str(threads),
           "OPENBLAS_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    r = subprocess.run([sys.executable, "-c", _CHILD, lib, ",".join(only), str(rounds), json.dumps(MATMUL),
                        json.dumps(CONV)], capture_output=True, text=True, env=env, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", nargs="+", default=["matmul", "conv2d"], choices=["matmul", "conv2d"])
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args(argv)
    for th in args.threads:
        ours = run_child("pixelforge", th, args.only, args.rounds)
        theirs = None if args.no_torch else run_child("torch", th, args.only, args.rounds)
        print(f"\n{th} thread(s), GFLOP/s (error vs float64)")
        print("| shape | pf f32 | pf bf16 | bf16 ÷ f32 | torch f32 | torch bf16 | pf bf16 ÷ torch bf16 |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name, r in ours.items():
            gf = {k: r["flops"] / v / 1e9 for k, v in r["s"].items()}
            row = (f"| {name} | {gf['f32']:.0f} | {gf['bf16']:.0f} ({r['err']['bf16']:.1e}) | "
                   f"**{r['s']['f32'] / r['s']['bf16']:.2f}** |")
            if theirs and name in theirs:
                t = theirs[name]
                tg = {k: t["flops"] / v / 1e9 for k, v in t["s"].items()}
                row += (f" {tg['f32']:.0f} | {tg['bf16']:.0f} ({t['err']['bf16']:.1e}) | "
                        f"{t['s']['bf16'] / r['s']['bf16']:.2f} |")
            else:
                row += " – | – | – |"
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
