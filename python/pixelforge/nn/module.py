"""Module and Parameter: torch's container semantics on pf.Tensor.

Parameters, buffers and submodules are ordinary attributes (attribute access in forward costs
nothing extra); ``__setattr__`` also files them in ordered registries, which give
``named_parameters``, ``state_dict`` and friends their order.
"""
from __future__ import annotations

from collections import OrderedDict, namedtuple

import numpy as np

from .. import _backend, precision
from ..tensor import Tensor, _to_array

__all__ = ["Module", "Parameter", "IncompatibleKeys"]

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Parameter(Tensor):
    """A Tensor that a Module registers as a learnable parameter (requires_grad defaults to True)."""

    __slots__ = ()

    def __init__(self, data, requires_grad=True):
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return f"Parameter({self.data!r})"


def _is_arraylike_buffer(v):
    return isinstance(v, np.ndarray) or _backend.is_cupy_array(v)


class Module:
    """Base class of layers: subclass, assign Parameters/Modules in ``__init__``, write ``forward``."""

    def __init__(self):
        d = self.__dict__
        d["_parameters"] = OrderedDict()
        d["_buffers"] = OrderedDict()
        d["_non_persistent"] = set()
        d["_modules"] = OrderedDict()
        d["training"] = True

    def __setattr__(self, name, value):
        d = self.__dict__
        if "_parameters" not in d:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning {name!r}")
        params, bufs, mods = d["_parameters"], d["_buffers"], d["_modules"]
        if isinstance(value, Parameter):
            bufs.pop(name, None)
            mods.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            params.pop(name, None)
            bufs.pop(name, None)
            mods[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(f"{name}: cannot assign {type(value).__name__} to a parameter "
                                "(use a pf.nn.Parameter, or None)")
            params[name] = None
        elif name in bufs:
            if value is not None and not _is_arraylike_buffer(value):
                value = _to_array(value)
            bufs[name] = value
        elif name in mods and value is None:
            mods[name] = None
        d[name] = value

    def __delattr__(self, name):
        for reg in ("_parameters", "_buffers", "_modules"):
            self.__dict__[reg].pop(name, None)
        del self.__dict__[name]

    def register_buffer(self, name, array, persistent=True):
        """A non-learnable array saved in the state dict (``persistent=False``: not saved)."""
        arr = None if array is None else (array if _is_arraylike_buffer(array) else _to_array(array))
        self.__dict__["_buffers"][name] = arr
        if not persistent:
            self.__dict__["_non_persistent"].add(name)
        self.__dict__[name] = arr

    def register_parameter(self, name, param):
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"param: expected a pf.nn.Parameter or None, got {type(param).__name__}")
        setattr(self, name, param)
        if param is None:
            self.__dict__["_parameters"][name] = None

    def add_module(self, name, module):
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"module: expected a pf.nn.Module, got {type(module).__name__}")
        self.__dict__["_modules"][name] = module
        self.__dict__[name] = module

    # ----------------------------------------------------------------- calling
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        cd = self.__dict__.get("_compute_dtype")
        if cd is None:
            return self.forward(*args, **kwargs)
        with precision.using(cd):  # set by .to(dtype="bfloat16")
            return self.forward(*args, **kwargs)

    # ----------------------------------------------------------------- traversal
    def named_children(self):
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self):
        for _, m in self.named_children():
            yield m

    def named_modules(self, prefix=""):
        seen = set()
        stack = [(prefix, self)]
        while stack:
            name, m = stack.pop(0)
            if id(m) in seen:
                continue
            seen.add(id(m))
            yield name, m
            for cname, c in m.named_children():
                stack.append((f"{name}.{cname}" if name else cname, c))

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def _named_modules_dfs(self, prefix=""):
        # depth-first pre-order, as torch orders named_parameters / state_dict keys
        yield prefix, self
        for cname, c in self.named_children():
            yield from c._named_modules_dfs(f"{prefix}.{cname}" if prefix else cname)

    def named_parameters(self, prefix="", recurse=True):
        seen = set()
        mods = self._named_modules_dfs(prefix) if recurse else [(prefix, self)]
        for mname, m in mods:
            for pname, p in m._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mname}.{pname}" if mname else pname), p

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix="", recurse=True):
        mods = self._named_modules_dfs(prefix) if recurse else [(prefix, self)]
        for mname, m in mods:
            for bname, b in m._buffers.items():
                if b is not None:
                    yield (f"{mname}.{bname}" if mname else bname), b

    def buffers(self, recurse=True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def num_parameters(self):
        return sum(int(p.data.size) for p in self.parameters())

    # ----------------------------------------------------------------- modes
    def train(self, mode=True):
        for m in self.modules():
            m.__dict__["training"] = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad = bool(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad[...] = 0

    def apply(self, fn):
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ----------------------------------------------------------------- dtype / device
    def _convert(self, fn):
        for m in self.modules():
            for p in m._parameters.values():
                if p is not None:
                    p.data = fn(p.data)
                    p.grad = None
            for name, b in list(m._buffers.items()):
                if b is not None:
                    arr = fn(b) if b.dtype.kind == "f" else b
                    m._buffers[name] = arr
                    m.__dict__[name] = arr
        return self

    def to(self, dtype=None, device=None):
        """Convert floating parameters/buffers to ``dtype`` and/or move them to ``device``
        ("cpu" NumPy, "cuda" CuPy). Arrays are replaced, so build optimizers afterwards.

        ``dtype="bfloat16"`` is mixed precision: the parameters stay float32 (the master copy
        an optimizer updates) and every call of this module runs under
        ``pf.autocast("bfloat16")`` (bfloat16 operands, float32 sums: see pf.precision);
        ``dtype="float32"`` (or np.float32) turns it off again."""
        if device is not None and device not in ("cpu", "cuda"):
            raise ValueError(f"device: expected 'cpu' or 'cuda', got {device!r}")
        if isinstance(dtype, str) and dtype in ("bfloat16", "bf16"):
            self.__dict__["_compute_dtype"] = "bfloat16"
            dtype = np.float32
        elif dtype is not None and np.dtype(dtype) == np.float32:
            self.__dict__.pop("_compute_dtype", None)

        def fn(a):
            if device == "cuda" and isinstance(a, np.ndarray):
                cp = _backend.cupy()
                if cp is None:
                    raise ValueError("device: 'cuda' needs CuPy and a GPU")
                a = cp.asarray(a)
            elif device == "cpu" and not isinstance(a, np.ndarray):
                a = a.get()
            if dtype is not None and a.dtype.kind == "f":
                a = a.astype(dtype)
            return a
        return self._convert(fn)

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    # ----------------------------------------------------------------- state
    def state_dict(self):
        """Ordered name -> array (parameters, then each module's persistent buffers), torch's key
        order. The arrays are the module's own (not copies)."""
        out = OrderedDict()
        for mname, m in self._named_modules_dfs():
            pre = f"{mname}." if mname else ""
            for pname, p in m._parameters.items():
                if p is not None:
                    out[pre + pname] = p.data
            for bname, b in m._buffers.items():
                if b is not None and bname not in m._non_persistent:
                    out[pre + bname] = b
        return out

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays into the existing parameters/buffers (in place, so optimizers keep working).

        Checks names, shapes and dtypes first and raises one error listing every difference;
        ``strict=False`` ignores missing/unexpected keys (not shape or dtype differences).
        Returns ``(missing_keys, unexpected_keys)``.
        """
        if not hasattr(state_dict, "items"):
            raise TypeError(f"state_dict: expected a mapping of name -> array, got {type(state_dict).__name__}")
        own = self.state_dict()
        given = {}
        for k, v in state_dict.items():
            given[k] = v.data if isinstance(v, Tensor) else (v if _is_arraylike_buffer(v) else _to_array(v))
        missing = [k for k in own if k not in given]
        unexpected = [k for k in given if k not in own]
        problems = []
        for k, cur in own.items():
            if k not in given:
                continue
            v = given[k]
            if tuple(v.shape) != tuple(cur.shape):
                problems.append(f"{k}: shape {tuple(v.shape)} in the state dict, {tuple(cur.shape)} in the model")
            elif v.dtype != cur.dtype:
                problems.append(f"{k}: dtype {v.dtype} in the state dict, {cur.dtype} in the model")
        if strict:
            if missing:
                problems.append("missing keys: " + ", ".join(missing))
            if unexpected:
                problems.append("unexpected keys: " + ", ".join(unexpected))
        if problems:
            raise ValueError(f"load_state_dict for {type(self).__name__}: " + "; ".join(problems))
        for k, cur in own.items():
            if k in given:
                v = given[k]
                if isinstance(cur, np.ndarray) and not isinstance(v, np.ndarray):
                    v = v.get()
                cur[...] = v
        return IncompatibleKeys(missing, unexpected)

    # ----------------------------------------------------------------- repr
    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        kids = list(self.named_children())
        if not kids:
            return lines[0] + ")"
        for name, m in kids:
            sub = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {sub}")
        return "\n".join(lines) + "\n)"
