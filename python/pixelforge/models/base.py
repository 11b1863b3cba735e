"""What every generator family shares: config checking, fit / sample / save / load.

A family subclasses :class:`GenerativeModel`, lists its ``DEFAULTS`` (every accepted config
key), builds its modules in ``_build`` and implements ``_train_step`` and ``_sample``.
Images are float32 (N, C, H, W) in [0, 1]; labels are int64 class indices.
"""
from __future__ import annotations

import gc
import json
import os
import pathlib
import time

import numpy as np

from .. import io as pfio
from ..nn import init as nn_init

WEIGHTS = "model.safetensors"


class GenerativeModel:
    family = "base"
    DEFAULTS: dict = {}
    # default number of training steps on the digits (about 3-4 minutes on 2 cores)
    DEFAULT_STEPS = 1000
    DEFAULT_BATCH = 128

    def __init__(self, image_shape=(1, 8, 8), num_classes=None, **config):
        shape = tuple(int(s) for s in image_shape) if isinstance(image_shape, (tuple, list)) else None
        if shape is None or len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"image_shape: expected (C, H, W) of positive ints, got {image_shape!r}")
        if shape[1] % 4 or shape[2] % 4:
            raise ValueError(f"image_shape: H and W must be multiples of 4, got {shape}")
        if num_classes is not None:
            if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
                raise ValueError(f"num_classes: expected None or an int >= 2, got {num_classes!r}")
            num_classes = int(num_classes)
        unknown = sorted(set(config) - set(self.DEFAULTS))
        if unknown:
            raise ValueError(f"config: unknown key(s) {unknown} for family {self.family!r}; "
                             f"accepted: {sorted(self.DEFAULTS)}")
        self.image_shape = shape
        self.num_classes = num_classes
        self.config = {**self.DEFAULTS, **config}
        self.steps_trained = 0
        nn_init.manual_seed(int(self.config.get("init_seed", 0)))
        self._build()

    # ------------------------------------------------------------------ to implement
    def _build(self):
        raise NotImplementedError

    def _modules(self) -> dict:
        """name -> pf.nn.Module holding every weight that is saved."""
        raise NotImplementedError

    def _train_step(self, x, y, rng, step, total) -> dict:
        raise NotImplementedError

    def _sample(self, n, labels, rng, **kw):
        raise NotImplementedError

    def _after_fit(self, images, labels):
        """Hook run after training on (images, labels) (e.g. copy EMA weights into the
        sampling network)."""

    # ------------------------------------------------------------------ checks
    @property
    def conditional(self) -> bool:
        return self.num_classes is not None

    def _check_images(self, images):
        x = np.asarray(images)
        if x.dtype.kind not in "fiu":
            raise TypeError(f"images: expected a numeric array, got dtype {x.dtype}")
        if x.ndim != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"images: expected shape (N, {', '.join(map(str, self.image_shape))}), got {x.shape}")
        if len(x) == 0:
            raise ValueError("images: empty")
        x = x.astype(np.float32)
        if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise ValueError("images: values must be finite and in [0, 1]")
        return x

    def _check_labels(self, labels, n, required):
        if labels is None:
            if required and self.conditional:
                raise ValueError("labels: this model is class-conditional; pass labels")
            return None
        if not self.conditional:
            raise ValueError("labels: given to an unconditional model (create it with num_classes=...)")
        y = np.asarray(labels)
        if y.ndim == 0:
            y = np.full(n, y)
        if y.dtype.kind not in "iu":
            raise TypeError(f"labels: expected integers, got dtype {y.dtype}")
        if y.shape != (n,):
            raise ValueError(f"labels: expected shape ({n},), got {y.shape}")
        if len(y) and (y.min() < 0 or y.max() >= self.num_classes):
            raise ValueError(f"labels: values must be in [0, {self.num_classes}), got {y.min()}..{y.max()}")
        return y.astype(np.int64)

    # ------------------------------------------------------------------ public
    def fit(self, images, labels=None, *, steps=None, batch_size=None, seed=0, progress=True,
            max_seconds=None) -> dict:
        """Train on ``images`` (N, C, H, W) in [0, 1] (and int ``labels`` (N,) when conditional).

        steps / batch_size: None uses the family's defaults (``DEFAULT_STEPS``,
        ``DEFAULT_BATCH``: 128, or 64 for the transformer and diffusion). max_seconds: stop early once
        this much wall time has passed (the learning-rate schedule still spans ``steps``).
        Returns the history: loss curves by name, plus ``steps``, ``seconds`` and
        ``images_per_second``.
        """
        x = self._check_images(images)
        y = self._check_labels(labels, len(x), required=True)
        steps = self.DEFAULT_STEPS if steps is None else steps
        batch_size = self.DEFAULT_BATCH if batch_size is None else batch_size
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
            raise ValueError(f"steps: expected a non-negative int, got {steps!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
        if max_seconds is not None and (isinstance(max_seconds, bool) or not isinstance(max_seconds, (int, float))
                                        or not max_seconds > 0):
            raise ValueError(f"max_seconds: expected a positive number, got {max_seconds!r}")
        rng = np.random.default_rng(seed)
        history: dict = {}
        bar = None
        if progress:
            try:
                from tqdm.auto import tqdm  # noqa: PLC0415
                # disable=None: no bar when stderr is not a terminal (CI logs)
                bar = tqdm(total=int(steps), desc=f"{self.family}", unit="step", leave=True, disable=None,
                           mininterval=0.5)
            except ImportError:
                bar = None
        t0 = time.perf_counter()
        bs = min(int(batch_size), len(x))
        # Everything alive now (modules, data, Numba's compiled kernels: hundreds of thousands
        # of objects) outlives the loop. Freezing it keeps the cyclic collector from rescanning
        # it in every full collection the step's allocations trigger (measured: 6 ms of a 50 ms
        # GAN step); unfrozen again afterwards.
        gc.freeze()
        try:
            done = self._fit_loop(x, y, steps, bs, rng, history, bar, t0, max_seconds)
        finally:
            gc.unfreeze()
        if bar is not None:
            bar.close()
        self._after_fit(x, y)
        secs = time.perf_counter() - t0
        self.steps_trained += done
        history["steps"] = done
        history["seconds"] = secs
        history["images_per_second"] = done * bs / secs if secs > 0 else 0.0
        return history

    def _fit_loop(self, x, y, steps, bs, rng, history, bar, t0, max_seconds):
        done = 0
        for step in range(int(steps)):
            if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
                break
            idx = rng.integers(0, len(x), bs)
            losses = self._train_step(x[idx], None if y is None else y[idx], rng, step, int(steps))
            done += 1
            for k, v in losses.items():
                history.setdefault(k, []).append(float(v))
            if bar is not None:
                bar.update(1)
                if step % 10 == 0:
                    ips = (step + 1) * bs / max(time.perf_counter() - t0, 1e-9)
                    bar.set_postfix({**{k: f"{float(v):.4f}" for k, v in losses.items()}, "img/s": f"{ips:.0f}"})
        return done

    def sample(self, n, *, seed=0, labels=None, **kw):
        """``n`` images, float32 (n, C, H, W) in [0, 1]; the same seed gives the same bits.

        labels: the classes of a conditional model's samples (default: 0, 1, 2, ... cycling).
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n: expected a non-negative int, got {n!r}")
        n = int(n)
        y = self._check_labels(labels, n, required=False)
        if y is None and self.conditional:
            y = np.arange(n, dtype=np.int64) % self.num_classes
        if n == 0:
            return np.zeros((0, *self.image_shape), np.float32)
        rng = np.random.default_rng(seed)
        for m in self._modules().values():
            m.eval()
        try:
            from ..tensor import no_grad  # noqa: PLC0415
            with no_grad():
                out = self._sample(n, y, rng, **kw)
        finally:
            for m in self._modules().values():
                m.train()
        return np.clip(np.asarray(out, np.float32), 0.0, 1.0)

    def state_dict(self) -> dict:
        out = {}
        for name, m in self._modules().items():
            for k, v in m.state_dict().items():
                out[f"{name}.{k}"] = v
        return out

    def load_state_dict(self, state):
        for name, m in self._modules().items():
            prefix = f"{name}."
            m.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})

    def save(self, directory):
        """Write ``directory/model.safetensors``: weights plus the config (JSON metadata)."""
        d = pathlib.Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        meta = {"family": self.family, "image_shape": json.dumps(list(self.image_shape)),
                "num_classes": json.dumps(self.num_classes), "model_config": json.dumps(self.config),
                "steps_trained": str(self.steps_trained)}
        pfio.save(self.state_dict(), os.fspath(d / WEIGHTS), metadata=meta)

    def __repr__(self):
        cond = f", num_classes={self.num_classes}" if self.conditional else ""
        return f"{type(self).__name__}(image_shape={self.image_shape}{cond}, steps_trained={self.steps_trained})"
