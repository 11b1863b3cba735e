"""VAE family: convolutional encoder -> (mu, logvar) -> ``pf.ops.reparameterize`` ->
convolutional decoder; loss = reconstruction (Bernoulli, summed over pixels) + beta * KL
(``pf.ops.gaussian_kl``) with a linear KL warm-up. ``sample`` decodes prior draws
(temperature scales them); ``encode`` and ``reconstruct`` too. Conditional: the label's
embedding is added to the encoder features and to the decoder input.
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .. import nn, optim
from ..tensor import Tensor
from .base import GenerativeModel


class Encoder(nn.Module):
    def __init__(self, shape, ch, z_dim, num_classes):
        super().__init__()
        c, h, w = shape
        self.c1 = nn.Conv2d(c, ch // 2, 3, padding=1)
        self.c2 = nn.Conv2d(ch // 2, ch, 4, stride=2, padding=1)
        self.c3 = nn.Conv2d(ch, ch, 4, stride=2, padding=1)
        feat = ch * (h // 4) * (w // 4)
        self.label_emb = nn.Embedding(num_classes, feat) if num_classes else None
        self.fc = nn.Linear(feat, 2 * z_dim)
        self.z_dim = z_dim

    def forward(self, x, labels=None):
        h = F.silu(self.c1(x))
        h = F.silu(self.c2(h))
        h = F.silu(self.c3(h)).reshape(x.shape[0], -1)
        if self.label_emb is not None:
            h = h + self.label_emb(labels)
        out = self.fc(h)
        return out[:, :self.z_dim], out[:, self.z_dim:]


class Decoder(nn.Module):
    def __init__(self, shape, ch, z_dim, num_classes):
        super().__init__()
        c, h, w = shape
        self.h4, self.w4, self.ch = h // 4, w // 4, ch
        self.label_emb = nn.Embedding(num_classes, z_dim) if num_classes else None
        self.fc = nn.Linear(z_dim, ch * self.h4 * self.w4)
        self.up1 = nn.ConvTranspose2d(ch, ch, 4, stride=2, padding=1)
        self.up2 = nn.ConvTranspose2d(ch, ch // 2, 4, stride=2, padding=1)
        self.out = nn.Conv2d(ch // 2, c, 3, padding=1)

    def forward(self, z, labels=None):
        if self.label_emb is not None:
            z = z + self.label_emb(labels)
        h = F.silu(self.fc(z)).reshape(z.shape[0], self.ch, self.h4, self.w4)
        h = F.silu(self.up1(h))
        h = F.silu(self.up2(h))
        return self.out(h)  # logits


class VAE(GenerativeModel):
    """Config: ch, z_dim, beta, kl_warmup (fraction of steps), lr, temperature (of prior
    samples), init_seed."""

    family = "vae"
    DEFAULTS = dict(ch=64, z_dim=16, beta=1.0, kl_warmup=0.3, lr=2e-3, temperature=1.0, init_seed=0)
    DEFAULT_STEPS = 3000

    def _build(self):
        c = self.config
        self.enc = Encoder(self.image_shape, int(c["ch"]), int(c["z_dim"]), self.num_classes)
        self.dec = Decoder(self.image_shape, int(c["ch"]), int(c["z_dim"]), self.num_classes)
        self.opt = optim.Adam(list(self.enc.parameters()) + list(self.dec.parameters()), lr=float(c["lr"]))
        self._draws = 0

    def _modules(self):
        return {"enc": self.enc, "dec": self.dec}

    def _train_step(self, x, y, rng, step, total):
        c = self.config
        lr = optim.warmup_cosine(step, float(c["lr"]), min(100, total // 10), total)
        self.opt.lr = lr
        mu, logvar = self.enc(Tensor(x), y)
        z = F.reparameterize(mu, logvar, seed=int(rng.integers(0, 2 ** 62)))
        logits = self.dec(z, y)
        n = len(x)
        recon = F.binary_cross_entropy_with_logits(logits, Tensor(x), reduction="sum") / n
        kl = F.gaussian_kl(mu, logvar).mean()
        warm = float(c["kl_warmup"]) * total
        beta = float(c["beta"]) * (min(1.0, (step + 1) / warm) if warm > 0 else 1.0)
        loss = recon + beta * kl
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return {"loss": loss.item(), "recon": recon.item(), "kl": kl.item()}

    def _sample(self, n, labels, rng, temperature=None):
        t = float(self.config["temperature"] if temperature is None else temperature)
        z = (rng.standard_normal((n, int(self.config["z_dim"]))) * t).astype(np.float32)
        return F.sigmoid(self.dec(Tensor(z), labels)).data

    def encode(self, images, labels=None):
        """(mu, logvar), each (N, z_dim), of images (N, C, H, W) in [0, 1]."""
        x = self._check_images(images)
        y = self._check_labels(labels, len(x), required=True)
        from ..tensor import no_grad  # noqa: PLC0415
        with no_grad():
            mu, logvar = self.enc(Tensor(x), y)
        return mu.data, logvar.data

    def reconstruct(self, images, labels=None):
        """Decoded posterior means: float32 (N, C, H, W) in [0, 1]."""
        mu, _ = self.encode(images, labels)
        y = self._check_labels(labels, len(mu), required=True)
        from ..tensor import no_grad  # noqa: PLC0415
        with no_grad():
            return np.clip(F.sigmoid(self.dec(Tensor(mu), y)).data, 0, 1).astype(np.float32)
