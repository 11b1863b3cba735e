"""One table maps (op, device, impl) to an implementation.

Implementations register a *loader*: a function that imports what the impl needs and
returns the callable, or raises :class:`NotBuilt`. Loading is lazy and cached, so a missing
fast path costs nothing until it is asked for, and importing pixelforge never fails.

``impl`` is one of ``"auto"``, ``"cpu"`` (C++), ``"cuda"`` (CUDA C++), ``"numba"`` (njit or
numba.cuda by device), ``"ref"`` (NumPy/CuPy reference). ``auto`` takes the first built impl
in the op's preference order for the device and warns once when it had to skip one.
The environment variable ``PIXELFORGE_IMPL`` replaces ``auto`` where that impl exists.
"""
from __future__ import annotations

import importlib
import os
import threading
import warnings

IMPLS = ("cpu", "cuda", "numba", "ref")
DEVICES = ("cpu", "cuda")
DEFAULT_ORDER = {"cpu": ("cpu", "numba", "ref"), "cuda": ("cuda", "numba", "ref")}


class NotBuilt(ImportError):
    """An implementation whose backend (module, package or device) is not available."""


_loaders: dict = {}   # (op, device, impl) -> loader
_orders: dict = {}    # (op, device) -> preference order
_cache: dict = {}     # (op, device, impl) -> callable or NotBuilt instance
_resolved: dict = {}  # (op, device, impl, PIXELFORGE_IMPL) -> (impl name, callable): resolve's answers
_warned: set = set()
_lock = threading.Lock()


def register(op, device: str, impl: str):
    """Decorator: ``@register("bias_act", "cpu", "numba")`` on a loader returning the callable;
    ``op`` may be a tuple of op names one loader serves (an op module's forward and backward)."""
    if device not in DEVICES or impl not in IMPLS:
        raise ValueError(f"register: bad device/impl {device!r}/{impl!r}")

    def deco(loader):
        for name in (op,) if isinstance(op, str) else op:
            _loaders[(name, device, impl)] = loader
        _resolved.clear()
        return loader
    return deco


def set_order(op: str, device: str, order) -> None:
    """The preference order ``auto`` follows for one op on one device."""
    _orders[(op, device)] = tuple(order)
    _resolved.clear()


def _load(op, device, impl):
    key = (op, device, impl)
    with _lock:
        if key in _cache:
            got = _cache[key]
        else:
            loader = _loaders.get(key)
            if loader is None:
                got = NotBuilt(f"{op}: no {impl!r} implementation on {device}")
            else:
                try:
                    got = loader()
                except NotBuilt as e:
                    got = e
                except ImportError as e:
                    got = NotBuilt(f"{op}: impl {impl!r} on {device} unavailable ({e})")
            _cache[key] = got
    if isinstance(got, NotBuilt):
        raise got
    return got


def _ensure_registered(op: str) -> None:
    """Import the module that registers ``op`` (op modules load lazily)."""
    if any(key[0] == op for key in _loaders):
        return
    ops = importlib.import_module("pixelforge.ops")
    module = getattr(ops, "_OPS", {}).get(op)
    if module is not None:
        ops._import_op_module(module)


def available(op: str, device: str = "cpu") -> list:
    """The impls of ``op`` that load on ``device``, in preference order."""
    _ensure_registered(op)
    out = []
    for impl in _orders.get((op, device), DEFAULT_ORDER[device]):
        try:
            _load(op, device, impl)
            out.append(impl)
        except NotBuilt:
            pass
    return out


def resolve(op: str, device: str, impl: str = "auto"):
    """Return ``(impl_name, callable)`` for ``op`` on ``device``. Cached: after the first call a
    lookup is one dict access, so layers resolve on every call instead of keeping their own
    tables (``PIXELFORGE_IMPL`` is part of the key)."""
    if not isinstance(impl, str):
        raise TypeError(f"impl: expected a string, got {type(impl).__name__}")
    key = (op, device, impl, os.environ.get("PIXELFORGE_IMPL", ""))
    got = _resolved.get(key)
    if got is None:
        got = _resolved[key] = _resolve(op, device, impl)
    return got


def _resolve(op, device, impl):
    if impl != "auto" and impl not in IMPLS:
        raise ValueError(f"impl: unknown implementation {impl!r}; expected 'auto' or one of {IMPLS}")
    _ensure_registered(op)
    order = _orders.get((op, device), DEFAULT_ORDER[device])
    if impl == "auto":
        env = os.environ.get("PIXELFORGE_IMPL", "").strip()
        if env and env != "auto":
            if env not in IMPLS:
                raise ValueError(f"PIXELFORGE_IMPL: unknown implementation {env!r}; expected one of {IMPLS}")
            if (op, device, env) in _loaders:
                try:
                    return env, _load(op, device, env)
                except NotBuilt:
                    pass
        skipped = []
        for name in order:
            try:
                fn = _load(op, device, name)
            except NotBuilt as e:
                skipped.append(str(e))
                continue
            if skipped and (op, device) not in _warned:
                _warned.add((op, device))
                warnings.warn(f"pixelforge: {op} on {device} falls back to impl {name!r}: "
                              + "; ".join(skipped), RuntimeWarning, stacklevel=3)
            return name, fn
        raise ValueError(f"{op}: no implementation available on {device}")
    if (op, device, impl) not in _loaders:
        raise ValueError(f"impl: {op} has no {impl!r} implementation for {device} arrays "
                         f"(available there: {[i for i in order if (op, device, i) in _loaders]})")
    try:
        return impl, _load(op, device, impl)
    except NotBuilt as e:
        raise ValueError(f"impl: {impl!r} is not built/available here: {e}") from None
