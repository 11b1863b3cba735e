"""Diffusion family: a small UNet trained with DDPM on ``pf.ops.add_noise``, sampled with
``DDIMSampler`` (default 50 steps) or ``DDPMSampler``; classifier-free guidance when
conditional (labels dropped to a null class 10% of the time in training).

UNet for (C, H, W) with H, W multiples of 2 (here 8x8): conv in -> ResBlock @HxW -> strided
conv -> ResBlock @H/2 -> [ResBlock, self-attention (pf.ops.attention), ResBlock] -> ResBlock
with skip @H/2 -> nearest upsample + conv -> ResBlock with skip @HxW -> GroupNorm, SiLU, conv.
ResBlocks: GroupNorm, SiLU, conv3x3, + timestep (and class) embedding, GroupNorm, SiLU, conv3x3.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _backend
from .. import functional as F
from .. import nn, ops, optim
from .. import random as pfrandom
from ..samplers import DDIMSampler, DDPMSampler
from ..schedules import NoiseSchedule
from ..tensor import Tensor, cat
from .base import GenerativeModel


def timestep_embedding(t, dim):
    """Sinusoidal embedding of integer timesteps t (N,) -> (N, dim) float32."""
    half = dim // 2
    freqs = np.exp(-math.log(10000.0) * np.arange(half) / half)
    args = np.asarray(t, np.float64)[:, None] * freqs[None, :]
    return np.concatenate([np.cos(args), np.sin(args)], axis=1).astype(np.float32)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, emb_dim, groups=8):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, cout)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        e = self.emb(emb)
        h = h + e.reshape(e.shape[0], e.shape[1], 1, 1)
        h = self.conv2(F.silu(self.norm2(h)))
        return h + (self.skip(x) if self.skip is not None else x)


class AttnBlock(nn.Module):
    def __init__(self, ch, heads=4, groups=8):
        super().__init__()
        self.norm = nn.GroupNorm(groups, ch)
        self.attn = nn.Attention(ch, heads)

    def forward(self, x):
        b, c, h, w = x.shape
        seq = self.norm(x).reshape(b, c, h * w).transpose(1, 2)
        out = self.attn(seq).transpose(1, 2).reshape(b, c, h, w)
        return x + out


class UNet(nn.Module):
    def __init__(self, channels, base=32, emb_dim=128, num_classes=None, heads=4):
        super().__init__()
        c1, c2 = base, 2 * base
        self.base_emb = emb_dim // 2
        self.t_mlp1 = nn.Linear(self.base_emb, emb_dim)
        self.t_mlp2 = nn.Linear(emb_dim, emb_dim)
        # one extra row: the "no label" class of classifier-free guidance
        self.label_emb = nn.Embedding(num_classes + 1, emb_dim) if num_classes else None
        self.conv_in = nn.Conv2d(channels, c1, 3, padding=1)
        self.down0 = ResBlock(c1, c1, emb_dim)
        self.downsample = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        self.down1 = ResBlock(c2, c2, emb_dim)
        self.mid1 = ResBlock(c2, c2, emb_dim)
        self.mid_attn = AttnBlock(c2, heads)
        self.mid2 = ResBlock(c2, c2, emb_dim)
        self.up1 = ResBlock(2 * c2, c2, emb_dim)
        self.upsample = nn.Conv2d(c2, c1, 3, padding=1)
        self.up0 = ResBlock(2 * c1, c1, emb_dim)
        self.norm_out = nn.GroupNorm(8, c1)
        self.conv_out = nn.Conv2d(c1, channels, 3, padding=1)

    def forward(self, x, t, labels=None):
        """x (N, C, H, W) on the model's device; t (N,) host ints; labels (N,) host ints or None."""
        # the sinusoids of the host timesteps, then one copy to x's device
        temb = _backend.xp_of(x.data).asarray(timestep_embedding(t, self.base_emb))
        emb = self.t_mlp2(F.silu(self.t_mlp1(Tensor(temb))))
        if self.label_emb is not None:
            emb = emb + self.label_emb(labels)
        h0 = self.down0(self.conv_in(x), emb)
        h1 = self.down1(self.downsample(h0), emb)
        m = self.mid2(self.mid_attn(self.mid1(h1, emb)), emb)
        u1 = self.up1(cat([m, h1], dim=1), emb)
        u0 = self.upsample(F.interpolate(u1, scale_factor=2))
        u0 = self.up0(cat([u0, h0], dim=1), emb)
        return self.conv_out(F.silu(self.norm_out(u0)))


class Diffusion(GenerativeModel):
    """DDPM-trained UNet. Config: base (channels), emb_dim, heads, num_train_timesteps,
    beta_schedule, prediction_type ("epsilon" | "v_prediction"), lr, warmup, ema_decay,
    cond_drop (label dropout for guidance), sampler ("ddim" | "ddpm"), sample_steps,
    guidance_scale, init_seed."""

    family = "diffusion"
    DEFAULTS = dict(base=32, emb_dim=128, heads=4, num_train_timesteps=1000, beta_schedule="linear",
                    prediction_type="epsilon", lr=1e-3, warmup=100, ema_decay=0.995, cond_drop=0.1,
                    sampler="ddim", sample_steps=50, guidance_scale=1.0, init_seed=0)
    DEFAULT_STEPS = 2500
    DEFAULT_BATCH = 64

    def _build(self):
        c = self.config
        if c["prediction_type"] not in ("epsilon", "v_prediction"):
            raise ValueError(f"prediction_type: expected 'epsilon' or 'v_prediction', got {c['prediction_type']!r}")
        if c["sampler"] not in ("ddim", "ddpm"):
            raise ValueError(f"sampler: expected 'ddim' or 'ddpm', got {c['sampler']!r}")
        self.schedule = NoiseSchedule(num_train_timesteps=int(c["num_train_timesteps"]),
                                      beta_schedule=c["beta_schedule"])
        self.unet = UNet(self.image_shape[0], int(c["base"]), int(c["emb_dim"]), self.num_classes, int(c["heads"]))
        self.ema_unet = UNet(self.image_shape[0], int(c["base"]), int(c["emb_dim"]), self.num_classes,
                             int(c["heads"]))
        self.ema_unet.load_state_dict(self.unet.state_dict())
        self._acp = self.schedule.alphas_cumprod.astype(np.float32)
        self._noise_offset = 0

    def _build_optimizers(self):
        c = self.config
        self.opt = optim.Adam(self.unet.parameters(), lr=float(c["lr"]))
        self.ema = optim.EMA(self.unet, decay=float(c["ema_decay"]), warmup=True)

    def _optimizers(self):
        return {"opt": self.opt, "ema": self.ema}

    def _modules(self):
        return {"unet": self.unet, "ema_unet": self.ema_unet}

    def _train_step(self, x, y, rng, step, total):
        c = self.config
        lr = optim.warmup_cosine(step, float(c["lr"]), int(c["warmup"]), total)
        self.opt.lr = lr
        x0 = self._dev(x) * 2 - 1
        n = len(x0)
        t = rng.integers(0, self.schedule.num_train_timesteps, n)
        noise = self._randn(x0.shape, rng)
        xt = ops.add_noise(x0, noise, t, self._acp)
        if c["prediction_type"] == "epsilon":
            target = noise
        else:
            target = ops.get_velocity(x0, noise, t, self._acp)
        labels = None
        if self.conditional:
            labels = np.where(rng.random(n) < float(c["cond_drop"]), self.num_classes, y)
        pred = self.unet(Tensor(xt), t, labels)
        loss = F.mse_loss(pred, Tensor(target))
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.ema.update()
        return {"loss": loss.data}

    def _after_fit(self, images, labels):
        self.ema.copy_to(self.ema_unet)

    def _sample(self, n, labels, rng, steps=None, guidance_scale=None, sampler=None, batch=256):
        c = self.config
        steps = int(c["sample_steps"] if steps is None else steps)
        w = float(c["guidance_scale"] if guidance_scale is None else guidance_scale)
        kind = c["sampler"] if sampler is None else sampler
        if kind not in ("ddim", "ddpm"):
            raise ValueError(f"sampler: expected 'ddim' or 'ddpm', got {kind!r}")
        if w != 1.0 and not self.conditional:
            raise ValueError("guidance_scale: classifier-free guidance needs a conditional model")
        # guidance above 1 with clipping wrecks samples (measured): clip only without guidance
        clip = w == 1.0
        seed = int(rng.integers(0, 2 ** 62))
        xp = self.xp
        outs = []
        for start in range(0, n, batch):
            m = min(batch, n - start)
            sampler_obj = (DDIMSampler(self.schedule, prediction_type=c["prediction_type"], clip_sample=clip)
                           if kind == "ddim" else
                           DDPMSampler(self.schedule, prediction_type=c["prediction_type"], clip_sample=clip))
            sampler_obj.set_timesteps(steps)
            x = pfrandom.randn((m, *self.image_shape), seed=seed, offset=start * int(np.prod(self.image_shape)),
                               device=self.device)
            lab = None if labels is None else labels[start:start + m]
            for i, t in enumerate(sampler_obj.timesteps):
                tt = np.full(m, int(t))
                if self.conditional and w != 1.0:
                    both = self.ema_unet(Tensor(xp.concatenate([x, x])), np.concatenate([tt, tt]),
                                         np.concatenate([lab, np.full(m, self.num_classes)])).data
                    out = both[m:] + w * (both[:m] - both[m:])
                else:
                    out = self.ema_unet(Tensor(x), tt, lab).data
                x = sampler_obj.step(out, int(t), x, seed=seed + 1 + i, offset=start * x[0].size)
            outs.append(x)
        return (xp.concatenate(outs) + 1) / 2
