"""The four generator families on pixelforge's kernels and layers.

``pf.models.create(family, image_shape=(1, 8, 8), num_classes=None, **config)`` with family
"gan" | "vae" | "transformer" | "diffusion"; ``m.fit``, ``m.sample``, ``m.save(dir)`` and
``pf.models.load(dir)``. ``pixelforge.models.evaluate`` judges generated digits.
"""
from __future__ import annotations

import importlib
import json
import os
import pathlib

from .. import io as pfio
from .base import WEIGHTS

FAMILIES = {"gan": ("gan", "GAN"), "vae": ("vae", "VAE"), "transformer": ("transformer", "ImageTransformer"),
            "diffusion": ("diffusion", "Diffusion")}

__all__ = ["create", "load", "FAMILIES"]


def _family_class(family):
    if not isinstance(family, str):
        raise TypeError(f"family: expected a string, got {type(family).__name__}")
    if family not in FAMILIES:
        raise ValueError(f"family: unknown {family!r}; expected one of {sorted(FAMILIES)}")
    module, cls = FAMILIES[family]
    return getattr(importlib.import_module(f".{module}", __name__), cls)


def create(family, image_shape=(1, 8, 8), num_classes=None, *, device="cpu", **config):
    """A new, untrained model of ``family`` for images of ``image_shape`` (C, H, W), on
    ``device`` "cpu" (NumPy) or "cuda" (CuPy; a clear ValueError where there is no GPU)."""
    return _family_class(family)(image_shape, num_classes, device=device, **config)


def load(directory, *, device="cpu"):
    """The model saved by ``m.save(directory)``, on ``device``: it samples exactly as the saved
    one."""
    path = pathlib.Path(directory) / WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"directory: no {WEIGHTS} in {os.fspath(directory)!r} (not a saved run?)")
    meta = pfio.load_metadata(os.fspath(path))
    try:
        family = meta["family"]
        shape = tuple(json.loads(meta["image_shape"]))
        num_classes = json.loads(meta["num_classes"])
        config = json.loads(meta["model_config"])
    except (KeyError, ValueError) as e:
        raise ValueError(f"directory: {path} is not a pixelforge model checkpoint ({e})") from None
    model = create(family, shape, num_classes, device=device, **config)
    model.load_state_dict(pfio.load(os.fspath(path)))
    model.steps_trained = int(meta.get("steps_trained", 0))
    return model
