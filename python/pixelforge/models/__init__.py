"""The four generator families on pixelforge's kernels and layers.

``pf.models.create(family, image_shape=(1, 8, 8), num_classes=None, **config)`` with family
"gan" | "vae" | "transformer" | "diffusion"; ``m.fit``, ``m.sample``, ``m.save(dir)`` and
``pf.models.load(dir)``. ``pixelforge.models.evaluate`` judges generated digits.

diffusers interop: ``UNet2DModel(**config)`` (diffusers' config keys and weight names),
``load_diffusers(path)`` (a DDPM/DDIM pipeline folder or a bare UNet folder -> a Diffusion
model) and ``m.save_diffusers(path)``.
"""
from __future__ import annotations

import importlib
import json
import os
import pathlib

from .. import io as pfio
from . import diffusers_io
from .base import WEIGHTS
from .unet import DATA_KEYS, UNet2DModel

FAMILIES = {"gan": ("gan", "GAN"), "vae": ("vae", "VAE"), "transformer": ("transformer", "ImageTransformer"),
            "diffusion": ("diffusion", "Diffusion")}

__all__ = ["create", "load", "load_diffusers", "UNet2DModel", "FAMILIES"]


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


def load_diffusers(path, *, device="cpu"):
    """A ``Diffusion`` model from a diffusers folder: a DDPMPipeline / DDIMPipeline folder
    (model_index.json, unet/, scheduler/) or a bare UNet2DModel folder (config.json +
    diffusion_pytorch_model.safetensors; the family's default DDIM sampler then). Weights may be
    float32 or float16 (converted to float32); PyTorch pickles are refused. A UNet with
    ``num_class_embeds`` = K becomes a conditional model of K - 1 classes whose last row is the
    "no label" class of classifier-free guidance (pixelforge's convention)."""
    unet_dir, sched_dir = diffusers_io.find_unet_folder(path)
    unet_cfg, state = diffusers_io.read_unet(unet_dir)
    family_cfg = diffusers_io.read_scheduler(sched_dir) if sched_dir is not None else {}
    ss = unet_cfg.get("sample_size")
    if ss is None:
        raise ValueError(f"{os.fspath(unet_dir / 'config.json')}: sample_size is missing; pixelforge needs the "
                         "image size")
    h, w = (ss, ss) if isinstance(ss, int) else tuple(ss)
    if unet_cfg["in_channels"] != unet_cfg["out_channels"]:
        raise ValueError(f"{os.fspath(unet_dir / 'config.json')}: in_channels {unet_cfg['in_channels']} != "
                         f"out_channels {unet_cfg['out_channels']}; a denoiser maps images to images")
    k = unet_cfg.get("num_class_embeds")
    if k is not None and k < 3:
        raise ValueError(f"{os.fspath(unet_dir / 'config.json')}: num_class_embeds={k}; pixelforge needs >= 3 "
                         "(classes plus its 'no label' row)")
    unet = {k2: v for k2, v in unet_cfg.items() if k2 not in DATA_KEYS and not k2.startswith("_")
            and k2 != "num_train_timesteps"}
    model = create("diffusion", (unet_cfg["in_channels"], h, w), None if k is None else k - 1, unet=unet,
                   **family_cfg)
    own = model.ema_unet.state_dict()
    missing = sorted(set(own) - set(state))
    if missing:
        raise ValueError(f"{os.fspath(unet_dir)}: weights missing from the checkpoint: {missing[:8]}"
                         f"{' ...' if len(missing) > 8 else ''}")
    extra = sorted(set(state) - set(own))
    if extra:
        raise ValueError(f"{os.fspath(unet_dir)}: unexpected weights in the checkpoint (the config does not "
                         f"build them): {extra[:8]}{' ...' if len(extra) > 8 else ''}")
    for name, v in state.items():
        if v.shape != tuple(own[name].shape):
            raise ValueError(f"{os.fspath(unet_dir)}: weight {name!r} has shape {v.shape}, the config needs "
                             f"{tuple(own[name].shape)}")
    model.unet.load_state_dict(state)
    model.ema_unet.load_state_dict(state)
    model._build_optimizers()  # the EMA starts from the loaded weights
    return model.to(device)
