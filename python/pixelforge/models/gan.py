"""GAN family: DCGAN-style generator (linear -> transposed convolutions, GroupNorm, leaky
ReLU, tanh) and discriminator (strided convolutions with spectral normalisation, leaky ReLU,
projection head when conditional); non-saturating or hinge loss; Adam with beta1 = 0.5; an
EMA copy of the generator samples.

For (C, H, W) with k = ``halvings(H, W)`` stages (8x8 and 28x28: 2, 32x32: 3): G maps z
(z_dim) to (2ch, H/2^k, W/2^k), then k stride-2 transposed convs (channels 2ch ... 2ch, ch,
ch/2 at full size) and a 3x3 conv to C channels. D mirrors it with k stride-2 convs.
"""
from __future__ import annotations

import numpy as np

from .. import _backend
from .. import functional as F
from .. import nn, optim
from ..tensor import Tensor
from .base import GenerativeModel, halvings


def stage_widths(ch, k):
    """Channels at resolution H/2^j, j = 0..k: ch/2 at full size, ch at half, 2ch below."""
    return [ch // 2, ch] + [2 * ch] * (k - 1)


class SNConv2d(nn.Module):
    """Conv2d whose weight is divided by its largest singular value, estimated by one power
    iteration per training forward (u persists as a buffer; sigma is differentiated, u and v
    are not), as in Miyato et al. 2018."""

    def __init__(self, cin, cout, k, stride=1, padding=0, enabled=True):
        super().__init__()
        self.enabled = enabled
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=padding)
        g = nn.init.generator()
        u = g.standard_normal(cout).astype(np.float32)
        self.register_buffer("u", u / np.linalg.norm(u))

    def sn_weight(self):
        w = self.conv.weight
        wm = w.data.reshape(w.shape[0], -1)
        xp = _backend.xp_of(wm)
        u = self.u
        if self.training:
            v = wm.T @ u
            v /= xp.linalg.norm(v) + 1e-12
            u = wm @ v
            u /= xp.linalg.norm(u) + 1e-12
            self.u[...] = u
        v = wm.T @ u
        v /= xp.linalg.norm(v) + 1e-12
        sigma = (w.reshape(w.shape[0], -1) @ Tensor(v.reshape(-1, 1))).reshape(-1) @ Tensor(u)
        return w / sigma

    def forward(self, x):
        c = self.conv
        return F.conv2d(x, self.sn_weight() if self.enabled else c.weight, c.bias, stride=c.stride, padding=c.padding)


class Generator(nn.Module):
    def __init__(self, shape, z_dim, ch, num_classes):
        super().__init__()
        c, h, w = shape
        self.k = halvings(h, w)
        wd = stage_widths(ch, self.k)
        self.h0, self.w0, self.c0 = h >> self.k, w >> self.k, wd[self.k]
        self.label_emb = nn.Embedding(num_classes, z_dim) if num_classes else None
        self.fc = nn.Linear(z_dim, self.c0 * self.h0 * self.w0)
        self.norm0 = nn.GroupNorm(8, self.c0)
        for i in range(1, self.k + 1):  # up{i}: H/2^(k-i+1) -> H/2^(k-i)
            setattr(self, f"up{i}", nn.ConvTranspose2d(wd[self.k - i + 1], wd[self.k - i], 4, stride=2, padding=1))
            setattr(self, f"norm{i}", nn.GroupNorm(8, wd[self.k - i]))
        self.out = nn.Conv2d(wd[0], c, 3, padding=1)

    def forward(self, z, labels=None):
        if self.label_emb is not None:
            z = z * self.label_emb(labels)  # multiplicative conditioning keeps z's scale
        h = self.fc(z).reshape(z.shape[0], self.c0, self.h0, self.w0)
        h = F.leaky_relu(self.norm0(h), 0.2)
        for i in range(1, self.k + 1):
            h = F.leaky_relu(getattr(self, f"norm{i}")(getattr(self, f"up{i}")(h)), 0.2)
        return F.tanh(self.out(h))


class Discriminator(nn.Module):
    def __init__(self, shape, ch, num_classes, spectral_norm=True):
        super().__init__()
        c, h, w = shape
        self.k = halvings(h, w)
        wd = stage_widths(ch, self.k)
        self.c1 = SNConv2d(c, wd[0], 3, padding=1, enabled=spectral_norm)
        for j in range(1, self.k + 1):  # c{j+1}: H/2^(j-1) -> H/2^j
            setattr(self, f"c{j + 1}", SNConv2d(wd[j - 1], wd[j], 4, stride=2, padding=1, enabled=spectral_norm))
        feat = wd[self.k] * (h >> self.k) * (w >> self.k)
        self.fc = nn.Linear(feat, 1)
        self.proj = nn.Embedding(num_classes, feat) if num_classes else None

    def forward(self, x, labels=None):
        h = F.leaky_relu(self.c1(x), 0.2)
        for j in range(1, self.k + 1):
            h = F.leaky_relu(getattr(self, f"c{j + 1}")(h), 0.2)
        h = h.reshape(x.shape[0], -1)
        out = self.fc(h).reshape(-1)
        if self.proj is not None:
            out = out + (self.proj(labels) * h).sum(dim=1)
        return out


class GAN(GenerativeModel):
    """Config: z_dim, g_ch, d_ch, spectral_norm (of D's convolutions), loss ("nonsaturating" | "hinge"), lr_g, lr_d, beta1, beta2,
    ema_decay, init_seed."""

    family = "gan"
    DEFAULTS = dict(z_dim=64, g_ch=64, d_ch=64, spectral_norm=True, loss="nonsaturating", lr_g=2e-4, lr_d=2e-4, beta1=0.5,
                    beta2=0.999, ema_decay=0.999, init_seed=0)
    DEFAULT_STEPS = 4000
    LARGE_STEPS = 3300

    def _build(self):
        c = self.config
        if c["loss"] not in ("nonsaturating", "hinge"):
            raise ValueError(f"loss: expected 'nonsaturating' or 'hinge', got {c['loss']!r}")
        if int(c["g_ch"]) % 16 or int(c["d_ch"]) % 2:
            raise ValueError("g_ch: must be a multiple of 16 (GroupNorm of 8 groups on g_ch/2)")
        self.G = Generator(self.image_shape, int(c["z_dim"]), int(c["g_ch"]), self.num_classes)
        self.D = Discriminator(self.image_shape, int(c["d_ch"]), self.num_classes, bool(c["spectral_norm"]))
        self.G_ema = Generator(self.image_shape, int(c["z_dim"]), int(c["g_ch"]), self.num_classes)
        self.G_ema.load_state_dict(self.G.state_dict())

    def _build_optimizers(self):
        c = self.config
        betas = (float(c["beta1"]), float(c["beta2"]))
        self.opt_g = optim.Adam(self.G.parameters(), lr=float(c["lr_g"]), betas=betas)
        self.opt_d = optim.Adam(self.D.parameters(), lr=float(c["lr_d"]), betas=betas)
        self.ema = optim.EMA(self.G, decay=float(c["ema_decay"]), warmup=True)

    def _optimizers(self):
        return {"opt_g": self.opt_g, "opt_d": self.opt_d, "ema": self.ema}

    def _modules(self):
        return {"G": self.G, "D": self.D, "G_ema": self.G_ema}

    def _d_losses(self, real_logits, fake_logits):
        if self.config["loss"] == "hinge":
            return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
        xp = self.xp
        ones = Tensor(xp.ones(real_logits.shape, np.float32))
        zeros = Tensor(xp.zeros(fake_logits.shape, np.float32))
        return (F.binary_cross_entropy_with_logits(real_logits, ones)
                + F.binary_cross_entropy_with_logits(fake_logits, zeros))

    def _g_loss(self, fake_logits):
        if self.config["loss"] == "hinge":
            return -fake_logits.mean()
        return F.binary_cross_entropy_with_logits(fake_logits, Tensor(self.xp.ones(fake_logits.shape, np.float32)))

    def _train_step(self, x, y, rng, step, total):
        n = len(x)
        real = Tensor(self._dev(x) * 2 - 1)
        z = Tensor(self._randn((n, int(self.config["z_dim"])), rng))
        fake_labels = None if y is None else rng.integers(0, self.num_classes, n)
        fake = self.G(z, fake_labels)
        # discriminator step on a detached fake
        d_loss = self._d_losses(self.D(real, y), self.D(fake.detach(), fake_labels))
        self.opt_d.zero_grad()
        d_loss.backward()
        self.opt_d.step()
        # generator step
        g_loss = self._g_loss(self.D(fake, fake_labels))
        self.opt_g.zero_grad()
        self.D.zero_grad()
        g_loss.backward()
        self.opt_g.step()
        self.ema.update()
        return {"d_loss": d_loss.data, "g_loss": g_loss.data}

    def _after_fit(self, images, labels):
        self.ema.copy_to(self.G_ema)

    def _sample(self, n, labels, rng, truncation=None):
        return self._from_latent(self._latent(n, labels, rng), labels, truncation)

    def _latent(self, n, labels, rng):
        return self._randn((n, int(self.config["z_dim"])), rng)

    def _from_latent(self, z, labels, truncation=None):
        if truncation is not None:
            z = self.xp.clip(z, -float(truncation), float(truncation))
        return (self.G_ema(Tensor(z), labels).data + 1) / 2
