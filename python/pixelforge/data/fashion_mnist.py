"""Fashion-MNIST (Zalando Research, MIT licence): 70,000 grey 28x28 clothing images in ten
classes, read from the four standard IDX files (gzipped or not). Nothing is downloaded: the files
come from a folder the user names, ``$PIXELFORGE_DATA/fashion-mnist``, or Debian's package
``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``)."""
from __future__ import annotations

import os
import pathlib

import numpy as np

from ._idx import read_idx

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Ankle boot")
DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _candidates(path):
    if path is not None:
        return [pathlib.Path(os.fspath(path))]
    out = []
    if os.environ.get("PIXELFORGE_DATA"):
        out.append(pathlib.Path(os.environ["PIXELFORGE_DATA"]) / "fashion-mnist")
    out.append(pathlib.Path(DEBIAN_DIR))
    return out


def _find(folder, stem):
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def load_fashion_mnist(split="train", *, path=None):
    """``(images float32 (N, 1, 28, 28) in [0, 1], labels int64 (N,))``: the 60,000 training or
    10,000 test images. path: a folder holding the IDX files (``train-images-idx3-ubyte[.gz]``,
    ``train-labels-idx1-ubyte[.gz]``, ``t10k-...``); default search: ``$PIXELFORGE_DATA/
    fashion-mnist``, then ``/usr/share/datasets/fashion-mnist``. Class names:
    ``pf.data.CLASSES["fashion-mnist"]``."""
    if split not in _FILES:
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    tried = []
    for folder in _candidates(path):
        img, lab = (_find(folder, stem) for stem in _FILES[split])
        if img is not None and lab is not None:
            x = read_idx(img)
            y = read_idx(lab)
            if x.ndim != 3 or x.shape[1:] != (28, 28) or x.dtype != np.uint8:
                raise ValueError(f"path: {img} holds {x.dtype} {x.shape}, not 28x28 uint8 images")
            if y.ndim != 1 or len(y) != len(x):
                raise ValueError(f"path: {lab} holds {y.shape} labels for {len(x)} images")
            if y.size and (y.min() < 0 or y.max() > 9):
                raise ValueError(f"path: {lab} has labels outside 0..9")
            images = (x.astype(np.float32) / np.float32(255.0)).reshape(-1, 1, 28, 28)
            return np.ascontiguousarray(images), y.astype(np.int64)
        tried.append(str(folder))
    raise FileNotFoundError(
        f"Fashion-MNIST ({split}) not found in {', '.join(tried)}. Get it either way: "
        f"`apt-get install dataset-fashion-mnist` (Debian/Ubuntu; files in {DEBIAN_DIR}), or put the four IDX "
        f"files ({', '.join(_FILES['train'] + _FILES['test'])}, gzipped or not) in a folder and pass "
        f"path=FOLDER or set PIXELFORGE_DATA to its parent (FOLDER named fashion-mnist).")
