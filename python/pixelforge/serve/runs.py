"""The runs a studio serves: loading run folders, what each can do, and carrying out one
request on one model (generate, img2img, inpaint, interpolate)."""
from __future__ import annotations

import os
import pathlib

import numpy as np

from .. import __version__, data, models
from . import images as pimg

# which generate settings each family takes (the page hides the others; the API rejects them)
SETTINGS = {
    "gan": ("n", "seed", "label"),
    "vae": ("n", "seed", "label", "temperature"),
    "transformer": ("n", "seed", "label", "temperature"),
    "diffusion": ("n", "seed", "label", "steps", "sampler", "guidance_scale"),
}
OPERATIONS = {
    "gan": ("generate", "interpolate"),
    "vae": ("generate", "img2img", "interpolate"),
    "transformer": ("generate", "interpolate"),
    "diffusion": ("generate", "img2img", "inpaint", "interpolate"),
}


class RequestError(ValueError):
    """A request this run cannot carry out (HTTP 400, or ``status``)."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def _is_run(d: pathlib.Path) -> bool:
    return (d / models.WEIGHTS).is_file() or (d / "model_index.json").is_file() or (
        (d / "config.json").is_file() and (d / "diffusion_pytorch_model.safetensors").is_file())


def find_runs(paths) -> list[pathlib.Path]:
    """Run folders from the command line: each path is a run (pixelforge or diffusers folder),
    or a folder whose sub-folders are runs (``pixelforge demo``'s output)."""
    found = []
    for p in map(pathlib.Path, paths):
        if not p.is_dir():
            raise FileNotFoundError(f"runs: {os.fspath(p)!r} is not a folder")
        if _is_run(p):
            found.append(p)
            continue
        subs = sorted(d for d in p.iterdir() if d.is_dir() and _is_run(d))
        if not subs:
            raise FileNotFoundError(f"runs: {os.fspath(p)!r} holds no saved run (model.safetensors or a "
                                    "diffusers folder), nor do its sub-folders")
        found.extend(subs)
    return found


def load_run(path: pathlib.Path, device="cpu"):
    if (path / models.WEIGHTS).is_file():
        return models.load(path, device=device)
    return models.load_diffusers(path)


class Run:
    """One served model, with the description ``GET /api/runs`` gives."""

    def __init__(self, name, model, path=None):
        self.name, self.model, self.path = name, model, path
        self.family = model.family
        c = model.config
        shape = tuple(int(v) for v in model.image_shape)
        self.class_names = None
        if model.conditional:
            native = [k for k, s in data.NATIVE_SHAPES.items() if tuple(s) == shape]
            names = data.CLASSES.get(native[0]) if native else None
            self.class_names = list(names) if names and len(names) == model.num_classes else [
                str(i) for i in range(model.num_classes)]
        settings = list(SETTINGS[self.family])
        if self.family == "diffusion" and not model.conditional:
            settings.remove("guidance_scale")
        self.settings = tuple(settings)
        defaults = {"n": 4}
        for key, cfg in (("steps", "sample_steps"), ("sampler", "sampler"), ("guidance_scale", "guidance_scale"),
                         ("temperature", "temperature")):
            if key in self.settings:
                defaults[key] = c[cfg]
        self.defaults = defaults

    def describe(self) -> dict:
        m = self.model
        return {"name": self.name, "family": self.family, "image_shape": list(m.image_shape),
                "num_classes": m.num_classes, "class_names": self.class_names, "text": False,
                "operations": list(OPERATIONS[self.family]), "settings": list(self.settings),
                "defaults": dict(self.defaults),
                # colour data (emoji) sits on white, the grey sets (digits, Fashion-MNIST) on black
                "background": "white" if m.image_shape[0] == 3 else "black"}

    # ------------------------------------------------------------------ checking a request
    def check(self, kind: str, req: dict) -> dict:
        """The full settings the request resolves to (defaults filled in); RequestError when
        this run cannot do it. Runs in the request handler, so a bad request is a 4xx before
        it reaches the queue."""
        if kind not in OPERATIONS[self.family]:
            raise RequestError(f"kind: a {self.family} run cannot do {kind} "
                               f"(it can: {', '.join(OPERATIONS[self.family])})")
        # which fields each kind has at all is the schema's business (schemas.py); here: this family
        allowed = set(self.settings) | {"run", "kind", "image", "mask", "strength", "seed_a", "seed_b"}
        for key, value in req.items():
            if value is not None and key not in allowed:
                raise RequestError(f"{key}: does not apply to {kind} with a {self.family} run")
        label = req.get("label")
        if label is not None:
            if not self.model.conditional:
                raise RequestError(f"label: run {self.name!r} is unconditional")
            if label >= self.model.num_classes:
                raise RequestError(f"label: must be below {self.model.num_classes} for run {self.name!r}, got {label}")
        if kind == "img2img" and self.family == "vae" and self.model.conditional and label is None:
            raise RequestError("label: img2img with a conditional VAE needs a class")
        settings = {"run": self.name, "family": self.family, "kind": kind, "version": __version__}
        for key, value in req.items():
            if key in ("image", "mask", "kind") or (value is None and key not in self.settings):
                continue      # uploads are named by their hash; settings that do not apply are left out
            settings[key] = value if value is not None else self.defaults.get(key)
        if kind == "interpolate":
            settings.pop("seed", None)          # the frames come from seed_a and seed_b
        return settings

    # ------------------------------------------------------------------ carrying it out
    def execute(self, kind, settings, inputs, callback):
        """Images float32 (n, C, H, W) in [0, 1]; ``inputs`` holds decoded uploads (image,
        mask); callback(step, total, preview) -> False stops early."""
        m, s = self.model, settings
        n = int(s.get("n") or 1)
        labels = None if s.get("label") is None else np.full(n, s["label"], np.int64)
        kw = {k: s[k] for k in ("steps", "sampler", "guidance_scale", "temperature")
              if s.get(k) is not None and k in self.settings}
        if kind == "generate":
            return m.sample(n, seed=s["seed"], labels=labels, callback=callback, **kw)
        if kind == "interpolate":
            kw = {"steps": kw["steps"]} if "steps" in kw else {}
            out = m.interpolate(s["seed_a"], s["seed_b"], n, labels=s.get("label"), **kw)
            callback(1, 1, out)
            return out
        x = np.repeat(inputs["image"], n, axis=0)
        if kind == "img2img":
            if self.family == "vae":
                out = m.img2img(x, s["strength"], seed=s["seed"], labels=labels)
                callback(1, 1, out)
                return out
            return m.img2img(x, s["strength"], seed=s["seed"], labels=labels, callback=callback, **kw)
        mask = np.repeat(inputs["mask"], n, axis=0)
        return m.inpaint(x, mask, seed=s["seed"], labels=labels, callback=callback,
                         **({"steps": kw["steps"]} if "steps" in kw else {}))

    def decode_inputs(self, req) -> tuple[dict, dict]:
        """(decoded uploads, their sha256 for the settings)."""
        inputs, hashes = {}, {}
        shape = self.model.image_shape
        for name in ("image", "mask"):
            if req.get(name) is not None:
                inputs[name], hashes[f"{name}_sha256"] = pimg.upload(req[name], shape, name)
        return inputs, hashes


def load_runs(paths, device="cpu") -> dict[str, Run]:
    """name -> Run for the given run folders (names from the folder names, made unique)."""
    runs = {}
    for p in find_runs(paths):
        name, k = p.resolve().name, 2
        while name in runs:
            name, k = f"{p.resolve().name}-{k}", k + 1
        runs[name] = Run(name, load_run(p, device), p)
    return runs
