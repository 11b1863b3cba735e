"""Image-transformer family, in the ImageGPT manner: an image read in raster order as tokens
after a start token (or, when conditional, the class token); pre-norm blocks of causal
multi-head attention (``pf.ops.attention``) and a GELU MLP; learned position embeddings.
Sampling decodes one token at a time against a KV cache, with temperature and top-k / top-p.

Tokens (config ``patch``):
- ``patch=1`` (the default up to 16x16, e.g. the 8x8 digits): one token per pixel value,
  quantised uniformly to ``levels`` values (17 for the digits, which hold 0..16), channels
  innermost: H*W*C tokens.
- ``patch=p > 1`` (the default above 16x16: p = 2): one token per p x p patch (all channels),
  the index of its nearest entry in a codebook of ``levels`` patches that ``fit`` learns first
  by k-means on the training patches (ImageGPT's colour clusters, on patches). At 28x28 that is
  196 tokens instead of 784: 4x fewer steps to sample and 16x less attention, which is what
  lets a 2-core CPU train it in minutes and sample 100 images in seconds; the codebook
  (256 grey / 512 colour 2x2 patches) reproduces the images closely (RMS error ~0.03 on
  Fashion-MNIST).
"""
from __future__ import annotations

import numpy as np

from .. import _backend
from .. import functional as F
from .. import nn, optim
from .. import random as pfrandom
from .._validate import integer
from .base import GenerativeModel, is_large


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = nn.Attention(d, heads, causal=True)
        self.ln2 = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)

    def forward(self, x, kv_cache=None):
        x = x + self.attn(self.ln1(x), kv_cache=kv_cache)
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class PixelTransformer(nn.Module):
    def __init__(self, seq_len, levels, d, heads, layers, num_classes):
        super().__init__()
        self.levels = levels
        # token ids: 0..levels-1 pixels; levels.. the start token or one token per class
        self.tok = nn.Embedding(levels + (num_classes or 1), d)
        self.pos = nn.Embedding(seq_len, d)
        self.blocks = nn.ModuleList([Block(d, heads) for _ in range(layers)])
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, levels)

    def forward(self, tokens, start=0, caches=None):
        """tokens (B, L) int -> logits (B, L, levels); positions start..start+L-1."""
        b, l = tokens.shape
        h = self.tok(tokens) + self.pos(np.arange(start, start + l)).reshape(1, l, -1)
        for i, blk in enumerate(self.blocks):
            h = blk(h, kv_cache=None if caches is None else caches[i])
        return self.head(self.ln(h))


class ImageTransformer(GenerativeModel):
    """Config: patch, levels (pixel values when patch is 1, codebook size otherwise), d_model,
    heads, layers, lr, warmup, weight_decay, temperature, top_k, top_p, init_seed."""

    family = "transformer"
    STEPWISE_CALLBACK = True
    DEFAULTS = dict(patch=1, levels=17, d_model=96, heads=4, layers=4, lr=3e-3, warmup=100, weight_decay=0.01,
                    temperature=0.9, top_k=0, top_p=0.95, init_seed=0)
    DEFAULT_STEPS = 1500
    LARGE_STEPS = 1500
    DEFAULT_BATCH = 64

    @classmethod
    def size_defaults(cls, image_shape):
        if not is_large(image_shape):
            return {}
        c = image_shape[0]
        # full temperature: with many background tokens first, a cooler sampler favours the
        # classes that start late (on Fashion-MNIST, sneakers), losing diversity (measured:
        # label entropy 0.83 at 0.9 / top-p 0.95, 0.999 at 1.0 / 1.0)
        return {"patch": 2, "levels": 256 if c == 1 else 512, "d_model": 128, "temperature": 1.0, "top_p": 1.0}

    def _build(self):
        c = self.config
        self.levels = int(c["levels"])
        if self.levels < 2:
            raise ValueError(f"levels: expected >= 2, got {self.levels}")
        self.patch = integer(c["patch"], "patch", min_value=1, wrong_type=ValueError)
        ch, h, w = self.image_shape
        if h % self.patch or w % self.patch:
            raise ValueError(f"patch: {self.patch} does not divide image_shape {self.image_shape}")
        self.seq_len = h * w * ch if self.patch == 1 else (h // self.patch) * (w // self.patch)
        self.net = PixelTransformer(self.seq_len, self.levels, int(c["d_model"]), int(c["heads"]), int(c["layers"]),
                                    self.num_classes)
        if self.patch > 1:
            # (levels, C*p*p) patch values in [0, 1]: learned by k-means when fit starts
            self.net.register_buffer("codebook", np.zeros((self.levels, ch * self.patch ** 2), np.float32))

    def _build_optimizers(self):
        c = self.config
        self.opt = optim.AdamW(self.net.parameters(), lr=float(c["lr"]), weight_decay=float(c["weight_decay"]))

    def _optimizers(self):
        return {"opt": self.opt}

    def _modules(self):
        return {"net": self.net}

    def _patches(self, x):
        """(N, C, H, W) -> (N, L, C*p*p): p x p patches in raster order, each (C, p, p) flattened."""
        n, c_, h, w = x.shape
        p = self.patch
        return x.reshape(n, c_, h // p, p, w // p, p).transpose(0, 2, 4, 1, 3, 5).reshape(n, -1, c_ * p * p)

    def _tokens(self, x):
        """(N, C, H, W) in [0, 1] -> (N, L) ints in [0, levels): pixel values (raster order,
        channels last) or the nearest codebook patch."""
        if self.patch == 1:
            q = np.rint(x.transpose(0, 2, 3, 1).reshape(len(x), -1) * (self.levels - 1))
            return np.clip(q, 0, self.levels - 1).astype(np.int64)
        cb = np.asarray(_backend.to_host(self.net.codebook), np.float32)
        v = self._patches(np.asarray(x, np.float32))
        d2 = (cb * cb).sum(1) - 2 * v @ cb.T  # |v|^2 is the same for every code
        return d2.argmin(axis=2).astype(np.int64)

    def _prepare_fit(self, images, labels):
        if self.patch > 1:
            cb = kmeans(self._patches(images).reshape(-1, self.net.codebook.shape[1]), self.levels,
                        seed=int(self.config["init_seed"]))
            self.net.codebook[...] = self._dev(cb)

    def _first(self, n, labels):
        return np.full(n, self.levels, np.int64) if labels is None else self.levels + labels

    def _train_step(self, x, y, rng, step, total):
        c = self.config
        self.opt.lr = optim.warmup_cosine(step, float(c["lr"]), int(c["warmup"]), total)
        tok = self._tokens(x)
        inp = np.concatenate([self._first(len(x), y)[:, None], tok[:, :-1]], axis=1)
        logits = self.net(inp)
        loss = F.cross_entropy(logits.reshape(-1, self.levels), tok.reshape(-1))
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return {"loss": loss.data}

    def _sample(self, n, labels, rng, temperature=None, top_k=None, top_p=None, callback=None, known=None):
        """known: (n, K) tokens forced at positions 0..K-1 (completion); callback per token."""
        c = self.config
        temp = float(c["temperature"] if temperature is None else temperature)
        k = int(c["top_k"] if top_k is None else top_k)
        p = float(c["top_p"] if top_p is None else top_p)
        if temp <= 0:
            raise ValueError(f"temperature: must be > 0, got {temp}")
        if not 0 < p <= 1:
            raise ValueError(f"top_p: must be in (0, 1], got {p}")
        caches = [nn.KVCache() for _ in self.net.blocks]
        cur = self._first(n, labels)[:, None]
        xp = self.xp
        out = xp.zeros((n, self.seq_len), np.int64)
        n_known = 0 if known is None else known.shape[1]
        # one stream of uniforms for all the choices: u[:, i] picks pixel i (same bits on every device)
        us = pfrandom.rand((n, self.seq_len), seed=int(rng.integers(0, 2 ** 62)), dtype="float64",
                           device=self.device)
        for i in range(self.seq_len):
            logits = self.net(cur, start=i, caches=caches).data[:, -1, :].astype(np.float64) / temp
            if i < n_known:  # completion: the given pixel (the step only fills the KV cache)
                nxt = known[:, i]
            else:
                nxt = self._choose(logits, k, p, us[:, i:i + 1])
            out[:, i] = nxt
            cur = nxt[:, None]
            if callback is not None:
                preview = self._preview(out, i + 1)
                if callback(i + 1, self.seq_len, preview) is False:
                    return preview
        return self._images(out)

    def _choose(self, logits, k, p, u):
        """Top-k / top-p sampling of one token per row from logits (n, levels) with uniforms u (n, 1)."""
        xp = self.xp
        if 0 < k < self.levels:
            kth = xp.sort(logits, axis=1)[:, -k][:, None]
            logits = xp.where(logits < kth, -np.inf, logits)
        probs = xp.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        if p < 1:
            order = xp.argsort(-probs, axis=1)
            sorted_p = xp.take_along_axis(probs, order, axis=1)
            keep_sorted = xp.cumsum(sorted_p, axis=1) - sorted_p < p  # the top token always stays
            # back to token order through the inverse permutation (CuPy has take_along_axis)
            keep = xp.take_along_axis(keep_sorted, xp.argsort(order, axis=1), axis=1)
            probs = xp.where(keep, probs, 0)
            probs /= probs.sum(axis=1, keepdims=True)
        return (xp.cumsum(probs, axis=1) < u).sum(axis=1).clip(0, self.levels - 1)

    def _images(self, tokens):
        c_, h, w = self.image_shape
        n = len(tokens)
        if self.patch == 1:
            return (tokens.reshape(n, h, w, c_).transpose(0, 3, 1, 2) / (self.levels - 1)).astype(np.float32)
        p = self.patch
        v = self.net.codebook[tokens]  # (n, L, C*p*p) on the model's device
        return v.reshape(n, h // p, w // p, c_, p, p).transpose(0, 3, 1, 4, 2, 5).reshape(n, c_, h, w)

    def _preview(self, tokens, decided):
        """The image so far, NumPy float32: pixels past the first ``decided`` tokens grey (0.5)."""
        if self.patch > 1:
            img = np.array(_backend.to_host(self._images(tokens)), np.float32)
            undecided = np.zeros(self.seq_len, bool)
            undecided[decided:] = True
            c_, h, w = self.image_shape
            p = self.patch
            mask = np.repeat(np.repeat(undecided.reshape(h // p, w // p), p, 0), p, 1)
            img[:, :, mask] = 0.5
            return img
        vals = np.asarray(_backend.to_host(tokens), np.float64) / (self.levels - 1)
        vals[:, decided:] = 0.5
        c_, h, w = self.image_shape
        return vals.reshape(len(vals), h, w, c_).transpose(0, 3, 1, 2).astype(np.float32)

    def complete(self, images, known_rows, *, seed=0, labels=None, callback=None, **kw):
        """ImageGPT's completion: keep the first ``known_rows`` pixel rows of the images (N, C, H,
        W) in [0, 1] (quantised to the model's tokens; with patches, rounded down to whole patch
        rows) and sample the rest, conditioned on them.
        known_rows 0 is ``sample`` with the same seed. Conditional models take ``labels``
        (default: 0, 1, 2, ... as in sample). callback per sampled pixel as in ``sample``. A
        float32 NumPy array (N, C, H, W) in [0, 1]."""
        x = self._check_images(images)
        c_, h, w = self.image_shape
        rows = integer(known_rows, "known_rows", min_value=0, max_value=h, wrong_type=TypeError)
        self._check_callback(callback)
        n = len(x)
        y = self._check_labels(labels, n, required=False)
        if y is None and self.conditional:
            y = np.arange(n, dtype=np.int64) % self.num_classes
        per_row = w * c_ if self.patch == 1 else w // self.patch
        known = self._dev(self._tokens(x)[:, :(rows // self.patch) * per_row])
        with self._inference():
            return self._host_images(self._sample(n, y, np.random.default_rng(seed), callback=callback, known=known,
                                                  **kw))

    def interpolate(self, seed_a, seed_b, n, labels=None, **kw):
        """Not available: the transformer samples discrete pixel tokens one by one from uniform
        draws; there is no continuous latent whose interpolation moves smoothly between two
        samples (interpolating the uniforms flips pixels at random). Raises NotImplementedError."""
        raise NotImplementedError("transformer: interpolate needs a continuous latent; this family samples discrete "
                                  "pixel tokens one at a time, so there is nothing to interpolate smoothly (use the "
                                  "GAN, VAE or diffusion family)")


def kmeans(points, k, *, seed=0, iters=20, max_points=100_000):
    """k centres (k, D) float32 of points (M, D) by Lloyd's algorithm on at most ``max_points``
    of them (a fixed random subset), started from k-means++ seeds; deterministic for a seed.
    An empty cluster is re-seeded at the point farthest from its centre."""
    rng = np.random.default_rng(seed)
    x = np.asarray(points, np.float64)
    if len(x) > max_points:
        x = x[rng.choice(len(x), max_points, replace=False)]
    k = min(k, len(x))
    sq = (x * x).sum(1)
    centres = np.empty((k, x.shape[1]))
    centres[0] = x[rng.integers(len(x))]
    d2 = ((x - centres[0]) ** 2).sum(1)
    for j in range(1, k):  # k-means++: far points are likelier seeds
        total = d2.sum()
        i = rng.integers(len(x)) if total <= 0 else rng.choice(len(x), p=d2 / total)
        centres[j] = x[i]
        d2 = np.minimum(d2, ((x - x[i]) ** 2).sum(1))
    for _ in range(iters):
        dist = sq[:, None] - 2 * x @ centres.T + (centres * centres).sum(1)[None]
        assign = dist.argmin(1)
        counts = np.bincount(assign, minlength=k)
        sums = np.zeros_like(centres)
        np.add.at(sums, assign, x)
        empty = counts == 0
        centres[~empty] = sums[~empty] / counts[~empty, None]
        if empty.any():
            far = np.argsort(-dist[np.arange(len(x)), assign])[:int(empty.sum())]
            centres[empty] = x[far]
    return centres.astype(np.float32)
