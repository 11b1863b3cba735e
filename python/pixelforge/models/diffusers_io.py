"""diffusers' folder format, read and written without diffusers or torch.

A pipeline folder (DDPMPipeline / DDIMPipeline):

    model_index.json                            {"_class_name": "DDIMPipeline", "unet": [...], "scheduler": [...]}
    unet/config.json                            UNet2DModel config
    unet/diffusion_pytorch_model.safetensors    weights (float32 or float16; ".fp16" variant accepted)
    scheduler/scheduler_config.json             DDPMScheduler / DDIMScheduler config

or a bare UNet folder (config.json + diffusion_pytorch_model.safetensors). PyTorch pickles
(``.bin``, ``.pt``) are refused: unpickling runs arbitrary code.

``read_unet(folder) -> (config, state)``, ``read_scheduler(folder) -> family config``,
``write_pipeline(folder, ...)``; ``pf.models.load_diffusers`` and ``Diffusion.save_diffusers``
are built on them.
"""
from __future__ import annotations

import json
import os
import pathlib

import numpy as np
from safetensors.numpy import save as st_save

from .. import io as pfio
from .unet import UNET_DEFAULTS

__all__ = ["read_unet", "read_scheduler", "write_pipeline", "find_unet_folder", "DIFFUSERS_VERSION"]

WEIGHTS = "diffusion_pytorch_model.safetensors"
_WEIGHT_VARIANTS = (WEIGHTS, "diffusion_pytorch_model.fp16.safetensors")
_PICKLES = ("diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.bin", "pytorch_model.bin",
            "diffusion_pytorch_model.pt", "model.pt")
# the diffusers version written into configs (the format has been stable since 0.20)
DIFFUSERS_VERSION = "0.30.0"
# attention weight names before diffusers 0.14 -> today's
_OLD_ATTENTION = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}

# scheduler config keys -> how they map onto the family config (None: inert)
_SCHED_KEYS = {
    "num_train_timesteps": "num_train_timesteps", "beta_start": "beta_start", "beta_end": "beta_end",
    "beta_schedule": "beta_schedule", "trained_betas": "trained_betas", "prediction_type": "prediction_type",
    "clip_sample": "clip_sample", "clip_sample_range": "clip_sample_range", "timestep_spacing": "timestep_spacing",
    "steps_offset": "steps_offset", "set_alpha_to_one": "set_alpha_to_one",
    "_class_name": None, "_diffusers_version": None, "variance_type": None, "thresholding": None,
    "dynamic_thresholding_ratio": None, "sample_max_value": None, "rescale_betas_zero_snr": None,
    "tensor_format": None, "predict_epsilon": None,
}
_SCHEDULERS = {"DDPMScheduler": "ddpm", "DDIMScheduler": "ddim"}


def _read_json(path: pathlib.Path, what: str) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"path: no {what} at {os.fspath(path)!r}")
    try:
        out = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{os.fspath(path)}: not valid JSON ({e})") from None
    if not isinstance(out, dict):
        raise ValueError(f"{os.fspath(path)}: expected a JSON object")
    return out


def find_unet_folder(path) -> tuple[pathlib.Path, pathlib.Path | None]:
    """(the UNet folder, the scheduler folder or None) of a pipeline or bare-UNet folder."""
    p = pathlib.Path(path)
    if not p.is_dir():
        raise FileNotFoundError(f"path: {os.fspath(p)!r} is not a folder")
    index = p / "model_index.json"
    if index.is_file():
        idx = _read_json(index, "model_index.json")
        unet_entry = idx.get("unet")
        if not (isinstance(unet_entry, list) and len(unet_entry) == 2 and unet_entry[1] == "UNet2DModel"):
            raise ValueError(f"{os.fspath(index)}: 'unet' must be ['diffusers', 'UNet2DModel'], got {unet_entry!r} "
                             "(pixelforge loads UNet2DModel pipelines: DDPMPipeline, DDIMPipeline)")
        sched = p / "scheduler" if "scheduler" in idx else None
        return p / "unet", sched
    if (p / "config.json").is_file():
        return p, None
    raise FileNotFoundError(f"path: {os.fspath(p)!r} has neither model_index.json (a pipeline) nor config.json "
                            "(a bare UNet folder)")


def read_unet(folder) -> tuple[dict, dict]:
    """(UNet2DModel config with diffusers' defaults filled in, state dict of float32 arrays)."""
    folder = pathlib.Path(folder)
    config = _read_json(folder / "config.json", "UNet config.json")
    cls = config.get("_class_name", "UNet2DModel")
    if cls != "UNet2DModel":
        raise ValueError(f"{os.fspath(folder / 'config.json')}: _class_name {cls!r} is not supported; "
                         "pixelforge loads UNet2DModel")
    weights = next((folder / w for w in _WEIGHT_VARIANTS if (folder / w).is_file()), None)
    if weights is None:
        pickles = [w for w in _PICKLES if (folder / w).is_file()]
        if pickles:
            raise ValueError(f"{os.fspath(folder / pickles[0])}: PyTorch pickle weights are not loaded (unpickling "
                             "runs arbitrary code); convert them to safetensors first, e.g. in Python with diffusers: "
                             "UNet2DModel.from_pretrained(folder).save_pretrained(folder, safe_serialization=True)")
        raise FileNotFoundError(f"path: no {WEIGHTS} in {os.fspath(folder)!r}")
    raw = pfio.load(weights)
    state = {}
    for k, v in raw.items():
        if v.dtype.kind != "f":
            raise ValueError(f"{os.fspath(weights)}: tensor {k!r} has dtype {v.dtype}, expected floating point")
        parts = k.split(".")
        if len(parts) >= 2 and parts[-2] in _OLD_ATTENTION and "attentions" in parts:
            parts[-2] = _OLD_ATTENTION[parts[-2]]
            k = ".".join(parts)
        state[k] = np.ascontiguousarray(v, dtype=np.float32)
    full = {**UNET_DEFAULTS, **config}
    return full, state


def read_scheduler(folder) -> dict:
    """The family config keys (sampler, schedule, prediction) of a DDPM/DDIM scheduler folder."""
    path = pathlib.Path(folder) / "scheduler_config.json"
    cfg = _read_json(path, "scheduler_config.json")
    cls = cfg.get("_class_name")
    if cls not in _SCHEDULERS:
        raise ValueError(f"{os.fspath(path)}: _class_name {cls!r} is not supported; expected one of "
                         f"{sorted(_SCHEDULERS)}")
    unknown = sorted(set(cfg) - set(_SCHED_KEYS))
    if unknown:
        raise ValueError(f"{os.fspath(path)}: unknown key(s) {unknown}; supported: {sorted(_SCHED_KEYS)}")
    for key, ok in (("thresholding", False), ("rescale_betas_zero_snr", False)):
        if cfg.get(key, ok) != ok:
            raise ValueError(f"{os.fspath(path)}: {key}={cfg[key]!r} is not supported (only {ok})")
    if cfg.get("variance_type", "fixed_small") != "fixed_small":
        raise ValueError(f"{os.fspath(path)}: variance_type={cfg['variance_type']!r} is not supported; "
                         "pixelforge's DDPM sampler uses 'fixed_small'")
    out = {"sampler": _SCHEDULERS[cls]}
    for k, v in cfg.items():
        dest = _SCHED_KEYS[k]
        if dest is not None and v is not None:
            out[dest] = v
    if "predict_epsilon" in cfg and "prediction_type" not in cfg:  # diffusers < 0.10
        out["prediction_type"] = "epsilon" if cfg["predict_epsilon"] else "sample"
    if cls == "DDPMScheduler":
        out.pop("set_alpha_to_one", None)
    return out


def _jsonable(v):
    if isinstance(v, tuple):
        return [_jsonable(e) for e in v]
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return v


def _write_json(path: pathlib.Path, obj: dict):
    pfio.atomic_write(path, (json.dumps({k: _jsonable(v) for k, v in obj.items()}, indent=2, sort_keys=True)
                             + "\n").encode())


def write_pipeline(path, unet_config: dict, state: dict, scheduler: dict, sampler: str):
    """Write a DDIMPipeline / DDPMPipeline folder; every file atomically."""
    p = pathlib.Path(path)
    if p.exists() and not p.is_dir():
        raise ValueError(f"path: {os.fspath(p)!r} exists and is not a folder")
    pipe, sched = ("DDIMPipeline", "DDIMScheduler") if sampler == "ddim" else ("DDPMPipeline", "DDPMScheduler")
    (p / "unet").mkdir(parents=True, exist_ok=True)
    (p / "scheduler").mkdir(parents=True, exist_ok=True)
    tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()}
    pfio.atomic_write(p / "unet" / WEIGHTS, st_save(tensors, metadata={"format": "pt"}))
    _write_json(p / "unet" / "config.json", {"_class_name": "UNet2DModel", "_diffusers_version": DIFFUSERS_VERSION,
                                             **unet_config})
    _write_json(p / "scheduler" / "scheduler_config.json",
                {"_class_name": sched, "_diffusers_version": DIFFUSERS_VERSION, **scheduler})
    _write_json(p / "model_index.json", {"_class_name": pipe, "_diffusers_version": DIFFUSERS_VERSION,
                                         "scheduler": ["diffusers", sched], "unet": ["diffusers", "UNet2DModel"]})
