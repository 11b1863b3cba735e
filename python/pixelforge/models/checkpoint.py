"""Training checkpoints: everything a ``fit`` needs to continue as if it had never stopped.

A checkpoint is ``ckpt-<step>.safetensors`` in the checkpoint folder: the model's weights (EMA
copies included), every optimizer's arrays, and JSON metadata with the optimizers' counters and
hyper-parameters, the EMA update counts, the host RNG's state (it draws the data order and every
seed a step uses), the step, the run's plan (total steps, batch size) and the loss history so
far. It is written atomically, then its SHA-256 goes to ``ckpt-<step>.sha256`` (atomically too):
a checkpoint without a matching checksum is torn or corrupted, and loading falls back to the
previous one with a warning. The newest ``KEEP`` checkpoints are kept.
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
import warnings

import numpy as np

from .. import _backend
from .. import io as pfio

KEEP = 2
_NAME = re.compile(r"^ckpt-(\d{8,})\.safetensors$")


def _digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _optimizer_parts(model):
    """name -> (arrays dict, scalars dict) for every optimizer / EMA of the model."""
    out = {}
    for name, opt in model._optimizers().items():
        sd = opt.state_dict()
        arrays = {k: np.asarray(_backend.to_host(v)) for k, v in sd.items() if hasattr(v, "shape")}
        scalars = {k: v for k, v in sd.items() if not hasattr(v, "shape")}
        if hasattr(opt, "num_updates"):
            scalars["num_updates"] = int(opt.num_updates)
        out[name] = (arrays, scalars)
    return out


def save(model, folder, *, step, plan, rng, history):
    """Write the checkpoint of ``model`` after ``step`` steps of the fit described by ``plan``
    (total steps, batch size, seed, steps_trained before the fit); keep the newest KEEP."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": np.asarray(_backend.to_host(v)) for k, v in model.state_dict().items()}
    opt_meta = {}
    for name, (arrays, scalars) in _optimizer_parts(model).items():
        for k, v in arrays.items():
            tensors[f"opt.{name}.{k}"] = v
        opt_meta[name] = scalars
    meta = {"family": model.family, "image_shape": list(model.image_shape), "num_classes": model.num_classes,
            "config": model.config, "step": int(step), "plan": plan, "optimizers": opt_meta,
            "rng": rng.bit_generator.state, "history": history, "extra": model._checkpoint_extra()}
    path = folder / f"ckpt-{int(step):08d}.safetensors"
    pfio.save(tensors, os.fspath(path), metadata={"checkpoint": json.dumps(meta, default=pfio._json_default)})
    pfio.atomic_write(path.with_suffix(".sha256"), _digest(path).encode())
    for old in _listed(folder)[KEEP:]:
        for p in (old, old.with_suffix(".sha256")):
            try:
                p.unlink()
            except OSError:
                pass
    return path


def _listed(folder):
    """Checkpoint files, newest step first."""
    found = []
    for p in pathlib.Path(folder).iterdir() if pathlib.Path(folder).is_dir() else ():
        m = _NAME.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found, reverse=True)]


def latest(folder):
    """(path, tensors, metadata) of the newest intact checkpoint in ``folder``, or None. A torn
    or corrupted one (checksum missing or wrong, unreadable) is skipped with a warning."""
    for path in _listed(folder):
        why = None
        sha = path.with_suffix(".sha256")
        try:
            if not sha.is_file():
                why = "its checksum file is missing (torn write)"
            elif sha.read_text().strip() != _digest(path):
                why = "its checksum does not match (corrupted)"
            else:
                tensors = pfio.load(os.fspath(path))
                meta = json.loads(pfio.load_metadata(os.fspath(path))["checkpoint"])
                return path, tensors, meta
        except (OSError, ValueError, KeyError) as e:
            why = f"it cannot be read ({e})"
        warnings.warn(f"checkpoint {path} skipped: {why}; trying the previous one", RuntimeWarning, stacklevel=3)
    return None


def restore(model, tensors, meta):
    """Load weights, optimizer and EMA state, counters and family extras into ``model``;
    returns (step, plan, rng, history)."""
    for key, want in (("family", model.family), ("image_shape", list(model.image_shape)),
                      ("num_classes", model.num_classes)):
        if meta[key] != want:
            raise ValueError(f"resume: the checkpoint is for {key} {meta[key]!r}, this model has {want!r}")
    ours = json.loads(json.dumps(model.config, default=pfio._json_default))
    diff = sorted(k for k in set(ours) | set(meta["config"]) if ours.get(k) != meta["config"].get(k))
    if diff:
        raise ValueError(f"resume: the checkpoint's model config differs in {diff}; create the model with the "
                         "config it was trained with")
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    for name, opt in model._optimizers().items():
        scalars = dict(meta["optimizers"][name])
        n_updates = scalars.pop("num_updates", None)
        prefix = f"opt.{name}."
        opt.load_state_dict({**scalars, **{k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}})
        if n_updates is not None:
            opt.num_updates = int(n_updates)
    model._restore_extra(meta.get("extra") or {})
    rng = np.random.default_rng()
    rng.bit_generator.state = meta["rng"]
    return int(meta["step"]), meta["plan"], rng, meta["history"]
