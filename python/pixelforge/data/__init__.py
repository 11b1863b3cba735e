"""Datasets, none downloaded at run time: ``load_digits`` (scikit-learn's bundled 8x8 digits),
``load_fashion_mnist`` (the IDX files, e.g. Debian's dataset-fashion-mnist), ``load_emoji``
(Noto Color Emoji rendered with Pillow), ``load_images`` (a user's folder / IDX / .npz), and
``load_data`` (any of them by name, at the data's own shape unless one is given)."""
from __future__ import annotations

import os
import pathlib

import numpy as np
from PIL import Image

from ._idx import read_idx
from .emoji import load_emoji
from .fashion_mnist import CLASSES as _FASHION_CLASSES
from .fashion_mnist import load_fashion_mnist

__all__ = ["load_digits", "load_fashion_mnist", "load_emoji", "load_images", "load_data", "batches", "CLASSES"]

# class names per named dataset, index = label
CLASSES = {"digits": tuple(str(i) for i in range(10)), "fashion-mnist": _FASHION_CLASSES}
# the shape each named dataset has
NATIVE_SHAPES = {"digits": (1, 8, 8), "fashion-mnist": (1, 28, 28), "emoji": (3, 32, 32)}


def load_digits():
    """The 1797 UCI digits as images float32 (1797, 1, 8, 8) in [0, 1] (grey levels 0..16 / 16)
    and labels int64 (1797,) in 0..9. Needs scikit-learn (reads its bundled copy)."""
    try:
        from sklearn.datasets import load_digits as sk_load  # noqa: PLC0415
    except ImportError as e:
        raise ImportError("pixelforge.data.load_digits needs scikit-learn (pip install scikit-learn)") from e
    d = sk_load()
    images = (np.asarray(d.images, np.float32) / np.float32(16.0)).reshape(-1, 1, 8, 8)
    return np.ascontiguousarray(images), np.asarray(d.target, np.int64)


def batches(n, batch_size, *, seed=0, drop_last=True):
    """Endless shuffled index batches over ``range(n)`` (a new permutation each epoch)."""
    if batch_size < 1 or n < 1:
        raise ValueError(f"batch_size/n: expected >= 1, got {batch_size}, {n}")
    rng = np.random.default_rng(seed)
    while True:
        perm = rng.permutation(n)
        stop = n - batch_size + 1 if drop_last and n >= batch_size else n
        for i in range(0, stop, batch_size):
            yield perm[i:i + batch_size]


# ------------------------------------------------------------------------------ user data
_IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def _resize(images, image_shape):
    """uint8/float (N, H, W, C) -> float32 (N, C, H', W') in [0, 1], resized with Pillow."""
    c, h, w = image_shape
    out = np.empty((len(images), c, h, w), np.float32)
    for i, im in enumerate(images):
        arr = np.asarray(im)
        if arr.dtype != np.uint8:
            arr = np.clip(np.rint(arr * 255), 0, 255).astype(np.uint8)
        pil = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
        pil = pil.convert("L" if c == 1 else "RGB")
        if pil.size != (w, h):
            pil = pil.resize((w, h), Image.BOX if pil.size[0] > w else Image.BILINEAR)
        a = np.asarray(pil, np.float32) / 255.0
        out[i] = a[None] if c == 1 else a.transpose(2, 0, 1)[:c]
    return out


def _as_nhwc(a, name):
    a = np.asarray(a)
    if a.ndim == 3:
        a = a[..., None]
    elif a.ndim == 4 and a.shape[1] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
        a = a.transpose(0, 2, 3, 1)
    if a.ndim != 4:
        raise ValueError(f"{name}: expected images (N, H, W), (N, H, W, C) or (N, C, H, W), got shape {a.shape}")
    if a.dtype.kind in "iu":
        scale = 255.0 if a.max(initial=0) > 16 else max(float(a.max(initial=1)), 1.0)
        a = a.astype(np.float32) / scale
    elif a.dtype.kind == "f":
        a = a.astype(np.float32)
        if a.size and a.max() > 1.0:
            a = a / 255.0
    else:
        raise TypeError(f"{name}: images must be numeric, got dtype {a.dtype}")
    return np.clip(a, 0.0, 1.0)


def load_images(path, image_shape=(1, 8, 8)):
    """A user's images, resized and scaled to ``image_shape`` (C, H, W):
    ``(images float32 (N, C, H, W) in [0, 1], labels int64 (N,) or None)``.

    path: a folder of PNG/JPEG images (one sub-folder per class gives labels, in sorted
    order), MNIST-format IDX image files (``*-idx3-ubyte``, gzipped too; a matching
    ``*labels-idx1*`` file beside it gives labels), or an ``.npz`` with an ``images`` array
    (and optionally ``labels``). "digits" loads :func:`load_digits`.
    """
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"image_shape: expected (C, H, W), got {image_shape!r}")
    if isinstance(path, str) and path == "digits":
        x, y = load_digits()
        return (x, y) if shape == (1, 8, 8) else (_resize(x.transpose(0, 2, 3, 1), shape), y)
    p = pathlib.Path(os.fspath(path))
    if not p.exists():
        raise FileNotFoundError(f"path: {p} does not exist")
    labels = None
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.suffix.lower() in _IMAGE_EXT)
        if not files:
            raise ValueError(f"path: no PNG/JPEG images under {p}")
        imgs = [np.asarray(Image.open(f).convert("L" if shape[0] == 1 else "RGB")) for f in files]
        imgs = [im[..., None] if im.ndim == 2 else im for im in imgs]
        classes = sorted({f.parent.name for f in files if f.parent != p})
        if classes and all(f.parent != p for f in files):
            index = {c: i for i, c in enumerate(classes)}
            labels = np.array([index[f.parent.name] for f in files], np.int64)
        return _resize(imgs, shape), labels
    name = p.name.lower()
    if name.endswith(".npz"):
        with np.load(p) as f:
            if "images" not in f:
                raise ValueError(f"path: {p} has no 'images' array (has {sorted(f.files)})")
            a = _as_nhwc(f["images"], "images")
            if "labels" in f:
                labels = np.asarray(f["labels"]).astype(np.int64).reshape(-1)
    elif "idx" in name or name.endswith(("-ubyte", "-ubyte.gz")):
        a = _as_nhwc(read_idx(p), "images")
        for cand in (p.with_name(p.name.replace("images-idx3", "labels-idx1")),
                     p.with_name(p.name.replace("images.idx3", "labels.idx1"))):
            if cand != p and cand.exists():
                labels = read_idx(cand).astype(np.int64).reshape(-1)
                break
    else:
        raise ValueError(f"path: {p} is neither a folder of images, an .npz nor an IDX file")
    if labels is not None and len(labels) != len(a):
        raise ValueError(f"labels: {len(labels)} labels for {len(a)} images in {p}")
    return _resize(a, shape), labels


def load_data(spec, image_shape=None):
    """``(images float32 (N, C, H, W), labels int64 or None)`` for the CLI's ``--data``: "digits",
    "fashion-mnist" (the training split), "emoji" (no labels), or a path (:func:`load_images`).
    image_shape: resize to (C, H, W); default: the named set's own shape ((1, 8, 8) for a path)."""
    if isinstance(spec, str) and spec in NATIVE_SHAPES:
        native = NATIVE_SHAPES[spec]
        shape = native if image_shape is None else tuple(int(s) for s in image_shape)
        if spec == "digits":
            x, y = load_digits()
        elif spec == "fashion-mnist":
            x, y = load_fashion_mnist("train")
        else:
            x, y = load_emoji(native[1])[0], None
        if shape != native:
            x = _resize(x.transpose(0, 2, 3, 1), shape)
        return x, y
    return load_images(spec, (1, 8, 8) if image_shape is None else image_shape)
