"""pf.optim: SGD, Adam, AdamW with one fused update pass, EMA of weights, warm-up + cosine LR,
gradient clipping by norm. torch's argument names, defaults and update formulas.

Fusion: an optimizer moves the parameters of each dtype/device into one flat buffer and makes
every ``Parameter.data`` a view of it (so keep using the same Parameter objects; replacing
``p.data`` with a new array is noticed and copied back in). Gradients are gathered into a
matching flat buffer (a copy per parameter, or none after ``zero_grad(set_to_none=False)``,
which hands out views so backward accumulates in place), and one Numba kernel
(``pixelforge.ops._numba.optim``: CPU njit-parallel, GPU numba.cuda) updates everything.
Parameters with ``grad is None`` are skipped, as in torch.
"""
from __future__ import annotations

import math

import numpy as np

from . import _backend
from ._backend import xp_of as _xp
from ._dispatch import NotBuilt, register, resolve, set_order
from .ops._ref import optim as _ref_optim
from .tensor import Tensor

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "EMA", "WarmupCosine", "warmup_cosine", "clip_grad_norm_"]


# The fused updates, through the dispatch table like every op: "numba" (njit / numba.cuda) and
# "ref" (ops/_ref/optim.py, NumPy or CuPy: the GPU path where numba.cuda is missing).
def _numba_optim(device):
    if _backend.numba_version() is None:
        raise NotBuilt("numba is not installed")
    if device == "cuda" and not _backend.numba_cuda_available():
        raise NotBuilt("numba.cuda has no GPU")
    from .ops._numba import optim as k  # noqa: PLC0415
    return k


for _dev in ("cpu", "cuda"):
    for _op, _kernel in (("adam_step", "adam_step"), ("sgd_step", "sgd_step"), ("ema_update", "ema")):
        register(_op, _dev, "numba")(
            lambda d=_dev, k=_kernel: getattr(_numba_optim(d), f"{k}_{'gpu' if d == 'cuda' else 'cpu'}"))
        register(_op, _dev, "ref")(lambda op=_op: getattr(_ref_optim, op))
        set_order(_op, _dev, ("numba", "ref"))


def _update(op, arr):
    return resolve(op, "cpu" if isinstance(arr, np.ndarray) else "cuda")[1]


class _FlatGroup:
    """Parameters of one dtype and device living in one flat buffer, with flat grad and state."""

    def __init__(self, params):
        self.params = params
        first = params[0].data
        xp = _xp(first)
        self.xp = xp
        sizes = [int(p.data.size) for p in params]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        n = int(self.offsets[-1])
        self.flat = xp.empty(n, first.dtype)
        self.gflat = xp.zeros(n, first.dtype)
        self.pviews, self.gviews = [], []
        for p, a, b in zip(params, self.offsets[:-1], self.offsets[1:]):
            view = self.flat[a:b].reshape(p.data.shape)
            view[...] = p.data
            p.data = view
            self.pviews.append(view)
            self.gviews.append(self.gflat[a:b].reshape(p.data.shape))
        self.state = {}
        self.steps = np.zeros(len(params), np.int64)  # per-parameter step counts, as torch keeps
        self.all_range = (np.array([0], np.int64), np.array([n], np.int64))

    def gather(self):
        """Copy gradients into gflat, count a step for each parameter that has one, and return
        (starts, ends, steps): ranges of those parameters with equal step counts (usually one)."""
        active = []
        for i, (p, pv, gv) in enumerate(zip(self.params, self.pviews, self.gviews)):
            if p.data is not pv:  # someone replaced .data: take its values back into the buffer
                if p.data.shape != pv.shape:
                    raise ValueError(f"optimizer: parameter {i} changed shape from {pv.shape} to {p.data.shape}")
                pv[...] = p.data
                p.data = pv
            g = p.grad
            if g is None:
                active.append(False)
                continue
            if g is not gv:
                gv[...] = g
            active.append(True)
        steps = self.steps
        if all(active):
            steps += 1
            if (steps == steps[0]).all():  # the common case: one range over everything
                return self.all_range + (steps[:1].copy(),)
        else:
            steps[np.array(active)] += 1
        starts, ends, counts = [], [], []
        for i, on in enumerate(active):
            if not on:
                continue
            a, b = int(self.offsets[i]), int(self.offsets[i + 1])
            if ends and ends[-1] == a and counts[-1] == steps[i]:
                ends[-1] = b
            else:
                starts.append(a)
                ends.append(b)
                counts.append(int(steps[i]))
        return np.array(starts, np.int64), np.array(ends, np.int64), np.array(counts, np.int64)

    def zero_grad(self, set_to_none):
        if set_to_none:
            for p in self.params:
                p.grad = None
        else:
            self.gflat.fill(0)
            for p, gv in zip(self.params, self.gviews):
                p.grad = gv


class Optimizer:
    """Base class: ``param_groups[0]`` holds the hyper-parameters (one group)."""

    def __init__(self, params, defaults):
        params = list(params)
        if params and isinstance(params[0], dict):
            raise ValueError("params: per-group options are not supported; pass an iterable of Parameters")
        seen, uniq = set(), []
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"params[{i}]: expected a pf.nn.Parameter/Tensor, got {type(p).__name__}")
            if not p.requires_grad:
                continue
            if id(p) not in seen:
                seen.add(id(p))
                uniq.append(p)
        if not uniq:
            raise ValueError("params: the optimizer got an empty parameter list")
        self.param_groups = [dict(defaults, params=uniq)]
        groups = {}
        for p in uniq:
            key = (p.data.dtype.str, "cpu" if isinstance(p.data, np.ndarray) else "cuda")
            groups.setdefault(key, []).append(p)
        self._groups = [_FlatGroup(ps) for ps in groups.values()]
        self.step_count = 0

    @property
    def lr(self):
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value):
        self.param_groups[0]["lr"] = float(value)

    def zero_grad(self, set_to_none=True):
        for g in self._groups:
            g.zero_grad(set_to_none)

    def state_dict(self):
        """Hyper-parameters, step count and the flat state buffers (as NumPy arrays)."""
        out = {"step": self.step_count,
               "hyper": {k: v for k, v in self.param_groups[0].items() if k != "params"}}
        for i, g in enumerate(self._groups):
            out[f"group{i}.steps"] = g.steps.copy()
            for name, arr in g.state.items():
                out[f"group{i}.{name}"] = arr if isinstance(arr, np.ndarray) else arr.get()
        return out

    def load_state_dict(self, state):
        self.step_count = int(state["step"])
        self.param_groups[0].update(state.get("hyper", {}))
        for i, g in enumerate(self._groups):
            if f"group{i}.steps" in state:
                g.steps[...] = state[f"group{i}.steps"]
            for name in list(g.state):
                key = f"group{i}.{name}"
                if key not in state:
                    raise ValueError(f"state: missing {key!r}")
                if state[key].shape != g.state[name].shape:
                    raise ValueError(f"state: {key!r} has shape {state[key].shape}, expected {g.state[name].shape}")
                g.state[name][...] = g.xp.asarray(state[key])


def _check_hyper(lr, **kw):
    if not (isinstance(lr, (int, float)) and lr >= 0):
        raise ValueError(f"lr: expected a number >= 0, got {lr!r}")
    for k, v in kw.items():
        if v < 0:
            raise ValueError(f"{k}: expected >= 0, got {v!r}")


class Adam(Optimizer):
    """Adam (``decoupled_weight_decay=False``: L2 added to the gradient, torch's Adam)."""

    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, *, maximize=False):
        _check_hyper(lr, eps=eps, weight_decay=weight_decay)
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"betas: each must be in [0, 1), got {betas}")
        if maximize:
            raise ValueError("maximize: not supported")
        super().__init__(params, dict(lr=float(lr), betas=tuple(map(float, betas)), eps=float(eps),
                                      weight_decay=float(weight_decay)))
        for g in self._groups:
            g.state["exp_avg"] = g.xp.zeros_like(g.flat)
            g.state["exp_avg_sq"] = g.xp.zeros_like(g.flat)

    def step(self):
        hp = self.param_groups[0]
        self.step_count += 1
        b1, b2 = hp["betas"]
        for g in self._groups:
            starts, ends, steps = g.gather()
            if not len(starts):
                continue
            _update("adam_step", g.flat)(g.flat, g.gflat, g.state["exp_avg"], g.state["exp_avg_sq"], starts, ends,
                                         hp["lr"], b1, b2, hp["eps"], hp["weight_decay"], self._decoupled, steps)


class AdamW(Adam):
    """AdamW: decoupled weight decay (p *= 1 - lr * weight_decay), torch's default 0.01."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, *, maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, maximize=maximize)


class SGD(Optimizer):
    """SGD with optional momentum, dampening, Nesterov and weight decay (torch's formulas)."""

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        _check_hyper(lr, momentum=momentum, weight_decay=weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov: needs momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=float(lr), momentum=float(momentum), dampening=float(dampening),
                                      weight_decay=float(weight_decay), nesterov=bool(nesterov)))
        for g in self._groups:
            g.state["momentum_buffer"] = g.xp.zeros_like(g.flat)

    def step(self):
        hp = self.param_groups[0]
        self.step_count += 1
        for g in self._groups:
            starts, ends, steps = g.gather()
            if not len(starts):
                continue
            _update("sgd_step", g.flat)(g.flat, g.gflat, g.state["momentum_buffer"], starts, ends, hp["lr"],
                                        hp["momentum"], hp["dampening"], hp["weight_decay"], hp["nesterov"], steps == 1)


# ----------------------------------------------------------------------------- EMA
class EMA:
    """Exponential moving average of a module's floating parameters and buffers:
    ``shadow = decay * shadow + (1 - decay) * value`` after each :meth:`update`.

    ``warmup=True`` uses ``min(decay, (1 + n) / (10 + n))`` at update n so early averages are not
    dominated by the random initialisation. ``copy_to(module)`` loads the averages into a module
    (an EMA copy of the model, typically) and ``state_dict()`` gives them by name.
    """

    def __init__(self, module, decay=0.999, warmup=False):
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"decay: must be in [0, 1], got {decay}")
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self.num_updates = 0
        self.module = module
        self.shadow = {k: v.copy() for k, v in module.state_dict().items() if v.dtype.kind == "f"}

    def current_decay(self):
        if self.warmup:
            return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        return self.decay

    def update(self, module=None):
        module = self.module if module is None else module
        d = self.current_decay()
        sd = module.state_dict()
        fns = {}  # the update kernel per device, resolved once per call
        for name, s in self.shadow.items():
            p = sd[name]
            if s.flags.c_contiguous and p.flags.c_contiguous:
                on_host = isinstance(s, np.ndarray)
                if on_host not in fns:
                    fns[on_host] = _update("ema_update", s)
                fns[on_host](s.reshape(-1), p.reshape(-1), d)
            else:
                s += (1 - d) * (p - s)
        self.num_updates += 1

    def copy_to(self, module=None):
        module = self.module if module is None else module
        sd = module.state_dict()
        for name, s in self.shadow.items():
            sd[name][...] = s

    def state_dict(self):
        return dict(self.shadow)

    def load_state_dict(self, state):
        for name, s in self.shadow.items():
            if name not in state:
                raise ValueError(f"state: missing {name!r}")
            if tuple(state[name].shape) != s.shape:
                raise ValueError(f"state: {name!r} has shape {tuple(state[name].shape)}, expected {s.shape}")
            s[...] = _backend.to_host(state[name]) if isinstance(s, np.ndarray) else state[name]


# ----------------------------------------------------------------------------- LR schedule
def warmup_cosine(step, base_lr, warmup_steps, total_steps, min_lr=0.0):
    """Learning rate at ``step`` (0-based): linear warm-up over ``warmup_steps`` reaching base_lr
    at step warmup_steps - 1, then cosine decay to ``min_lr`` at ``total_steps``; flat after."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    t = min(1.0, (step - warmup_steps) / span)
    return min_lr + 0.5 * (base_lr - min_lr) * (1 + math.cos(math.pi * t))


class WarmupCosine:
    """Scheduler: sets ``optimizer.lr`` to :func:`warmup_cosine` at each :meth:`step` (call it
    after ``optimizer.step()``, as in torch); the learning rate for step 0 is set on creation."""

    def __init__(self, optimizer, warmup_steps, total_steps, min_lr=0.0):
        if warmup_steps < 0 or total_steps < 1:
            raise ValueError(f"warmup_steps/total_steps: expected >= 0 and >= 1, got {warmup_steps}, {total_steps}")
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.warmup_steps, self.total_steps, self.min_lr = int(warmup_steps), int(total_steps), float(min_lr)
        self.last_step = 0
        optimizer.lr = self.get_lr()

    def get_lr(self):
        return warmup_cosine(self.last_step, self.base_lr, self.warmup_steps, self.total_steps, self.min_lr)

    def step(self):
        self.last_step += 1
        self.optimizer.lr = self.get_lr()
        return self.optimizer.lr


# ----------------------------------------------------------------------------- clipping
def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale the gradients in place so their joint ``norm_type`` norm is at most ``max_norm``.
    Returns the norm before clipping (a float)."""
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    norm_type = float(norm_type)
    if norm_type == math.inf:
        total = max(float(abs(g).max()) if g.size else 0.0 for g in grads)
    else:
        total = sum(float((abs(g.astype(np.float64, copy=False)) ** norm_type).sum()) for g in grads) \
            ** (1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total gradient norm is {total}")
    coef = float(max_norm) / (total + 1e-6)
    if coef < 1.0:
        for g in grads:
            g *= coef
    return total
