"""A family's whole training step against a PyTorch twin: the same layers, shapes, initial
weights (copied), losses, optimizer and batch, checked to agree before anything is timed; each
library then timed in its own process (torch's OpenMP and pixelforge's never share one).

  python bench/bench_family_step.py [--family gan] [--sizes 8 28] [--threads 1 2] [--steps 20]

So far the GAN has a twin (issue 21 asks for all four families): generator (linear, GroupNorm,
stride-2 transposed convs, tanh) and discriminator (convs with spectral normalisation computed
exactly as pixelforge does it, leaky ReLU, linear head), non-saturating loss, Adam (0.5, 0.999)
on each, EMA of G with warm-up. Prints a markdown table: ms per step, torch / pixelforge.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np


def shape_of(size):
    return (1, size, size)


def batch(size, n, seed=0):
    import pixelforge as pf
    if size == 8:
        x, _ = pf.data.load_digits()
    else:
        x = np.random.default_rng(seed).random((1024, 1, size, size), dtype=np.float32)   # real data not needed to time
    return x[np.random.default_rng(seed).integers(0, len(x), n)]


# ------------------------------------------------------------------------ the torch twin
def torch_gan(pf_model):
    """torch modules with pixelforge's GAN's structure and weights (names match its state dict)."""
    import torch
    import torch.nn.functional as tF
    from torch import nn

    G, D = pf_model.G, pf_model.D

    class TG(nn.Module):
        def __init__(self):
            super().__init__()
            self.k, self.h0, self.w0, self.c0 = G.k, G.h0, G.w0, G.c0
            self.fc = nn.Linear(G.fc.in_features, G.fc.out_features)
            self.norm0 = nn.GroupNorm(8, G.c0)
            for i in range(1, G.k + 1):
                up = getattr(G, f"up{i}")
                setattr(self, f"up{i}", nn.ConvTranspose2d(up.in_channels, up.out_channels, 4, 2, 1))
                setattr(self, f"norm{i}", nn.GroupNorm(8, up.out_channels))
            self.out = nn.Conv2d(G.out.in_channels, G.out.out_channels, 3, padding=1)

        def forward(self, z):
            h = tF.leaky_relu(self.norm0(self.fc(z).reshape(len(z), self.c0, self.h0, self.w0)), 0.2)
            for i in range(1, self.k + 1):
                h = tF.leaky_relu(getattr(self, f"norm{i}")(getattr(self, f"up{i}")(h)), 0.2)
            return torch.tanh(self.out(h))

    class SNConv(nn.Module):
        """pixelforge's SNConv2d: one power iteration per training forward, then v once more
        from the new u; sigma = u . W v, differentiated through W only."""

        def __init__(self, src):
            super().__init__()
            c = src.conv
            self.conv = nn.Conv2d(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding)
            self.register_buffer("u", torch.zeros(c.out_channels))

        def forward(self, x):
            w = self.conv.weight
            wm = w.reshape(w.shape[0], -1)
            with torch.no_grad():
                v = wm.t() @ self.u
                v /= v.norm() + 1e-12
                u = wm @ v
                u /= u.norm() + 1e-12
                self.u.copy_(u)
                v = wm.t() @ u
                v /= v.norm() + 1e-12
            sigma = (wm @ v) @ u
            return tF.conv2d(x, w / sigma, self.conv.bias, self.conv.stride, self.conv.padding)

    class TD(nn.Module):
        def __init__(self):
            super().__init__()
            self.k = D.k
            for j in range(1, D.k + 2):
                setattr(self, f"c{j}", SNConv(getattr(D, f"c{j}")))
            self.fc = nn.Linear(D.fc.in_features, 1)

        def forward(self, x):
            h = x
            for j in range(1, self.k + 2):
                h = tF.leaky_relu(getattr(self, f"c{j}")(h), 0.2)
            return self.fc(h.reshape(len(x), -1)).reshape(-1)

    tg, td, tg_ema = TG(), TD(), TG()
    for mod, src in ((tg, G), (td, D), (tg_ema, pf_model.G_ema)):
        state = {k: torch.from_numpy(np.array(v)) for k, v in src.state_dict().items()}
        mod.load_state_dict(state)
    return tg, td, tg_ema


def torch_gan_step(pf_model, tg, td, tg_ema):
    import torch
    import torch.nn.functional as tF
    c = pf_model.config
    betas = (c["beta1"], c["beta2"])
    opt_g = torch.optim.Adam(tg.parameters(), lr=c["lr_g"], betas=betas)
    opt_d = torch.optim.Adam(td.parameters(), lr=c["lr_d"], betas=betas)
    ema_params = list(tg_ema.parameters())
    g_params = list(tg.parameters())
    state = {"n": 0}

    def step(x, z):
        real = x * 2 - 1
        fake = tg(z)
        rl, fl = td(real), td(fake.detach())
        d_loss = (tF.binary_cross_entropy_with_logits(rl, torch.ones_like(rl))
                  + tF.binary_cross_entropy_with_logits(fl, torch.zeros_like(fl)))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        gl = td(fake)
        g_loss = tF.binary_cross_entropy_with_logits(gl, torch.ones_like(gl))
        opt_g.zero_grad()
        td.zero_grad()
        g_loss.backward()
        opt_g.step()
        decay = min(c["ema_decay"], (1 + state["n"]) / (10 + state["n"]))     # EMA with warm-up
        state["n"] += 1
        with torch.no_grad():
            torch._foreach_mul_(ema_params, decay)
            torch._foreach_add_(ema_params, g_params, alpha=1 - decay)
        return float(d_loss.detach()), float(g_loss.detach())

    return step


# ------------------------------------------------------------------------ agreement, timing
def check_agreement(size):
    """One step in both from the same weights, batch and z: losses and every updated weight."""
    import torch
    import pixelforge as pf
    torch.set_default_dtype(torch.float32)
    m = pf.models.create("gan", shape_of(size))
    tg, td, tg_ema = torch_gan(m)
    step = torch_gan_step(m, tg, td, tg_ema)
    x = batch(size, 128)
    rng = np.random.default_rng(1)
    z = m._randn((128, int(m.config["z_dim"])), np.random.default_rng(1))    # what _train_step draws first
    losses = m._train_step(x, None, rng, 0, 10)
    t_losses = step(torch.from_numpy(x), torch.from_numpy(np.asarray(z)))
    off, total, worst = 0, 0, 0.0
    for mod, tmod in ((m.G, tg), (m.D, td)):
        tstate = tmod.state_dict()
        for k, v in mod.state_dict().items():
            d = np.abs(np.asarray(v, np.float64) - tstate[k].detach().numpy().astype(np.float64))
            off, total, worst = off + int((d > 1e-6).sum()), total + d.size, max(worst, float(d.max()))
    return {"d_loss_rel": abs(float(losses["d_loss"]) - t_losses[0]) / abs(t_losses[0]),
            "g_loss_rel": abs(float(losses["g_loss"]) - t_losses[1]) / abs(t_losses[1]),
            # Adam's first step is lr * sign(grad): a weight whose gradient is ~0 in both may move
            # either way, so a few weights differ by up to 2 lr; all others within 1e-6
            "weights_off_1e-6": off / total, "max_abs_in_lr": worst / float(m.config["lr_g"])}


def agrees(a):
    return a["d_loss_rel"] < 1e-5 and a["g_loss_rel"] < 1e-5 and a["weights_off_1e-6"] < 1e-3 and a["max_abs_in_lr"] <= 2


def child(spec):
    lib, size, threads, steps = spec["lib"], spec["size"], spec["threads"], spec["steps"]
    import pixelforge as pf
    x = batch(size, 128)
    m = pf.models.create("gan", shape_of(size))
    times = []
    if lib == "pixelforge":
        rng = np.random.default_rng(0)
        from pixelforge._memory import memory_pool
        with memory_pool():                                     # as fit runs it
            for i in range(steps + 3):
                t0 = time.perf_counter()
                m._train_step(x, None, rng, i, steps + 3)
                times.append(time.perf_counter() - t0)
    else:
        import torch
        torch.set_num_threads(threads)
        tg, td, tg_ema = torch_gan(m)
        step = torch_gan_step(m, tg, td, tg_ema)
        xt = torch.from_numpy(x)
        for i in range(steps + 3):
            z = torch.randn(128, int(m.config["z_dim"]))
            t0 = time.perf_counter()
            step(xt, z)
            times.append(time.perf_counter() - t0)
    return statistics.median(times[3:]) * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="gan", choices=["gan"])
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 28])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(child(json.loads(a.child)))
        return
    rows = []
    for size in a.sizes:
        agree = check_agreement(size)
        print(f"{a.family} {size}x{size}: agreement after one step {agree}", flush=True)
        if not agrees(agree):
            raise SystemExit(f"the twin does not agree at {size}x{size}: {agree}")
        for threads in a.threads:
            ms = {"pixelforge": [], "torch": []}
            for _ in range(a.rounds):
                for lib in ms:
                    spec = {"lib": lib, "size": size, "threads": threads, "steps": a.steps}
                    # every pool in the process: OpenMP (ours, torch's), Numba's, NumPy's OpenBLAS
                    env = {**os.environ, **{v: str(threads) for v in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS",
                                                                       "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}
                    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], env=env,
                                         capture_output=True, text=True, timeout=900)
                    if out.returncode:
                        raise SystemExit(out.stderr[-3000:])
                    ms[lib].append(float(out.stdout.strip().splitlines()[-1]))
            p, t = statistics.median(ms["pixelforge"]), statistics.median(ms["torch"])
            rows.append((size, threads, p, t))
            print(f"  {threads} thread(s): pixelforge {p:.1f} ms, torch {t:.1f} ms, torch/pf {t / p:.2f}", flush=True)
    print(f"\n| {a.family} step, batch 128 | threads | pixelforge ms | torch ms | torch ÷ pixelforge |")
    print("|---|---:|---:|---:|---:|")
    for size, threads, p, t in rows:
        print(f"| {size}×{size} | {threads} | {p:.1f} | {t:.1f} | {t / p:.2f} |")


if __name__ == "__main__":
    main()
