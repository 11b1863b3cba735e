"""What every generator family shares: config checking, fit / sample / save / load.

A family subclasses :class:`GenerativeModel`, lists its ``DEFAULTS`` (every accepted config
key), builds its modules in ``_build`` and its optimizers in ``_build_optimizers``, and
implements ``_train_step`` and ``_sample``. Images are float32 (N, C, H, W) in [0, 1]; labels
are int64 class indices.

Devices: a model lives on ``device`` "cpu" (NumPy) or "cuda" (CuPy): ``create(..., device=)``,
``m.to(device)``. On the GPU each training step moves its batch over once, draws its noise on
the device (``pf.random``), runs the fused optimizers there, and reads the losses back only
every ``LOG_EVERY`` steps (one transfer for all of them); ``sample`` returns a NumPy array, and
``save`` writes host copies. Families keep labels and timesteps on the host (they are validated
there) and hand device arrays only to the layers.
"""
from __future__ import annotations

import contextlib
import gc
import json
import os
import pathlib
import signal
import threading
import time

import numpy as np

from .. import _backend
from .. import io as pfio
from .._memory import memory_pool
from .. import random as pfrandom
from ..nn import init as nn_init
from .._validate import integer, real_number
from ..tensor import no_grad
from . import checkpoint

WEIGHTS = "model.safetensors"


class GenerativeModel:
    family = "base"
    DEFAULTS: dict = {}
    # default number of training steps on the digits (about 3-4 minutes on 2 cores)
    DEFAULT_STEPS = 1000
    DEFAULT_BATCH = 128
    # on the GPU, losses are read back once every LOG_EVERY steps (the only host sync of a step)
    LOG_EVERY = 25

    def __init__(self, image_shape=(1, 8, 8), num_classes=None, *, device="cpu", **config):
        shape = tuple(int(s) for s in image_shape) if isinstance(image_shape, (tuple, list)) else None
        if shape is None or len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"image_shape: expected (C, H, W) of positive ints, got {image_shape!r}")
        if shape[1] % 4 or shape[2] % 4:
            raise ValueError(f"image_shape: H and W must be multiples of 4, got {shape}")
        if num_classes is not None:
            num_classes = integer(num_classes, "num_classes", min_value=2, wrong_type=ValueError)
        unknown = sorted(set(config) - set(self.DEFAULTS))
        if unknown:
            raise ValueError(f"config: unknown key(s) {unknown} for family {self.family!r}; "
                             f"accepted: {sorted(self.DEFAULTS)}")
        self.image_shape = shape
        self.num_classes = num_classes
        self.config = {**self.DEFAULTS, **self.size_defaults(shape), **config}
        self.steps_trained = 0
        self.device = "cpu"
        self.compute_dtype = "float32"  # .to(dtype="bfloat16"): mixed precision
        _check_device(device)
        nn_init.manual_seed(int(self.config.get("init_seed", 0)))
        self._build()
        self._build_optimizers()
        if device != "cpu":
            self.to(device)

    @classmethod
    def size_defaults(cls, image_shape) -> dict:
        """Config defaults that depend on the image size (C, H, W), over ``DEFAULTS``; explicit
        config overrides both. Families scale their networks and training length here."""
        return {}

    # default training steps for large images (``is_large``; sized for about 9 minutes of a
    # 2-core CPU at 28x28); None: DEFAULT_STEPS at every size
    LARGE_STEPS = None

    @property
    def default_steps(self) -> int:
        """Training steps ``fit`` takes by default: ``DEFAULT_STEPS`` (sized for the 8x8
        digits), or ``LARGE_STEPS`` for images larger than 16x16."""
        return int(self.LARGE_STEPS if self.LARGE_STEPS and is_large(self.image_shape) else self.DEFAULT_STEPS)

    # ------------------------------------------------------------------ to implement
    def _build(self):
        raise NotImplementedError

    def _modules(self) -> dict:
        """name -> pf.nn.Module holding every weight that is saved."""
        raise NotImplementedError

    def _build_optimizers(self):
        """(Re)create the optimizers and EMA trackers over the modules' current arrays."""
        raise NotImplementedError

    def _optimizers(self) -> dict:
        """name -> optimizer or EMA built by ``_build_optimizers`` (their state moves with ``to``)."""
        raise NotImplementedError

    def _train_step(self, x, y, rng, step, total) -> dict:
        raise NotImplementedError

    def _sample(self, n, labels, rng, **kw):
        raise NotImplementedError

    def _prepare_fit(self, images, labels):
        """Hook run when a fresh model starts its first fit (e.g. learn a tokenizer's codebook
        from the data); not on a resumed or continued fit."""

    def _after_fit(self, images, labels):
        """Hook run after training on (images, labels) (e.g. copy EMA weights into the
        sampling network)."""

    # ------------------------------------------------------------------ device
    @property
    def xp(self):
        """The array module of this model's device: NumPy or CuPy."""
        return np if self.device == "cpu" else _backend.cupy()

    def to(self, device=None, dtype=None):
        """Move every weight, optimizer state and EMA average to ``device`` ("cpu" or "cuda"),
        and/or set the precision its networks compute in: ``dtype="bfloat16"`` (mixed:
        bfloat16 operands and float32 sums in the GEMMs and convolutions of training and
        sampling, weights and optimizer state float32; see pf.precision) or "float32".
        Returns the model. The optimizers are rebuilt over the moved arrays with their state."""
        if dtype is not None:
            from .. import precision
            want = precision._dtype_name(dtype)
            for m in self._modules().values():
                m.to(dtype=want)
            self.compute_dtype = want
        if device is None:
            return self
        _check_device(device)
        if device == self.device:
            return self
        old = self._optimizers()
        state = {name: opt.state_dict() for name, opt in old.items()}
        for m in self._modules().values():
            m.to(device=device)
        self._build_optimizers()
        for name, opt in self._optimizers().items():
            opt.load_state_dict(state[name])
            if hasattr(opt, "num_updates"):  # an EMA's warm-up position
                opt.num_updates = old[name].num_updates
        self.device = device
        return self

    def _dev(self, a):
        """A host array on this model's device (an explicit copy on the GPU)."""
        return a if self.device == "cpu" else self.xp.asarray(a)

    def _randn(self, shape, rng, offset=0):
        """Standard normals on this model's device from a seed drawn from the host ``rng``:
        Philox streams, so the CPU and the GPU draw the same bits."""
        return pfrandom.randn(shape, seed=int(rng.integers(0, 2 ** 62)), offset=offset, device=self.device)

    # ------------------------------------------------------------------ checks
    @property
    def conditional(self) -> bool:
        return self.num_classes is not None

    def _check_images(self, images):
        x = np.asarray(_backend.to_host(images))
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

    def _check_callback(self, callback):
        if callback is not None and not callable(callback):
            raise TypeError(f"callback: expected a callable fn(step, total, preview), got {type(callback).__name__}")

    def _check_strength(self, strength):
        """An editing strength as a float in [0, 1]."""
        s = real_number(strength, "strength")
        if not 0.0 <= s <= 1.0:
            raise ValueError(f"strength: must lie in [0, 1], got {strength}")
        return s

    @staticmethod
    def _host_images(images):
        """Images on any device as host float32 clipped to [0, 1] (what the public methods return)."""
        return np.clip(np.asarray(_backend.to_host(images), np.float32), 0.0, 1.0)

    def _check_labels(self, labels, n, required):
        if labels is None:
            if required and self.conditional:
                raise ValueError("labels: this model is class-conditional; pass labels")
            return None
        if not self.conditional:
            raise ValueError("labels: given to an unconditional model (create it with num_classes=...)")
        y = np.asarray(_backend.to_host(labels))
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
            max_seconds=None, checkpoint_dir=None, checkpoint_every=None, resume=False) -> dict:
        """Train on ``images`` (N, C, H, W) in [0, 1] (and int ``labels`` (N,) when conditional).

        steps / batch_size: None uses the family's defaults (``DEFAULT_STEPS``,
        ``DEFAULT_BATCH``: 128, or 64 for the transformer and diffusion). max_seconds: stop early once
        this much wall time has passed (the learning-rate schedule still spans ``steps``).
        checkpoint_dir / checkpoint_every: write an atomic, checksummed checkpoint (weights,
        optimizer and EMA state, step, RNG state, history) every N steps and when the fit ends or
        is interrupted (Ctrl-C: the step in flight finishes, the checkpoint is written, then
        KeyboardInterrupt). resume=True: continue from the newest intact checkpoint in
        checkpoint_dir (none: start fresh); the result equals a fit never stopped, bit for bit
        on the CPU, given the same images, labels, steps, batch_size and seed.
        Returns the history: loss curves by name, plus ``steps``, ``seconds`` and
        ``images_per_second``.
        """
        x = self._check_images(images)
        y = self._check_labels(labels, len(x), required=True)
        steps = self.default_steps if steps is None else steps
        batch_size = self.DEFAULT_BATCH if batch_size is None else batch_size
        steps = integer(steps, "steps", min_value=0, wrong_type=ValueError)
        batch_size = integer(batch_size, "batch_size", min_value=1, wrong_type=ValueError)
        if max_seconds is not None and (isinstance(max_seconds, bool) or not isinstance(max_seconds, (int, float))
                                        or not max_seconds > 0):
            raise ValueError(f"max_seconds: expected a positive number, got {max_seconds!r}")
        if checkpoint_every is not None:
            checkpoint_every = integer(checkpoint_every, "checkpoint_every", min_value=1, wrong_type=ValueError)
        if (checkpoint_every is not None or resume) and checkpoint_dir is None:
            raise ValueError("checkpoint_dir: needed with checkpoint_every or resume")
        rng = np.random.default_rng(seed)
        history: dict = {}
        start = 0
        bs = min(int(batch_size), len(x))
        plan = {"steps": int(steps), "batch_size": bs, "seed": int(seed), "n_images": int(len(x)),
                "steps_trained": int(self.steps_trained)}
        if resume:
            found = checkpoint.latest(checkpoint_dir)
            if found is not None:
                _, tensors, meta = found
                for key in ("steps", "batch_size", "seed", "n_images"):
                    if meta["plan"][key] != plan[key]:
                        raise ValueError(f"resume: the checkpointed run has {key}={meta['plan'][key]}, this call "
                                         f"{plan[key]}; resume with the same arguments")
                start, plan, rng, history = checkpoint.restore(self, tensors, meta)
                self.steps_trained = int(plan["steps_trained"])
        if start == 0 and self.steps_trained == 0:
            self._prepare_fit(x, y)
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
        if bar is not None and start:
            bar.update(start)
        ckpt = None
        if checkpoint_dir is not None:
            def ckpt(done_steps):
                checkpoint.save(self, checkpoint_dir, step=done_steps, plan=plan, rng=rng, history=history)
        # Everything alive now (modules, data, Numba's compiled kernels: hundreds of thousands
        # of objects) outlives the loop. Freezing it keeps the cyclic collector from rescanning
        # it in every full collection the step's allocations trigger (measured: 6 ms of a 50 ms
        # GAN step); unfrozen again afterwards.
        gc.freeze()
        try:
            with _deferred_interrupt(ckpt is not None) as interrupted, memory_pool():
                done = self._fit_loop(x, y, steps, bs, rng, history, bar, t0, max_seconds, start=start,
                                      ckpt=ckpt, every=checkpoint_every, interrupted=interrupted)
        finally:
            gc.unfreeze()
        if interrupted():
            if bar is not None:
                bar.close()
            raise KeyboardInterrupt(f"fit interrupted after step {done}; checkpoint written to {checkpoint_dir}")
        if bar is not None:
            bar.close()
        self._after_fit(x, y)
        secs = time.perf_counter() - t0
        self.steps_trained += done    # a resumed fit: steps_trained is back at the fit's start
        history["steps"] = done
        history["seconds"] = secs     # this call's time and rate (steps start..done)
        history["images_per_second"] = (done - start) * bs / secs if secs > 0 else 0.0
        return history

    def _fit_loop(self, x, y, steps, bs, rng, history, bar, t0, max_seconds, start=0, ckpt=None, every=None,
                  interrupted=lambda: False):
        """Steps start..steps-1; returns the number of steps done in total (start included).
        ckpt(done) writes a checkpoint every ``every`` steps, at the end and on an interrupt."""
        # Losses come back from _train_step as 0-d arrays; on the GPU they wait here and are read
        # back every LOG_EVERY steps in one transfer, so a step never waits for the device.
        log_every = 1 if self.device == "cpu" else self.LOG_EVERY
        pending = []
        done = start
        for step in range(start, int(steps)):
            if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
                break
            idx = rng.integers(0, len(x), bs)
            losses = self._train_step(x[idx], None if y is None else y[idx], rng, step, int(steps))
            done += 1
            pending.append(losses)
            if len(pending) >= log_every:
                last = self._record_losses(pending, history)
                pending = []
                if bar is not None and (log_every > 1 or step % 10 == 0):
                    ips = (step + 1 - start) * bs / max(time.perf_counter() - t0, 1e-9)
                    bar.set_postfix({**{k: f"{v:.4f}" for k, v in last.items()}, "img/s": f"{ips:.0f}"},
                                    refresh=False)
            if bar is not None:
                bar.update(1)
            stop = interrupted()
            if ckpt is not None and (stop or (every and done % every == 0)):
                if pending:
                    self._record_losses(pending, history)
                    pending = []
                ckpt(done)
            if stop:
                return done
        if pending:
            self._record_losses(pending, history)
        if ckpt is not None and done > start and not (every and done % every == 0):
            ckpt(done)
        return done

    # checkpoints: family state outside modules and optimizers (none by default)
    def _checkpoint_extra(self) -> dict:
        return {}

    def _restore_extra(self, extra: dict) -> None:
        pass

    def _record_losses(self, pending, history):
        """Append the pending steps' losses to ``history`` (one device->host transfer on the
        GPU); returns the last step's losses as floats."""
        names = list(pending[0])
        if self.device == "cpu":
            rows = [[float(p[k]) for k in names] for p in pending]
        else:
            xp = self.xp
            rows = xp.stack([xp.stack([xp.asarray(p[k], xp.float64) for k in names]) for p in pending]).get()
            rows = rows.tolist()
        for row in rows:
            for k, v in zip(names, row):
                history.setdefault(k, []).append(float(v))
        return dict(zip(names, rows[-1]))

    # families whose _sample takes callback= and calls it once per step (others: once at the end)
    STEPWISE_CALLBACK = False

    @contextlib.contextmanager
    def _inference(self):
        """Eval mode, no autograd and pixelforge's memory pool for the duration (sampling, editing)."""
        mods = list(self._modules().values())
        for m in mods:
            m.eval()
        try:
            with no_grad(), memory_pool():
                yield
        finally:
            for m in mods:
                m.train()

    def sample(self, n, *, seed=0, labels=None, callback=None, **kw):
        """``n`` images, float32 (n, C, H, W) in [0, 1]; the same seed gives the same bits.

        labels: the classes of a conditional model's samples (default: 0, 1, 2, ... cycling).
        callback: ``fn(step, total, preview)`` with preview float32 (n, C, H, W) in [0, 1],
        called once per step (diffusion: the current x0 estimate; transformer: the image so
        far, undecided pixels grey; GAN / VAE: once, with the result). Returning False stops
        early and ``sample`` returns that preview.
        """
        n = integer(n, "n", min_value=0, wrong_type=ValueError)
        self._check_callback(callback)
        y = self._check_labels(labels, n, required=False)
        if y is None and self.conditional:
            y = np.arange(n, dtype=np.int64) % self.num_classes
        if n == 0:
            return np.zeros((0, *self.image_shape), np.float32)
        rng = np.random.default_rng(seed)
        if callback is not None and self.STEPWISE_CALLBACK:
            kw["callback"] = callback
        with self._inference():
            out = self._host_images(self._sample(n, y, rng, **kw))
        if callback is not None and not self.STEPWISE_CALLBACK:
            callback(1, 1, out)
        return out

    # ------------------------------------------------------------------ interpolation
    def _latent(self, n, labels, rng):
        """The starting point ``sample`` draws from ``rng`` for n images (families that have one)."""
        raise NotImplementedError(f"{self.family}: no continuous latent to interpolate")

    def _from_latent(self, z, labels, **kw):
        raise NotImplementedError(f"{self.family}: no continuous latent to interpolate")

    def interpolate(self, seed_a, seed_b, n, labels=None, **kw):
        """``n`` frames from seed_a's sample to seed_b's: spherical interpolation (slerp) of the
        latent each seed draws (GAN, VAE: z; diffusion: the initial noise, sampled with
        deterministic DDIM). Frame 0 and frame n − 1 are ``sample(1, seed=seed_a)`` and
        ``sample(1, seed=seed_b)``. labels: one class for every frame (conditional models;
        default 0). A float32 NumPy array (n, C, H, W) in [0, 1]."""
        n = integer(n, "n", min_value=2, wrong_type=ValueError)
        for name, v in (("seed_a", seed_a), ("seed_b", seed_b)):
            integer(v, name, min_value=0, wrong_type=TypeError)
        y = None
        if self.conditional:
            y = self._check_labels(0 if labels is None else labels, 1, required=True)
        else:
            self._check_labels(labels, 1, required=False)
        za = self._latent(1, y, np.random.default_rng(seed_a))
        zb = self._latent(1, y, np.random.default_rng(seed_b))
        ts = np.linspace(0.0, 1.0, n)
        z = slerp(za, zb, ts)
        ys = None if y is None else np.full(n, y[0])
        with self._inference():
            return self._host_images(self._from_latent(z, ys, **kw))

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
        dev = f", device={self.device!r}" if self.device != "cpu" else ""
        return (f"{type(self).__name__}(image_shape={self.image_shape}{cond}, steps_trained={self.steps_trained}"
                f"{dev})")


def is_large(image_shape) -> bool:
    """Whether (C, H, W) is past the digits' scale (more than 16x16 pixels): where the families
    switch to their larger defaults (``size_defaults``, ``LARGE_STEPS``)."""
    _, h, w = image_shape
    return h * w > 256


def halvings(h, w, *, smallest=4):
    """How many times a network at (h, w) can halve its resolution: at least 2 (H and W are
    multiples of 4), then while both sides stay even and the smaller keeps >= ``smallest``
    pixels. 8x8 -> 2 (2x2), 28x28 -> 2 (7x7), 32x32 -> 3 (4x4)."""
    k = 2
    while (h >> k) % 2 == 0 and (w >> k) % 2 == 0 and min(h, w) >> (k + 1) >= smallest:
        k += 1
    return k


def _check_device(device):
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device: expected 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and _backend.cupy() is None:
        raise ValueError("device: 'cuda' needs CuPy and an NVIDIA GPU; none is available here "
                         "(pip install 'pixelforge[cuda]' on a GPU machine; pf.info() shows what was found)")


def slerp(a, b, ts):
    """Spherical interpolation between latents a and b (each (1, ...)), one row per t in ts:
    sin((1 − t)Ω)/sin Ω · a + sin(tΩ)/sin Ω · b with Ω the angle between them (linear when they
    are parallel). t = 0 and 1 give a and b exactly. Same device and dtype as a."""
    xp = _backend.xp_of(a)
    fa = _backend.to_host(a).reshape(-1).astype(np.float64)
    fb = _backend.to_host(b).reshape(-1).astype(np.float64)
    cos = float(fa @ fb / max(np.linalg.norm(fa) * np.linalg.norm(fb), 1e-300))
    omega = float(np.arccos(np.clip(cos, -1.0, 1.0)))
    rows = []
    for t in np.asarray(ts, np.float64):
        if t == 0.0:
            rows.append(fa)
        elif t == 1.0:
            rows.append(fb)
        elif omega < 1e-6:
            rows.append((1 - t) * fa + t * fb)
        else:
            rows.append((np.sin((1 - t) * omega) * fa + np.sin(t * omega) * fb) / np.sin(omega))
    out = np.stack(rows).astype(np.asarray(_backend.to_host(a)).dtype).reshape((len(rows),) + tuple(a.shape[1:]))
    return out if xp is np else xp.asarray(out)


@contextlib.contextmanager
def _deferred_interrupt(active):
    """While active (a fit that checkpoints, on the main thread): the first Ctrl-C only sets a
    flag that the training loop reads after the step in flight; a second one interrupts at once.
    Yields a function returning whether Ctrl-C came."""
    hit = []
    if not active or threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return

    def handler(signum, frame):
        if hit:
            raise KeyboardInterrupt
        hit.append(signum)

    old = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(hit)
    finally:
        signal.signal(signal.SIGINT, old)
