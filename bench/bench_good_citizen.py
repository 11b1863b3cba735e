"""Does pixelforge change other libraries in its process? torch's training-step time, each
measurement in a fresh process, with pixelforge absent, imported and trained *before* torch is
imported (so pixelforge loads the process's libgomp), or after; and pixelforge's own step with
its memory pool on and off (PIXELFORGE_MEMORY_POOL=0).

  python bench/bench_good_citizen.py [--rounds 3] [--threads 2]

Prints a markdown table (medians over rounds; rounds interleave the modes so drift hits all).
The torch models stand in for the families' shapes (the exact PyTorch twins are issue 21's
step benchmark): a 4-layer transformer encoder (d 128, batch 64 x 64 tokens), a DCGAN-style
discriminator step at 28x28 (batch 128), and diffusers' UNet2DModel at the digits diffusion
config (8x8, batch 64) when diffusers is installed.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

MODES = ("torch alone", "pixelforge first", "torch first")


def torch_case(name):
    import torch
    torch.manual_seed(0)
    if name == "transformer":
        net = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(128, 4, 512, batch_first=True), 4)
        x = torch.randn(64, 64, 128)
        return net, lambda: net(x).pow(2).mean()
    if name == "conv 28x28":
        net = torch.nn.Sequential(
            torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.LeakyReLU(0.2), torch.nn.Conv2d(32, 64, 4, 2, 1),
            torch.nn.LeakyReLU(0.2), torch.nn.Conv2d(64, 128, 4, 2, 1), torch.nn.LeakyReLU(0.2),
            torch.nn.Flatten(), torch.nn.Linear(128 * 7 * 7, 1))
        x = torch.randn(128, 1, 28, 28)
        return net, lambda: net(x).pow(2).mean()
    from diffusers import UNet2DModel
    net = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(24, 48), layers_per_block=1,
                      down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
                      norm_num_groups=8)
    x = torch.randn(64, 1, 8, 8)
    t = torch.randint(0, 1000, (64,))
    return net, lambda: net(x, t).sample.pow(2).mean()


def pixelforge_warm(family="transformer"):
    import pixelforge as pf
    x, _ = pf.data.load_digits()
    m = pf.models.create(family, (1, 8, 8))
    m.fit(x, steps=3, progress=False)
    return m, x


def child_torch(case, mode, threads, steps=12):
    if mode == "pixelforge first":
        pixelforge_warm()
    import torch
    torch.set_num_threads(threads)
    if mode == "torch first":
        torch.ones(1)
        pixelforge_warm()
    net, loss = torch_case(case)
    opt = torch.optim.Adam(net.parameters(), 1e-4)

    def step():
        opt.zero_grad()
        loss().backward()
        opt.step()

    for _ in range(3):
        step()
    ts = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def child_pixelforge(family, steps=10):
    m, x = pixelforge_warm(family)
    ts = []
    for _ in range(3):
        t0 = time.perf_counter()
        m.fit(x, steps=steps, progress=False)
        ts.append((time.perf_counter() - t0) / steps)
    return statistics.median(ts) * 1e3


def run_child(args, env=None):
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(args)], capture_output=True, text=True,
                         env={**os.environ, **(env or {})}, timeout=900)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return float(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        c = json.loads(a.child)
        ms = child_torch(c["case"], c["mode"], c["threads"]) if c["kind"] == "torch" else child_pixelforge(c["family"])
        print(ms)
        return
    cases = ["transformer", "conv 28x28"]
    try:
        import diffusers  # noqa: F401
        cases.append("diffusers UNet 8x8")
    except ImportError:
        pass
    env = {"OMP_NUM_THREADS": str(a.threads)}
    torch_ms = {(c, m): [] for c in cases for m in MODES}
    pf_ms = {(f, pool): [] for f in ("gan", "transformer", "diffusion") for pool in ("on", "off")}
    for _ in range(a.rounds):
        for c in cases:
            for m in MODES:
                torch_ms[c, m].append(run_child({"kind": "torch", "case": c, "mode": m, "threads": a.threads}, env))
        for f, pool in pf_ms:
            e = dict(env, PIXELFORGE_MEMORY_POOL="1" if pool == "on" else "0")
            pf_ms[f, pool].append(run_child({"kind": "pf", "family": f}, e))
    print(f"\ntorch step, ms (median of {a.rounds} processes, {a.threads} threads; ratio to torch alone)\n")
    print("| torch model | " + " | ".join(MODES) + " |")
    print("|---|" + "---:|" * len(MODES))
    for c in cases:
        base = statistics.median(torch_ms[c, MODES[0]])
        cells = [f"{statistics.median(torch_ms[c, m]):.1f} ({statistics.median(torch_ms[c, m]) / base:.2f})"
                 for m in MODES]
        print(f"| {c} | " + " | ".join(cells) + " |")
    print(f"\npixelforge step (digits, default config), ms, median of {a.rounds} processes\n")
    print("| family | pool on | pool off (PIXELFORGE_MEMORY_POOL=0) | off / on |")
    print("|---|---:|---:|---:|")
    for f in ("gan", "transformer", "diffusion"):
        on, off = statistics.median(pf_ms[f, "on"]), statistics.median(pf_ms[f, "off"])
        print(f"| {f} | {on:.1f} | {off:.1f} | {off / on:.2f} |")


if __name__ == "__main__":
    main()
