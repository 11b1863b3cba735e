"""Quality of generated digits, judged by a classifier trained on the real ones.

The classifier is a small NumPy MLP (64 -> 256 -> 11, ReLU) trained on a fixed split of
scikit-learn's bundled digits on first use, deterministically, and cached under
``$PIXELFORGE_CACHE`` (default ``~/.cache/pixelforge``). It is independent of the models it
judges: plain NumPy, no pixelforge kernels. An eleventh "not a digit" class is trained on
uniform noise and random blobs, so that noise or a smudge is not counted as a confident digit.

Numbers (``quality``):
- ``confident``: fraction of samples the classifier labels with probability >= 0.7
  (held-out real digits score about 0.95);
- ``entropy``: normalized entropy of the predicted-label histogram (1.0: all ten digits
  equally often; the bar is >= 0.9);
- ``class_match``: for conditional samples, the fraction predicted as the requested class;
- ``frechet``: Fréchet distance between the classifier's hidden features of real and
  generated digits (lower is better; real vs real held-out is near 0).
"""
from __future__ import annotations

import os
import pathlib
import time

import numpy as np

from .._cache import cache_dir
from ..data import NATIVE_SHAPES

CONFIDENCE = 0.7
_VERSION = 3
_model = None


def _cache_dir() -> pathlib.Path:
    return cache_dir()


def _digits():
    from sklearn.datasets import load_digits  # noqa: PLC0415 - bundled data, no download
    d = load_digits()
    return (d.images / 16.0).astype(np.float32).reshape(-1, 64), d.target.astype(np.int64)


def split():
    """A fixed train / held-out split of the digits: (x_train, y_train, x_test, y_test), x in [0, 1]."""
    x, y = _digits()
    order = np.random.default_rng(1234).permutation(len(x))
    cut = int(0.8 * len(x))
    tr, te = order[:cut], order[cut:]
    return x[tr], y[tr], x[te], y[te]


class DigitClassifier:
    """64 -> 256 -> 11 MLP on 8x8 images in [0, 1]; class 10 is "not a digit"."""

    def __init__(self, params: dict):
        self.w1, self.b1, self.w2, self.b2 = (params[k] for k in ("w1", "b1", "w2", "b2"))

    def features(self, x):
        x = np.asarray(x, np.float32).reshape(len(x), -1)
        if x.shape[1] != 64:
            raise ValueError(f"images: the digit classifier takes 8x8 images, got {x.shape[1]} pixels")
        return np.maximum(x @ self.w1 + self.b1, 0)

    def probabilities(self, x):
        logits = self.features(x) @ self.w2 + self.b2
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    @staticmethod
    def train(seed=0, epochs=80, batch=64, lr=2e-3):
        x, y, _, _ = split()
        g = np.random.default_rng(seed)
        p = {"w1": (g.standard_normal((64, 256)) * np.sqrt(2 / 64)).astype(np.float32),
             "b1": np.zeros(256, np.float32),
             "w2": (g.standard_normal((256, 11)) * np.sqrt(1 / 256)).astype(np.float32),
             "b2": np.zeros(11, np.float32)}
        m = {k: np.zeros_like(v) for k, v in p.items()}
        v2 = {k: np.zeros_like(v) for k, v in p.items()}
        step = 0
        for _ in range(epochs):
            order = g.permutation(len(x))
            for i in range(0, len(x), batch):
                idx = order[i:i + batch]
                xb, yb = x[idx], y[idx]
                # light augmentation: one-pixel shifts, so slightly off-centre samples are judged fairly
                if g.random() < 0.5:
                    xb = np.roll(xb.reshape(-1, 8, 8), g.integers(-1, 2), axis=int(g.integers(1, 3))).reshape(-1, 64)
                xb, yb = np.concatenate([xb, _garbage(g, len(idx) // 4)]), np.concatenate(
                    [yb, np.full(len(idx) // 4, 10)])
                h = np.maximum(xb @ p["w1"] + p["b1"], 0)
                logits = h @ p["w2"] + p["b2"]
                logits -= logits.max(axis=1, keepdims=True)
                prob = np.exp(logits)
                prob /= prob.sum(axis=1, keepdims=True)
                d = prob
                d[np.arange(len(yb)), yb] -= 1
                d /= len(yb)
                grads = {"w2": h.T @ d, "b2": d.sum(0)}
                dh = (d @ p["w2"].T) * (h > 0)
                grads["w1"] = xb.T @ dh
                grads["b1"] = dh.sum(0)
                step += 1
                for k in p:
                    grads[k] = grads[k] + 1e-4 * p[k] if k.startswith("w") else grads[k]
                    m[k] = 0.9 * m[k] + 0.1 * grads[k]
                    v2[k] = 0.999 * v2[k] + 0.001 * grads[k] ** 2
                    mh = m[k] / (1 - 0.9 ** step)
                    vh = v2[k] / (1 - 0.999 ** step)
                    p[k] = (p[k] - lr * mh / (np.sqrt(vh) + 1e-8)).astype(np.float32)
        return DigitClassifier(p)


def _garbage(g, n):
    """Images that are no digit: uniform noise of random contrast, and soft random blobs."""
    noise = g.random((n, 64)).astype(np.float32) * g.random((n, 1)).astype(np.float32)
    yy, xx = (a.reshape(1, 64) for a in np.mgrid[0:8, 0:8])
    cy, cx, r = (g.uniform(lo, hi, (n, 1)) for lo, hi in ((1, 7), (1, 7), (1, 3)))
    blobs = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r)).astype(np.float32)
    return np.where(g.random((n, 1)) < 0.5, noise, blobs)


def classifier() -> DigitClassifier:
    """The cached classifier, trained on first use (a few seconds)."""
    global _model
    if _model is not None:
        return _model
    path = _cache_dir() / f"digit_classifier_v{_VERSION}.npz"
    if path.exists():
        try:
            with np.load(path) as f:
                _model = DigitClassifier({k: f[k] for k in ("w1", "b1", "w2", "b2")})
            return _model
        except Exception:  # noqa: BLE001 - a corrupt cache is retrained
            pass
    _model = DigitClassifier.train()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
        np.savez(tmp, w1=_model.w1, b1=_model.b1, w2=_model.w2, b2=_model.b2)
        os.replace(tmp, path)
    except OSError:
        pass  # read-only home: keep it in memory
    return _model


def frechet_distance(f1, f2) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (n, d)."""
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1 = np.cov(f1, rowvar=False).astype(np.float64)
    s2 = np.cov(f2, rowvar=False).astype(np.float64)
    # tr(sqrt(s1 s2)) = tr(sqrt(r s2 r)) with r = sqrt(s1): symmetric, so eigh is stable
    w, v = np.linalg.eigh(s1)
    r = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = r @ s2 @ r
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    return max(0.0, float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt))


def check_samples(samples, shape):
    """Samples as float32 (n, *shape), n >= 2, or ValueError naming them."""
    x = np.asarray(samples, np.float32)
    if x.ndim != 4 or x.shape[1:] != tuple(shape):
        raise ValueError(f"samples: expected (n, {', '.join(map(str, shape))}), got {x.shape}")
    if len(x) < 2:
        raise ValueError("samples: need at least 2 samples")
    return x


def label_numbers(prob, labels=None) -> dict:
    """confident / entropy / classes_covered (and class_match for ``labels`` (n,)) from a
    judge's probabilities over the ten classes, prob (n, 10)."""
    pred = prob.argmax(1)
    hist = np.bincount(pred, minlength=10) / len(pred)
    nz = hist[hist > 0]
    out = {"n": int(len(prob)), "confident": float((prob.max(1) >= CONFIDENCE).mean()),
           "entropy": float(-(nz * np.log(nz)).sum() / np.log(10)), "classes_covered": int((hist > 0).sum())}
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        if labels.shape != (len(prob),):
            raise ValueError(f"labels: expected ({len(prob)},), got {labels.shape}")
        out["class_match"] = float((pred == labels).mean())
    return out


def quality(samples, labels=None) -> dict:
    """Quality numbers for generated digits ``samples`` (n, 1, 8, 8) in [0, 1]; ``labels``
    (n,) are the requested classes of conditional samples."""
    x = check_samples(samples, (1, 8, 8))
    clf = classifier()
    prob = clf.probabilities(x.reshape(len(x), 64))[:, :10]  # "not a digit" never counts
    out = label_numbers(prob, labels)
    _, _, xt, _ = split()
    out["frechet"] = frechet_distance(clf.features(xt), clf.features(x.reshape(len(x), 64)))
    return out


JUDGES = tuple(NATIVE_SHAPES)  # one judge per named dataset, at its own shape


def judge_for(image_shape, data=None) -> str:
    """Which judge scores images of ``image_shape``: ``data`` when given (one of ``JUDGES``),
    else by shape: (1, 8, 8) digits, (1, 28, 28) Fashion-MNIST, (3, 32, 32) emoji."""
    if data is not None:
        if data not in JUDGES:
            raise ValueError(f"data: expected one of {JUDGES}, got {data!r}")
        return data
    by_shape = {s: name for name, s in NATIVE_SHAPES.items()}
    shape = tuple(image_shape)
    if shape not in by_shape:
        raise ValueError(f"image_shape: no judge for {shape}; judged are 1x8x8 digits, 1x28x28 Fashion-MNIST "
                         "and 3x32x32 emoji")
    return by_shape[shape]


def evaluate_model(model, n=500, seed=1234, data=None, **sample_kw):
    """(quality numbers, samples) of a trained model: ``n`` samples (conditional models:
    classes 0, 1, 2, ... cycling), judged by the judge of its image shape (``judge_for``):
    :func:`quality` for digits, ``fashion_judge.quality`` for Fashion-MNIST,
    ``fashion_judge.quality_emoji`` for emoji; plus ``samples_per_second``."""
    judge = judge_for(model.image_shape, data)
    t0 = time.perf_counter()
    labels = np.arange(n) % model.num_classes if model.conditional else None
    samples = model.sample(n, seed=seed, labels=labels, **sample_kw)
    dt = time.perf_counter() - t0
    if judge == "digits":
        q = quality(samples, labels)
    else:
        from . import fashion_judge  # noqa: PLC0415 - trains its classifier on first use
        if judge == "fashion-mnist":
            q = fashion_judge.quality(samples, labels)
        else:
            from ..data import load_emoji  # noqa: PLC0415
            q = fashion_judge.quality_emoji(samples, load_emoji(model.image_shape[1])[0])
    q["samples_per_second"] = n / dt
    return q, samples
