"""UNet2DModel: pixelforge against diffusers on torch CPU, the same random weights, one process,
interleaved, medians (the harness's timer); peak memory in fresh processes.

Cases (the architectures of two public diffusers checkpoints, random weights):
  cifar10-forward     google/ddpm-cifar10-32's UNet (35.7M parameters), forward, batch 8
  cifar10-ddim50      50-step DDIM sampling of 8 images (diffusers' DDIMPipeline vs m.sample)
  cifar10-train       forward + backward + Adam, batch 8 (diffusers' model on torch)
  celebahq-forward    google/ddpm-celebahq-256's UNet (113.7M parameters), forward, batch 1
  memory              peak RSS growth of the first cifar10 forward (batch 8) over the RSS
                      with the model built (VmHWM reset first), each library in a fresh process

    PYTHONPATH=python python bench/bench_unet.py [--cases cifar10-forward ...] [--rounds 5] [--separate]
                                                 [--precision bfloat16]

--separate: each library in its own fresh process (pixelforge never imported beside torch; its
weights come from a file the parent writes), the two taking turns for --rounds rounds; the
figures are medians over rounds of each process's median call.
--precision bfloat16 (with --separate): pixelforge under pf.autocast("bfloat16"), torch under
torch.autocast("cpu", dtype=torch.bfloat16), both with float32 weights.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

import pixelforge as pf
from pixelforge.benchmarks import interleaved, torch_or_none

CIFAR10 = dict(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(128, 256, 256, 256),
               down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
               up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"), layers_per_block=2,
               attention_head_dim=None, downsample_padding=0, flip_sin_to_cos=False, freq_shift=1, norm_eps=1e-6)
CELEBAHQ = dict(CIFAR10, sample_size=256, block_out_channels=(128, 128, 256, 256, 512, 512),
                down_block_types=("DownBlock2D",) * 4 + ("AttnDownBlock2D", "DownBlock2D"),
                up_block_types=("UpBlock2D", "AttnUpBlock2D") + ("UpBlock2D",) * 4)
CASES = ("cifar10-forward", "cifar10-ddim50", "cifar10-train", "celebahq-forward", "memory")


def pair(cfg, seed=0):
    """(diffusers UNet, pixelforge UNet) with the same random weights."""
    torch = torch_or_none(threads="pixelforge")
    import diffusers  # noqa: PLC0415 - the reference, optional
    torch.manual_seed(seed)
    ref = diffusers.UNet2DModel(**cfg).eval()
    ours = pf.models.UNet2DModel(**cfg)
    ours.load_state_dict({k: v.detach().numpy().copy() for k, v in ref.state_dict().items()})
    return torch, ref, ours


def forward_case(cfg, batch, rounds):
    torch, ref, ours = pair(cfg)
    s = cfg["sample_size"]
    x = np.random.default_rng(0).standard_normal((batch, cfg["in_channels"], s, s)).astype(np.float32)
    t = np.full(batch, 500)
    xt, tt = torch.from_numpy(x), torch.from_numpy(t)

    def f_pf():
        with pf.no_grad():
            return ours(x, t).data

    def f_ref():
        with torch.no_grad():
            return ref(xt, tt).sample

    err = np.abs(f_pf() - f_ref().numpy()).max() / np.abs(f_ref().numpy()).max()
    med = interleaved({"pixelforge": f_pf, "diffusers": f_ref}, rounds, clock=time.perf_counter)
    return med, {"rel_err": float(err), "params": sum(p.numel() for p in ref.parameters())}


def ddim_case(rounds):
    torch, ref, ours = pair(CIFAR10)
    import diffusers  # noqa: PLC0415
    pipe = diffusers.DDIMPipeline(ref, diffusers.DDIMScheduler())
    pipe.set_progress_bar_config(disable=True)
    # the whole config (diffusers' defaults under CIFAR10's keys): the family's own defaults differ
    full = {**pf.models.unet.UNET_DEFAULTS, **CIFAR10}
    m = pf.models.create("diffusion", (3, 32, 32), unet={k: v for k, v in full.items()
                                                         if k not in pf.models.unet.DATA_KEYS}, autoguidance=1.0)
    m.ema_unet.load_state_dict(ours.state_dict())

    def f_pf():
        return m.sample(8, seed=0, steps=50)

    def f_ref():
        with torch.no_grad():
            return pipe(batch_size=8, num_inference_steps=50, generator=torch.Generator().manual_seed(0),
                        output_type="np").images

    return interleaved({"pixelforge": f_pf, "diffusers": f_ref}, rounds, clock=time.perf_counter), {}


def train_case(rounds):
    torch, ref, ours = pair(CIFAR10)
    ref.train()
    g = np.random.default_rng(0)
    x = g.standard_normal((8, 3, 32, 32)).astype(np.float32)
    y = g.standard_normal((8, 3, 32, 32)).astype(np.float32)
    t = g.integers(0, 1000, 8)
    xt, yt, tt = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(t)
    opt_ref = torch.optim.Adam(ref.parameters(), lr=1e-5)
    opt_pf = pf.optim.Adam(ours.parameters(), lr=1e-5)

    def f_pf():
        loss = pf.functional.mse_loss(ours(x, t), pf.Tensor(y))
        opt_pf.zero_grad()
        loss.backward()
        opt_pf.step()

    def f_ref():
        loss = torch.nn.functional.mse_loss(ref(xt, tt).sample, yt)
        opt_ref.zero_grad()
        loss.backward()
        opt_ref.step()

    return interleaved({"pixelforge": f_pf, "diffusers": f_ref}, rounds, clock=time.perf_counter), {}


_MEM = r"""
import json, sys, numpy as np
def status(key):  # kB from /proc/self/status
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
lib = sys.argv[1]
cfg = json.loads(sys.argv[2])
x = np.random.default_rng(0).standard_normal((8, 3, 32, 32)).astype(np.float32)
if lib == "diffusers":
    import torch, diffusers
    torch.set_num_threads(2)
    net = diffusers.UNet2DModel(**cfg).eval()
    xt, tt = torch.from_numpy(x), torch.full((8,), 500)
    def run():
        with torch.no_grad():
            net(xt, tt)
else:
    import pixelforge as pf
    net = pf.models.UNet2DModel(**cfg)
    def run():
        with pf.no_grad():
            net(x, np.full(8, 500))
before = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:  # reset the peak (VmHWM) to the current RSS
    f.write("5")
run()
print(json.dumps({"growth_mib": (status("VmHWM") - before) / 1024}))
"""


def memory_case():
    out = {}
    for lib in ("pixelforge", "diffusers"):
        r = subprocess.run([sys.executable, "-c", _MEM, lib, json.dumps(CIFAR10)], capture_output=True, text=True,
                           check=True, env={**os.environ})
        out[lib] = json.loads(r.stdout.strip().splitlines()[-1])["growth_mib"]
    return out


_ALONE = r"""
import json, sys, time, numpy as np
lib, case, cfg, weights, calls = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4], int(sys.argv[5])
bf16 = sys.argv[6] == "bfloat16"
batch = 1 if case.startswith("celebahq") else 8
s = cfg["sample_size"]
g = np.random.default_rng(0)
x = g.standard_normal((batch, 3, s, s)).astype(np.float32)
y = g.standard_normal((batch, 3, s, s)).astype(np.float32)
t = np.full(batch, 500)
if lib == "diffusers":
    import torch, diffusers
    torch.set_num_threads(2)
    torch.manual_seed(0)
    net = diffusers.UNet2DModel(**cfg)
    xt, yt, tt = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(t)
    if case.endswith("train"):
        opt = torch.optim.Adam(net.parameters(), lr=1e-5)
        def run():
            loss = torch.nn.functional.mse_loss(net(xt, tt).sample, yt)
            opt.zero_grad(); loss.backward(); opt.step()
    elif case.endswith("ddim50"):
        pipe = diffusers.DDIMPipeline(net.eval(), diffusers.DDIMScheduler())
        pipe.set_progress_bar_config(disable=True)
        def run():
            with torch.no_grad():
                pipe(batch_size=8, num_inference_steps=50, generator=torch.Generator().manual_seed(0), output_type="np")
    else:
        net.eval()
        def run():
            with torch.no_grad():
                net(xt, tt)
else:
    import pixelforge as pf
    state = pf.io.load(weights)
    if case.endswith("ddim50"):
        full = {**pf.models.unet.UNET_DEFAULTS, **cfg}
        m = pf.models.create("diffusion", (3, s, s), unet={k: v for k, v in full.items()
                                                          if k not in pf.models.unet.DATA_KEYS}, autoguidance=1.0)
        m.ema_unet.load_state_dict(state)
        def run():
            m.sample(8, seed=0, steps=50)
    else:
        net = pf.models.UNet2DModel(**cfg)
        net.load_state_dict(state)
        if case.endswith("train"):
            opt = pf.optim.Adam(net.parameters(), lr=1e-5)
            def run():
                loss = pf.functional.mse_loss(net(x, t), pf.Tensor(y))
                opt.zero_grad(); loss.backward(); opt.step()
        else:
            def run():
                with pf.no_grad():
                    net(x, t)
run()
ts = []
for _ in range(calls):
    t0 = time.perf_counter(); run(); ts.append(time.perf_counter() - t0)
print(json.dumps({"median_s": float(np.median(ts))}))
"""
# the precision wrapper around the child's run() (inserted before its timing loop)
_AUTOCAST = r"""
import contextlib
if bf16 and lib == "diffusers":
    ctx = lambda: torch.autocast("cpu", dtype=torch.bfloat16)
elif bf16:
    ctx = lambda: pf.autocast("bfloat16")
else:
    ctx = contextlib.nullcontext
_run = run
def run():
    with ctx():
        _run()
"""


def separate_case(case, rounds, folder, precision="float32"):
    """Medians over rounds of each library's per-process median, the processes taking turns."""
    cfg = CELEBAHQ if case.startswith("celebahq") else CIFAR10
    weights = os.path.join(folder, f"{case.split('-')[0]}.safetensors")
    if not os.path.exists(weights):
        torch, ref, _ = pair(cfg)
        pf.io.save({k: v.detach().numpy().copy() for k, v in ref.state_dict().items()}, weights)
    calls = 1 if case.endswith("ddim50") else 5
    times = {"pixelforge": [], "diffusers": []}
    for _ in range(rounds):
        for lib in times:
            child = _ALONE.replace("\nrun()\nts = []", _AUTOCAST + "\nrun()\nts = []")
            r = subprocess.run([sys.executable, "-c", child, lib, case, json.dumps(cfg), weights, str(calls), precision],
                               capture_output=True, text=True, check=True, env={**os.environ})
            times[lib].append(json.loads(r.stdout.strip().splitlines()[-1])["median_s"])
    return {k: float(np.median(v)) for k, v in times.items()}, {"rounds": rounds, "precision": precision}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--separate", action="store_true", help="each library in its own processes (see above)")
    ap.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                    help="bfloat16: both libraries under their autocast (needs --separate)")
    args = ap.parse_args(argv)
    if args.precision != "float32" and not args.separate:
        ap.error("--precision bfloat16 needs --separate")
    if torch_or_none() is None:
        print("bench_unet needs torch and diffusers (the reference)", file=sys.stderr)
        return 2
    info = pf.info()["cpu"]
    print(f"threads={info['threads']} isa={info['isa']}; torch threads={torch_or_none().get_num_threads()}")
    print("| case | pixelforge | diffusers | diffusers ÷ pixelforge | note |")
    print("|---|---:|---:|---:|---|")
    for case in args.cases:
        if case == "memory":
            m = memory_case()
            print(f"| {case} (first forward, RSS growth) | {m['pixelforge']:.0f} MiB | {m['diffusers']:.0f} MiB | "
                  f"{m['diffusers'] / max(m['pixelforge'], 1e-9):.2f} | fresh process each |", flush=True)
            continue
        if args.separate:
            with tempfile.TemporaryDirectory() as folder:
                med, note = separate_case(case, args.rounds if case != "cifar10-ddim50" else 2, folder, args.precision)
        elif case == "cifar10-forward":
            med, note = forward_case(CIFAR10, 8, args.rounds)
        elif case == "celebahq-forward":
            med, note = forward_case(CELEBAHQ, 1, max(3, args.rounds // 2))
        elif case == "cifar10-ddim50":
            med, note = ddim_case(max(3, args.rounds // 2))
        else:
            med, note = train_case(args.rounds)
        desc = ", ".join(f"{k} {v:.3g}" if isinstance(v, (int, float)) else f"{k} {v}" for k, v in note.items())
        print(f"| {case} | {med['pixelforge'] * 1e3:.0f} ms | {med['diffusers'] * 1e3:.0f} ms | "
              f"{med['diffusers'] / med['pixelforge']:.2f} | {desc} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
