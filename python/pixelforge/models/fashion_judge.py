"""Quality of generated Fashion-MNIST images (and colour emoji), judged by a small CNN that
pixelforge trains with its own layers on the 60,000 Fashion-MNIST training images on first use
(about a minute on 2 cores; deterministic; cached under ``$PIXELFORGE_CACHE``).

The judge (``FashionClassifier``): 1x28x28 -> conv 3x3 (32) -> conv 4x4 s2 (64, 14x14) ->
conv 4x4 s2 (64, 7x7) -> linear 128 (the features) -> linear 11, ReLU between. Class 10 is
"not clothing": uniform noise, salt-and-pepper and soft blobs, so that broken samples are not
counted as confident garments. Its accuracy on the 10,000 test images is in ``judge_info()``.

Numbers (``quality``), as for the digits judge:
- ``confident``: fraction of samples labelled with probability >= 0.7 among the ten classes;
- ``entropy``: normalised entropy of the predicted-label histogram (1.0: all ten equally);
- ``class_match``: conditional samples predicted as the requested class;
- ``frechet``: Fréchet distance between the judge's features of the 10,000 test images and of
  the samples;
- ``broken``: fraction of samples the judge calls "not clothing", or whose total variation
  (mean absolute difference of neighbouring pixels) exceeds all but the top 0.1% of real test
  images: the salt-and-pepper blow-ups an unclipped guided sampler makes.

``references()`` scores real training images (R) and the same blurred with a Gaussian of
sigma = 1 pixel (B), at the same sample count, so a run's figures can be read as ratios.

Emoji (``quality_emoji``): the same feature space (images turned grey and resized to 28x28):
Fréchet distance to the emoji set, and the distance (RMS over pixels, in [0, 1]) from each
sample to its nearest training emoji, beside the training set's own nearest-other distance:
samples much closer than that are copies.
"""
from __future__ import annotations

import time

import numpy as np

from .. import functional as F
from .. import io as pfio
from .. import nn, optim
from .._cache import cache_dir
from ..tensor import Tensor, no_grad
from .evaluate import check_samples, frechet_distance, label_numbers

_VERSION = 1
_model = None
_memo: dict = {}


class FashionClassifier(nn.Module):
    """(N, 1, 28, 28) in [0, 1] -> logits (N, 11); ``features`` gives the 128 penultimate units."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 32, 3, padding=1)
        self.c2 = nn.Conv2d(32, 64, 4, stride=2, padding=1)
        self.c3 = nn.Conv2d(64, 64, 4, stride=2, padding=1)
        self.fc1 = nn.Linear(64 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, 11)

    def hidden(self, x):
        h = F.relu(self.c1(x))
        h = F.relu(self.c2(h))
        h = F.relu(self.c3(h)).reshape(x.shape[0], -1)
        return F.relu(self.fc1(h))

    def forward(self, x):
        return self.fc2(self.hidden(x))

    def _batched(self, x, fn, batch=1000):
        x = np.asarray(x, np.float32)
        if x.ndim != 4 or x.shape[1:] != (1, 28, 28):
            raise ValueError(f"images: the Fashion-MNIST judge takes (N, 1, 28, 28), got {x.shape}")
        out = []
        self.eval()
        with no_grad():
            for i in range(0, len(x), batch):
                out.append(np.asarray(fn(Tensor(np.ascontiguousarray(x[i:i + batch]))).data))
        self.train()
        return np.concatenate(out) if out else np.zeros((0, 128), np.float32)

    def features(self, x):
        return self._batched(x, self.hidden)

    def probabilities(self, x):
        logits = self._batched(x, self.forward).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)


def _garbage(g, n):
    """Images that are no garment: uniform noise of random contrast, salt-and-pepper, soft blobs."""
    kind = g.integers(0, 3, n)
    noise = g.random((n, 784)) * g.random((n, 1))
    salt = (g.random((n, 784)) < g.uniform(0.1, 0.6, (n, 1))).astype(np.float64)
    yy, xx = (a.reshape(1, 784) for a in np.mgrid[0:28, 0:28])
    cy, cx, r = (g.uniform(lo, hi, (n, 1)) for lo, hi in ((4, 24), (4, 24), (2, 9)))
    blobs = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    out = np.where(kind[:, None] == 0, noise, np.where(kind[:, None] == 1, salt, blobs))
    return out.astype(np.float32).reshape(n, 1, 28, 28)


def train_classifier(seed=0, epochs=3, batch=128, lr=2e-3, progress=False):
    """Train the judge on the Fashion-MNIST training set (plus a "not clothing" class)."""
    from ..data import load_fashion_mnist  # noqa: PLC0415
    x, y = load_fashion_mnist("train")
    nn.init.manual_seed(seed)
    model = FashionClassifier()
    opt = optim.Adam(model.parameters(), lr=lr)
    g = np.random.default_rng(seed)
    steps = epochs * (len(x) // batch)
    step = 0
    for _ in range(epochs):
        order = g.permutation(len(x))
        for i in range(0, len(x) - batch + 1, batch):
            idx = order[i:i + batch]
            xb, yb = x[idx], y[idx]
            if g.random() < 0.5:  # one-pixel shifts: slightly off-centre samples are judged fairly
                xb = np.roll(xb, int(g.integers(-1, 2)), axis=int(g.integers(2, 4)))
            k = batch // 8
            xb = np.concatenate([xb, _garbage(g, k)])
            yb = np.concatenate([yb, np.full(k, 10)])
            opt.lr = optim.warmup_cosine(step, lr, 50, steps)
            loss = F.cross_entropy(model(Tensor(np.ascontiguousarray(xb))), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if progress and step % 100 == 0:
                print(f"judge: step {step}/{steps}, loss {float(loss.data):.3f}", flush=True)
    return model


def classifier(progress=False) -> FashionClassifier:
    """The cached judge, trained on first use."""
    global _model
    if _model is not None:
        return _model
    path = cache_dir() / f"fashion_classifier_v{_VERSION}.safetensors"
    model = FashionClassifier()
    if path.exists():
        try:
            model.load_state_dict(pfio.load(path))
            _model = model
            return _model
        except Exception:  # noqa: BLE001 - a corrupt cache is retrained
            pass
    t0 = time.perf_counter()
    model = train_classifier(progress=progress)
    if progress:
        print(f"judge: trained in {time.perf_counter() - t0:.0f} s", flush=True)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        pfio.save(model, path)  # atomic
    except OSError:
        pass  # read-only home: keep it in memory
    _model = model
    return _model


def total_variation(x):
    """Mean absolute difference of neighbouring pixels per image: (N, C, H, W) -> (N,)."""
    x = np.asarray(x, np.float32)
    return (np.abs(np.diff(x, axis=2)).mean(axis=(1, 2, 3)) + np.abs(np.diff(x, axis=3)).mean(axis=(1, 2, 3))) / 2


def gaussian_blur(x, sigma=1.0):
    """Images (N, C, H, W) blurred with a separable Gaussian (radius 3 sigma, edges reflected)."""
    r = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    x = np.asarray(x, np.float64)
    for axis in (2, 3):
        pad = [(0, 0)] * 4
        pad[axis] = (r, r)
        p = np.pad(x, pad, mode="reflect")
        n = x.shape[axis]
        x = sum(w * np.take(p, np.arange(i, i + n), axis=axis) for i, w in enumerate(k))
    return x.astype(np.float32)


def _test_set():
    if "test" not in _memo:
        from ..data import load_fashion_mnist  # noqa: PLC0415
        xt, yt = load_fashion_mnist("test")
        clf = classifier()
        prob = clf.probabilities(xt)
        _memo["test"] = {"features": clf.features(xt), "accuracy": float((prob.argmax(1) == yt).mean()),
                         "tv_limit": float(np.quantile(total_variation(xt), 0.999))}
    return _memo["test"]


def judge_info() -> dict:
    """The judge's test accuracy and the broken-sample threshold."""
    t = _test_set()
    return {"test_accuracy": t["accuracy"], "tv_limit": t["tv_limit"]}


def quality(samples, labels=None) -> dict:
    """Quality numbers for (n, 1, 28, 28) samples in [0, 1]; ``labels`` (n,) for conditional ones."""
    x = check_samples(samples, (1, 28, 28))
    clf = classifier()
    t = _test_set()
    prob11 = clf.probabilities(x)
    out = label_numbers(prob11[:, :10], labels)  # "not clothing" never counts as a class
    out["frechet"] = frechet_distance(t["features"], clf.features(x))
    out["broken"] = float(((total_variation(x) > t["tv_limit"]) | (prob11.argmax(1) == 10)).mean())
    return out


def references(n=1000, seed=0) -> dict:
    """{"R": quality of n real training images, "B": of the same blurred with sigma = 1, and
    "judge_accuracy": the judge's accuracy on the test images}; class_match scores the true labels."""
    key = ("refs", n, seed)
    if key not in _memo:
        from ..data import load_fashion_mnist  # noqa: PLC0415
        x, y = load_fashion_mnist("train")
        idx = np.random.default_rng(seed).choice(len(x), n, replace=False)
        _memo[key] = {"R": quality(x[idx], y[idx]), "B": quality(gaussian_blur(x[idx]), y[idx]),
                      "judge_accuracy": judge_info()["test_accuracy"]}
    return _memo[key]


def _to_judge(x):
    """(N, C, H, W) in [0, 1] -> grey (N, 1, 28, 28) by channel mean and bilinear resizing."""
    from PIL import Image  # noqa: PLC0415
    g = np.asarray(x, np.float32).mean(axis=1)
    if g.shape[1:] == (28, 28):
        return g[:, None]
    return np.stack([np.asarray(Image.fromarray(im, mode="F").resize((28, 28), Image.BILINEAR)) for im in g])[:, None]


def nearest_distance(samples, train, exclude_self=False):
    """RMS pixel distance from each sample (N, ...) to its nearest row of ``train`` (M, ...)."""
    a = np.asarray(samples, np.float64).reshape(len(samples), -1)
    b = np.asarray(train, np.float64).reshape(len(train), -1)
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.T
    if exclude_self:
        np.fill_diagonal(d2, np.inf)
    return np.sqrt(np.clip(d2.min(axis=1), 0, None) / a.shape[1])


def quality_emoji(samples, train) -> dict:
    """Emoji samples (n, 3, H, W) against the training emoji (m, 3, H, W): ``frechet`` in the
    judge's feature space, ``nearest`` (median RMS distance to the nearest training emoji) and
    ``nearest_train`` (the same for each training emoji to its nearest other one)."""
    x = np.asarray(samples, np.float32)
    tr = np.asarray(train, np.float32)
    if x.ndim != 4 or x.shape[1:] != tr.shape[1:]:
        raise ValueError(f"samples: expected (n, {', '.join(map(str, tr.shape[1:]))}), got {x.shape}")
    clf = classifier()
    return {"n": int(len(x)), "frechet": frechet_distance(clf.features(_to_judge(tr)), clf.features(_to_judge(x))),
            "nearest": float(np.median(nearest_distance(x, tr))),
            "nearest_train": float(np.median(nearest_distance(tr, tr, exclude_self=True))),
            "colourfulness": float(np.abs(x - x.mean(axis=1, keepdims=True)).mean())}
