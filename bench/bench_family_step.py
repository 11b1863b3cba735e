"""A family's whole training step against a PyTorch twin: the same layers, shapes, initial
weights (copied), losses, optimizer, learning-rate schedule, EMA and batch, checked to agree
before anything is timed; each library then timed in its own process (torch's OpenMP and
pixelforge's never share one).

  python bench/bench_family_step.py [--family gan vae transformer diffusion] [--sizes 8 28]
                                    [--threads 1 2] [--steps 20] [--rounds 3] [--precision bfloat16]

--precision bfloat16: mixed precision on both sides (pixelforge's model.to(dtype="bfloat16"),
torch.autocast("cpu", dtype=torch.bfloat16) around the twin's step; float32 weights and
optimizer state in both); the agreement check stays float32.

Each model is ``pf.models.create(family, (1, size, size))``: the digits' defaults at 8x8, the
Fashion-MNIST defaults at 28x28 (``size_defaults``); the batch is the family's ``DEFAULT_BATCH``
(what ``fit`` uses) and the step is the family's own ``_train_step``, as ``fit`` runs it.

The twins:
- gan: generator (linear, GroupNorm, stride-2 transposed convs, tanh) and discriminator (convs
  with spectral normalisation computed exactly as pixelforge does it, leaky ReLU, linear head),
  non-saturating loss, Adam (0.5, 0.999) on each, EMA of G with warm-up.
- vae: conv encoder (SiLU, stride-2 convs) -> (mu, logvar), z = mu + exp(logvar / 2) eps,
  transposed-conv decoder -> logits; loss = Bernoulli reconstruction summed over pixels / N +
  beta * KL with the linear KL warm-up over ``kl_warmup`` of the steps; Adam with warm-up +
  cosine learning rate.
- transformer: ImageGPT-style pixels as tokens (8x8: one token per pixel value, 17 levels;
  28x28: one token per 2x2 patch, the nearest of 256 codebook patches that fit learns first by
  k-means, here on the benchmark's batch data), token + position embeddings, pre-norm blocks of
  causal multi-head attention (one packed in-projection) and a GELU MLP, next-token cross
  entropy, AdamW with warm-up + cosine learning rate. The tokenisation is part of both steps.
- diffusion: the UNet exported with ``m.save_diffusers`` and loaded as diffusers'
  ``UNet2DModel``, diffusers' ``DDPMScheduler.add_noise`` on the same noise schedule (linear at
  8x8, squaredcos_cap_v2 at 28x28), uniform timesteps, epsilon-prediction MSE (min-SNR-5
  weighted at 28x28), Adam with warm-up + cosine learning rate, EMA with warm-up.

Agreement: one step from the same weights and batch, with the step's random draws (GAN: z;
VAE: eps; diffusion: timesteps and noise) reproduced from pixelforge's generator and handed to
the twin; then every loss, every gradient, every updated weight and EMA average is compared.
No family has dropout or another draw that cannot be reproduced. When timing, each library
draws its own random numbers inside the timed step. Prints a markdown table: ms per step,
torch / pixelforge.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types

import numpy as np

FAMILY_NAMES = ("gan", "vae", "transformer", "diffusion")


def shape_of(size):
    return (1, size, size)


def batch(size, n, seed=0):
    import pixelforge as pf
    if size == 8:
        x, _ = pf.data.load_digits()
    else:
        x = np.random.default_rng(seed).random((1024, 1, size, size), dtype=np.float32)   # real data not needed to time
    return x[np.random.default_rng(seed).integers(0, len(x), n)]


def make_model(family, size):
    """The family's default model for (1, size, size), prepared as ``fit`` prepares a fresh one
    (the 28x28 transformer learns its patch codebook first): both processes build the same."""
    import pixelforge as pf
    # diffusion: one network, as the twins have (28x28's default autoguidance adds a second
    # network at sampling: twice the work for both libraries alike, a quality choice)
    m = pf.models.create(family, shape_of(size), **({"autoguidance": 1.0} if family == "diffusion" else {}))
    if family == "transformer" and m.patch > 1:
        x = batch(size, 1024)
        m._prepare_fit(x, None)
    return m


def warmup_cosine(step, base_lr, warmup, total):
    """The twins' learning rate: linear warm-up reaching base_lr at step warmup - 1, then cosine
    to 0 at total (the schedule pixelforge's families use; torch's LambdaLR has no such preset)."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * base_lr * (1 + math.cos(math.pi * t))


def load_weights(tmod, pf_module):
    """Copy a pixelforge module's state dict (parameters and buffers) into a torch module of
    the same names; strict, so a twin that misses or adds a weight fails here."""
    import torch
    tmod.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in pf_module.state_dict().items()})


def ema_update(state, decay_cfg, ema_params, params):
    """EMA with pixelforge's warm-up: decay min(decay, (1 + n) / (10 + n)) at update n."""
    import torch
    decay = min(decay_cfg, (1 + state["n"]) / (10 + state["n"]))
    state["n"] += 1
    with torch.no_grad():
        torch._foreach_mul_(ema_params, decay)
        torch._foreach_add_(ema_params, params, alpha=1 - decay)


# A twin is a SimpleNamespace: step(x, i, total, draws=None) runs training step i of total on
# the batch x (a torch tensor in [0, 1]) and returns the losses under pixelforge's names
# (draws: the step's random inputs as pixelforge drew them; None: torch draws its own);
# pairs: (pixelforge module, torch module) compared weight by weight and gradient by gradient;
# ema: (pixelforge EMA, torch module holding the twin's averages) or None.

# ------------------------------------------------------------------------ GAN
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
        load_weights(mod, src)
    return tg, td, tg_ema


def twin_gan(m):
    import torch
    import torch.nn.functional as tF
    tg, td, tg_ema = torch_gan(m)
    c = m.config
    betas = (c["beta1"], c["beta2"])
    opt_g = torch.optim.Adam(tg.parameters(), lr=c["lr_g"], betas=betas)
    opt_d = torch.optim.Adam(td.parameters(), lr=c["lr_d"], betas=betas)
    ema_params, g_params = list(tg_ema.parameters()), list(tg.parameters())
    state = {"n": 0}

    def step(x, i, total, draws=None):
        real = x * 2 - 1
        z = torch.randn(len(x), int(c["z_dim"])) if draws is None else draws
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
        ema_update(state, c["ema_decay"], ema_params, g_params)
        return {"d_loss": float(d_loss.detach()), "g_loss": float(g_loss.detach())}

    return types.SimpleNamespace(step=step, pairs=[(m.G, tg), (m.D, td)], ema=(m.ema, tg_ema))


def draws_gan(m, n, rng):
    import torch
    return torch.from_numpy(np.asarray(m._randn((n, int(m.config["z_dim"])), rng)))     # what _train_step draws first


# ------------------------------------------------------------------------ VAE
def twin_vae(m):
    import torch
    import torch.nn.functional as tF
    from torch import nn

    E, Dd = m.enc, m.dec

    class TEnc(nn.Module):
        def __init__(self):
            super().__init__()
            self.k, self.z_dim = E.k, E.z_dim
            for j in range(1, E.k + 2):
                c = getattr(E, f"c{j}")
                setattr(self, f"c{j}", nn.Conv2d(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding))
            self.fc = nn.Linear(E.fc.in_features, E.fc.out_features)

        def forward(self, x):
            h = x
            for j in range(1, self.k + 2):
                h = tF.silu(getattr(self, f"c{j}")(h))
            out = self.fc(h.reshape(len(x), -1))
            return out[:, :self.z_dim], out[:, self.z_dim:]

    class TDec(nn.Module):
        def __init__(self):
            super().__init__()
            self.k, self.h0, self.w0, self.ch = Dd.k, Dd.h0, Dd.w0, Dd.ch
            self.fc = nn.Linear(Dd.fc.in_features, Dd.fc.out_features)
            for i in range(1, Dd.k + 1):
                up = getattr(Dd, f"up{i}")
                setattr(self, f"up{i}", nn.ConvTranspose2d(up.in_channels, up.out_channels, 4, 2, 1))
            self.out = nn.Conv2d(Dd.out.in_channels, Dd.out.out_channels, 3, padding=1)

        def forward(self, z):
            h = tF.silu(self.fc(z)).reshape(len(z), self.ch, self.h0, self.w0)
            for i in range(1, self.k + 1):
                h = tF.silu(getattr(self, f"up{i}")(h))
            return self.out(h)          # logits

    te, tdec = TEnc(), TDec()
    load_weights(te, E)
    load_weights(tdec, Dd)
    c = m.config
    opt = torch.optim.Adam(list(te.parameters()) + list(tdec.parameters()), lr=c["lr"])

    def step(x, i, total, draws=None):
        for g in opt.param_groups:
            g["lr"] = warmup_cosine(i, float(c["lr"]), min(100, total // 10), total)
        mu, logvar = te(x)
        eps = torch.randn_like(mu) if draws is None else draws
        z = mu + torch.exp(0.5 * logvar) * eps
        logits = tdec(z)
        recon = tF.binary_cross_entropy_with_logits(logits, x, reduction="sum") / len(x)
        kl = (-0.5 * (1 + logvar - mu * mu - logvar.exp()).sum(dim=1)).mean()
        warm = float(c["kl_warmup"]) * total
        beta = float(c["beta"]) * (min(1.0, (i + 1) / warm) if warm > 0 else 1.0)
        loss = recon + beta * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": float(loss.detach()), "recon": float(recon.detach()), "kl": float(kl.detach())}

    return types.SimpleNamespace(step=step, pairs=[(E, te), (Dd, tdec)], ema=None)


def draws_vae(m, n, rng):
    """eps of the step's reparameterisation: pf.random's stream for the seed the step draws first."""
    import torch
    import pixelforge as pf
    seed = int(rng.integers(0, 2 ** 62))
    return torch.from_numpy(pf.random.randn((n, int(m.config["z_dim"])), seed=seed, offset=0))


# ------------------------------------------------------------------------ transformer
def torch_transformer(m):
    """The PixelTransformer in torch (names match pixelforge's state dict, codebook included),
    with a KV cache for decoding (bench_family_sample.py uses it too)."""
    import torch
    import torch.nn.functional as tF
    from torch import nn

    net = m.net
    d, heads = int(m.config["d_model"]), int(m.config["heads"])

    class Attn(nn.Module):
        def __init__(self):
            super().__init__()
            self.in_proj = nn.Linear(d, 3 * d)        # q, k, v packed, as pixelforge's Attention
            self.out_proj = nn.Linear(d, d)

        def forward(self, x, cache=None):
            b, l, _ = x.shape
            q, k, v = (t.reshape(b, l, heads, d // heads).transpose(1, 2) for t in self.in_proj(x).split(d, dim=2))
            if cache is not None:
                if cache[0] is not None:
                    k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
                cache[0], cache[1] = k, v
            # decoding feeds one token that attends to everything cached; torch's is_causal
            # aligns the mask top-left, which would hide the cache from it
            o = tF.scaled_dot_product_attention(q, k, v, is_causal=cache is None)
            return self.out_proj(o.transpose(1, 2).reshape(b, l, d))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.attn, self.ln2 = nn.LayerNorm(d), Attn(), nn.LayerNorm(d)
            self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

        def forward(self, x, cache=None):
            x = x + self.attn(self.ln1(x), cache)
            return x + self.fc2(tF.gelu(self.fc1(self.ln2(x))))

    class TNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(net.tok.weight.shape[0], d)
            self.pos = nn.Embedding(net.pos.weight.shape[0], d)
            self.blocks = nn.ModuleList([Block() for _ in net.blocks])
            self.ln = nn.LayerNorm(d)
            self.head = nn.Linear(d, net.levels)
            if m.patch > 1:
                self.register_buffer("codebook", torch.zeros(tuple(net.codebook.shape)))

        def forward(self, tokens, start=0, caches=None):
            b, l = tokens.shape
            h = self.tok(tokens) + self.pos(torch.arange(start, start + l))[None]
            for i, blk in enumerate(self.blocks):
                h = blk(h, None if caches is None else caches[i])
            return self.head(self.ln(h))

    t = TNet()
    load_weights(t, net)
    return t


def torch_tokens(m, tnet, x):
    """pixelforge's ``_tokens`` in torch: quantised pixels (raster order, channels last) or the
    nearest codebook patch."""
    import torch
    n, c_, h, w = x.shape
    if m.patch == 1:
        q = torch.round(x.permute(0, 2, 3, 1).reshape(n, -1) * (m.levels - 1))
        return q.clamp(0, m.levels - 1).long()
    p, cb = m.patch, tnet.codebook
    v = x.reshape(n, c_, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(n, -1, c_ * p * p)
    return ((cb * cb).sum(1) - 2 * v @ cb.T).argmin(dim=2)


def twin_transformer(m):
    import torch
    import torch.nn.functional as tF
    tnet = torch_transformer(m)
    c = m.config
    opt = torch.optim.AdamW(tnet.parameters(), lr=c["lr"], weight_decay=c["weight_decay"])

    def step(x, i, total, draws=None):
        for g in opt.param_groups:
            g["lr"] = warmup_cosine(i, float(c["lr"]), int(c["warmup"]), total)
        tok = torch_tokens(m, tnet, x)
        inp = torch.cat([torch.full((len(x), 1), m.levels), tok[:, :-1]], dim=1)     # after the start token
        logits = tnet(inp)
        loss = tF.cross_entropy(logits.reshape(-1, m.levels), tok.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": float(loss.detach())}

    return types.SimpleNamespace(step=step, pairs=[(m.net, tnet)], ema=None, tnet=tnet)


def draws_transformer(m, n, rng):
    return None        # the step draws nothing


# ------------------------------------------------------------------------ diffusion
def diffusers_twin(m):
    """(diffusers UNet2DModel, diffusers scheduler config) from pixelforge's own export:
    ``save_diffusers`` writes the EMA UNet, which equals the trained one on a fresh model."""
    import diffusers
    diffusers.utils.logging.set_verbosity_error()
    with tempfile.TemporaryDirectory() as d:
        m.save_diffusers(d)
        unet = diffusers.UNet2DModel.from_pretrained(os.path.join(d, "unet"))
        sched = diffusers.DDPMScheduler.load_config(os.path.join(d, "scheduler"))
    return unet, sched


def twin_diffusion(m):
    import copy
    import diffusers
    import torch
    import torch.nn.functional as tF
    unet, sched_cfg = diffusers_twin(m)
    unet.train()
    unet_ema = copy.deepcopy(unet)
    sched = diffusers.DDPMScheduler.from_config(sched_cfg)
    c = m.config
    T = int(c["num_train_timesteps"])
    acp = sched.alphas_cumprod
    opt = torch.optim.Adam(unet.parameters(), lr=c["lr"])
    ema_params, params = list(unet_ema.parameters()), list(unet.parameters())
    state = {"n": 0}

    def step(x, i, total, draws=None):
        for g in opt.param_groups:
            g["lr"] = warmup_cosine(i, float(c["lr"]), int(c["warmup"]), total)
        x0 = x * 2 - 1
        t, noise = (torch.randint(0, T, (len(x),)), torch.randn_like(x0)) if draws is None else draws
        xt = sched.add_noise(x0, noise, t)
        target = noise if c["prediction_type"] == "epsilon" else sched.get_velocity(x0, noise, t)
        pred = unet(xt, t).sample
        if c["snr_gamma"] is None:
            loss = tF.mse_loss(pred, target)
        else:            # min-SNR-gamma weights, as pixelforge applies them (inside the squares)
            snr = acp[t] / (1 - acp[t])
            w = torch.clamp(snr, max=float(c["snr_gamma"])) / {"epsilon": snr, "v_prediction": snr + 1,
                                                               "sample": torch.ones_like(snr)}[c["prediction_type"]]
            sw = w.sqrt().reshape(-1, 1, 1, 1)
            loss = tF.mse_loss(pred * sw, target * sw)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ema_update(state, c["ema_decay"], ema_params, params)
        return {"loss": float(loss.detach())}

    return types.SimpleNamespace(step=step, pairs=[(m.unet, unet)], ema=(m.ema, unet_ema))


def draws_diffusion(m, n, rng):
    """The step's timesteps, then its noise: drawn from rng in that order, as _train_step does."""
    import torch
    t = rng.integers(0, m.schedule.num_train_timesteps, n)
    noise = m._randn((n, *m.image_shape), rng)
    return torch.from_numpy(t), torch.from_numpy(np.asarray(noise))


TWINS = {"gan": (twin_gan, draws_gan), "vae": (twin_vae, draws_vae),
         "transformer": (twin_transformer, draws_transformer), "diffusion": (twin_diffusion, draws_diffusion)}


# ------------------------------------------------------------------------ agreement, timing
def check_agreement(family, size):
    """One step in both from the same weights, batch and random draws, at step 0 of the
    family's default number of steps: losses, every gradient, every updated weight and EMA
    average."""
    import torch
    torch.set_default_dtype(torch.float32)
    # both libraries share this process: torch's idle OpenMP threads spin while pixelforge's
    # run (measured: pixelforge 7x slower beside a 2-thread torch), and speed is not measured here
    torch.set_num_threads(1)
    m = make_model(family, size)
    twin_of, draws_of = TWINS[family]
    tw = twin_of(m)
    n, total = m.DEFAULT_BATCH, m.default_steps
    x = batch(size, n)
    draws = draws_of(m, n, np.random.default_rng(1))
    losses = m._train_step(x, None, np.random.default_rng(1), 0, total)
    t_losses = tw.step(torch.from_numpy(x), 0, total, draws)
    lr = max(opt.lr for opt in m._optimizers().values() if hasattr(opt, "lr"))    # the step's
    out = {f"{k}_rel": abs(float(losses[k]) - t_losses[k]) / abs(t_losses[k]) for k in losses}
    grad_rel = 0.0
    for mod, tmod in tw.pairs:
        tparams = dict(tmod.named_parameters())
        grads = [(np.asarray(p.grad, np.float64), tparams[k].grad.double().numpy()) for k, p in mod.named_parameters()]
        floor = 1e-4 * math.sqrt(sum(float((tg * tg).sum()) for _, tg in grads))
        for g, tg in grads:
            # per tensor, relative to its norm: a sum over a batch in another order moves each
            # element by float32 rounding of the largest terms, not of the element itself; floored
            # at 1e-4 of the module's gradient norm, since a gradient that is zero in exact
            # arithmetic (attention's key bias: softmax ignores it) is rounding noise in both
            grad_rel = max(grad_rel, float(np.linalg.norm(g - tg) / max(np.linalg.norm(tg), floor)))
    pairs = [(mod.state_dict(), tmod.state_dict()) for mod, tmod in tw.pairs]
    if tw.ema is not None:
        pairs.append((tw.ema[0].state_dict(), tw.ema[1].state_dict()))
    off, total_n, worst = 0, 0, 0.0
    for state, tstate in pairs:
        for k, v in state.items():
            d = np.abs(np.asarray(v, np.float64) - tstate[k].detach().numpy().astype(np.float64))
            off, total_n, worst = off + int((d > 1e-6).sum()), total_n + d.size, max(worst, float(d.max()))
    # Adam's first step is lr * sign(grad): a weight whose gradient is ~0 in both may move
    # either way, so a few weights differ by up to 2 lr; all others within 1e-6
    return {**out, "grad_rel": grad_rel, "weights_off_1e-6": off / total_n, "max_abs_in_lr": worst / lr}


def agrees(a):
    return (all(v < 1e-5 for k, v in a.items() if k.endswith("_rel") and k != "grad_rel")    # the losses
            and a["grad_rel"] < 1e-4 and a["weights_off_1e-6"] < 1e-3 and a["max_abs_in_lr"] <= 2)


def child(spec):
    family, lib, size, threads, steps = spec["family"], spec["lib"], spec["size"], spec["threads"], spec["steps"]
    m = make_model(family, size)
    x = batch(size, m.DEFAULT_BATCH)
    total = steps + 3
    times = []
    bf16 = spec.get("precision") == "bfloat16"
    if lib == "pixelforge":
        rng = np.random.default_rng(0)
        from pixelforge._memory import memory_pool
        if bf16:
            m.to(dtype="bfloat16")                              # float32 masters, bfloat16 GEMMs/convs
        with memory_pool():                                     # as fit runs it
            for i in range(total):
                t0 = time.perf_counter()
                m._train_step(x, None, rng, i, total)
                times.append(time.perf_counter() - t0)
    else:
        import torch
        torch.set_num_threads(threads)
        step = TWINS[family][0](m).step
        xt = torch.from_numpy(x)
        import contextlib
        ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
        for i in range(total):
            t0 = time.perf_counter()
            with ctx():
                step(xt, i, total)              # draws its own random numbers, as pixelforge's step does
            times.append(time.perf_counter() - t0)
    return statistics.median(times[3:]) * 1e3


def run_child(spec, threads, script=__file__):
    """``script --child spec`` in a fresh process limited to ``threads``; its last line, a float."""
    # every pool in the process: OpenMP (ours, torch's), Numba's, NumPy's OpenBLAS
    env = {**os.environ, **{v: str(threads) for v in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS",
                                                       "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}
    out = subprocess.run([sys.executable, script, "--child", json.dumps(spec)], env=env,
                         capture_output=True, text=True, timeout=900)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return float(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", nargs="+", default=list(FAMILY_NAMES), choices=FAMILY_NAMES)
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 28])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--check-only", action="store_true", help="only the agreement checks")
    ap.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                    help="bfloat16: pixelforge's model.to(dtype='bfloat16') against torch.autocast (the "
                         "agreement check stays float32)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(child(json.loads(a.child)))
        return
    rows = []
    for family in a.family:
        for size in a.sizes:
            agree = check_agreement(family, size)
            print(f"{family} {size}x{size}: agreement after one step "
                  f"{ {k: float(f'{v:.3g}') for k, v in agree.items()} }", flush=True)
            if not agrees(agree):
                raise SystemExit(f"the {family} twin does not agree at {size}x{size}: {agree}")
            if a.check_only:
                continue
            for threads in a.threads:
                ms = {"pixelforge": [], "torch": []}
                for _ in range(a.rounds):
                    for lib in ms:
                        spec = {"family": family, "lib": lib, "size": size, "threads": threads, "steps": a.steps,
                                "precision": a.precision}
                        ms[lib].append(run_child(spec, threads))
                p, t = statistics.median(ms["pixelforge"]), statistics.median(ms["torch"])
                rows.append((family, size, threads, p, t))
                print(f"  {threads} thread(s): pixelforge {p:.1f} ms, torch {t:.1f} ms, torch/pf {t / p:.2f}",
                      flush=True)
    if rows:
        import pixelforge as pf
        batches = {f: pf.models.create(f).DEFAULT_BATCH for f in a.family}
        print(f"\n{a.precision}")
        print("\n| training step | batch | threads | pixelforge ms | torch ms | torch ÷ pixelforge |")
        print("|---|---:|---:|---:|---:|---:|")
        for family, size, threads, p, t in rows:
            print(f"| {family} {size}×{size} | {batches[family]} | {threads} | {p:.1f} | {t:.1f} | {t / p:.2f} |")


if __name__ == "__main__":
    main()
