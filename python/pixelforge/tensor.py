"""pf.Tensor: a NumPy (CPU) or CuPy (GPU) array with tape-based reverse-mode autograd.

Design, chosen for small per-op overhead (training on 8x8 images is bound by it):
- a result that needs a gradient stores its parents and one closure ``backward(g) -> grads``
  (one entry per parent, None where a parent needs none); there is no separate tape object:
  :meth:`Tensor.backward` orders the graph reachable from the output and runs the closures;
- no validation in the hot path beyond what NumPy/CuPy do themselves;
- ``__slots__`` everywhere; results that need no gradient carry no graph at all.

Gradients of leaves accumulate into ``.grad`` (an array, like ``.data``); interior gradients are
not kept. Broadcasting follows NumPy; backward sums a gradient back to each operand's shape.
"""
from __future__ import annotations

import functools

import numpy as np

from . import _backend, ops, precision

__all__ = ["Tensor", "no_grad", "enable_grad", "is_grad_enabled", "cat", "stack", "where", "as_tensor",
           "tensor", "zeros", "ones", "randn"]


class _GradMode:
    __slots__ = ("enabled",)

    def __init__(self):
        self.enabled = True


_mode = _GradMode()


def is_grad_enabled() -> bool:
    return _mode.enabled


class _SetGrad:
    """Context manager and decorator that sets whether new results record a graph."""

    __slots__ = ("_flag", "_prev")
    _flag_value = True

    def __init__(self):
        self._prev = []

    def __enter__(self):
        self._prev.append(_mode.enabled)
        _mode.enabled = self._flag_value
        return self

    def __exit__(self, *exc):
        _mode.enabled = self._prev.pop()
        return False

    def __call__(self, fn):
        cls = type(self)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with cls():
                return fn(*args, **kwargs)
        return wrapper


class no_grad(_SetGrad):  # noqa: N801 - torch's name
    """``with pf.no_grad():`` (or ``@pf.no_grad()``): results record no graph."""

    __slots__ = ()
    _flag_value = False


class enable_grad(_SetGrad):  # noqa: N801
    """Turn graph recording back on inside a :class:`no_grad` block."""

    __slots__ = ()
    _flag_value = True


def _is_array(x) -> bool:
    return isinstance(x, np.ndarray) or _backend.is_cupy_array(x)


_xp = _backend.xp_of


def _to_array(data, dtype=None):
    if isinstance(data, Tensor):
        data = data.data
    if _is_array(data):
        return data if dtype is None else data.astype(dtype, copy=False)
    if isinstance(data, np.generic):
        return np.asarray(data, dtype=dtype)
    if hasattr(data, "detach") and hasattr(data, "numpy"):  # a torch tensor
        return np.array(data.detach().cpu().numpy(), dtype=dtype)
    arr = np.asarray(data, dtype=dtype)
    if dtype is None and arr.dtype == np.float64:
        arr = arr.astype(np.float32)  # Python floats and lists become float32, like torch
    if arr.dtype == object:
        raise TypeError(f"data: expected a numeric array, got {type(data).__name__}")
    return arr


def _unbroadcast(g, shape):
    """Sum ``g`` down to ``shape`` (the inverse of NumPy broadcasting)."""
    if g.shape == shape:
        return g
    extra = g.ndim - len(shape)
    if extra:
        g = g.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


def _new(data):
    t = object.__new__(Tensor)
    t.data = data
    t.grad = None
    t.requires_grad = False
    t._parents = ()
    t._backward = None
    return t


def _node(data, parents, backward):
    """A result of an op: records the graph when grad mode is on and a parent needs a grad."""
    if isinstance(data, np.generic):
        data = np.asarray(data)
    t = object.__new__(Tensor)
    t.data = data
    t.grad = None
    if _mode.enabled:
        for p in parents:
            if p.requires_grad:
                t.requires_grad = True
                t._parents = parents
                t._backward = backward
                return t
    t.requires_grad = False
    t._parents = ()
    t._backward = None
    return t


class Tensor:
    """An array with autograd. ``pf.Tensor(data, requires_grad=False)``.

    ``data``: a NumPy or CuPy array (kept as is, not copied), or anything NumPy converts
    (Python floats/lists become float32, like torch). ``.data`` is the array, ``.grad`` the
    accumulated gradient array of a leaf (None before the first backward).
    """

    __slots__ = ("data", "grad", "requires_grad", "_parents", "_backward", "__weakref__")
    __array_priority__ = 1000  # ndarray (op) Tensor defers to Tensor's reflected op

    def __init__(self, data, requires_grad=False, dtype=None):
        self.data = _to_array(data, dtype)
        self.grad = None
        if requires_grad and self.data.dtype.kind not in "fc":
            raise TypeError(f"requires_grad: only floating tensors can require grad, got {self.data.dtype}")
        self.requires_grad = bool(requires_grad)
        self._parents = ()
        self._backward = None

    # ------------------------------------------------------------------ basics
    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def device(self):
        return "cpu" if isinstance(self.data, np.ndarray) else "cuda"

    @property
    def is_leaf(self):
        return self._backward is None

    def size(self, dim=None):
        return self.data.shape if dim is None else self.data.shape[dim]

    def numel(self):
        return int(self.data.size)

    def dim(self):
        return self.data.ndim

    def __len__(self):
        return len(self.data)

    def item(self):
        return self.data.item()

    def tolist(self):
        return self.numpy().tolist()

    def numpy(self):
        """The data as a NumPy array (copied from the GPU for CuPy data)."""
        d = self.data
        return d if isinstance(d, np.ndarray) else d.get()

    def __array__(self, dtype=None, copy=None):
        a = self.numpy()
        return a if dtype is None else a.astype(dtype)

    def __repr__(self):
        g = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({self.data!r}{g})"

    def __hash__(self):
        return id(self)

    def __bool__(self):
        return bool(self.data)

    def __float__(self):
        return float(self.data)

    def __int__(self):
        return int(self.data)

    def detach(self):
        """The same data, cut from the graph."""
        return _new(self.data)

    def clone(self):
        return _node(self.data.copy(), (self,), lambda g: (g,))

    def requires_grad_(self, flag=True):
        if not self.is_leaf:
            raise RuntimeError("requires_grad_: only a leaf tensor's flag can be changed")
        self.requires_grad = bool(flag)
        return self

    def zero_(self):
        self.data[...] = 0
        return self

    def astype(self, dtype):
        dt = self.data.dtype
        return _node(self.data.astype(dtype), (self,), lambda g: (g.astype(dt),))

    def float(self):
        return self if self.data.dtype == np.float32 else self.astype(np.float32)

    def double(self):
        return self if self.data.dtype == np.float64 else self.astype(np.float64)

    def to(self, dtype):
        return self.astype(dtype)

    # ---------------------------------------------------------------- autograd
    def backward(self, grad=None):
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires grad.

        ``grad`` (the gradient of some scalar with respect to self) defaults to 1 for a
        one-element tensor.
        """
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad and has no graph "
                               "(were its inputs created with requires_grad=True, outside no_grad()?)")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward: grad can be omitted only for a one-element output, got shape "
                                   f"{tuple(self.shape)}")
            grad = _xp(self.data).ones_like(self.data)
        else:
            grad = _to_array(grad, self.data.dtype)
            if grad.shape != self.data.shape:
                raise ValueError(f"grad: shape {tuple(grad.shape)} differs from the tensor's {tuple(self.shape)}")
        # order the graph (iterative DFS: deep graphs must not hit the recursion limit)
        order = []
        seen = set()
        stack = [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            for p in node._parents:
                if p._backward is not None and id(p) not in seen:
                    stack.append((p, False))
        grads = {id(self): grad}
        for node in reversed(order):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            pgrads = node._backward(g)
            for p, pg in zip(node._parents, pgrads):
                if pg is None or not p.requires_grad:
                    continue
                if isinstance(pg, np.generic):  # NumPy turns 0-d results into scalars
                    pg = np.asarray(pg)
                if p._backward is None:  # a leaf: accumulate into .grad
                    if p.grad is None:
                        # own copy: an op may hand the same array to several parents
                        p.grad = pg.astype(p.data.dtype, copy=True)
                    else:
                        p.grad += pg
                else:
                    k = id(p)
                    old = grads.get(k)
                    grads[k] = pg if old is None else old + pg

    # ------------------------------------------------------------- arithmetic
    def __add__(self, other):
        if isinstance(other, Tensor):
            od = other.data
            out = self.data + od
            sa, sb = self.data.shape, od.shape
            return _node(out, (self, other), lambda g: (_unbroadcast(g, sa), _unbroadcast(g, sb)))
        return _node(self.data + other, (self,), lambda g: (g,))

    __radd__ = __add__

    def __sub__(self, other):
        if isinstance(other, Tensor):
            od = other.data
            sa, sb = self.data.shape, od.shape
            return _node(self.data - od, (self, other), lambda g: (_unbroadcast(g, sa), _unbroadcast(-g, sb)))
        return _node(self.data - other, (self,), lambda g: (g,))

    def __rsub__(self, other):
        return _node(other - self.data, (self,), lambda g: (-g,))

    def __neg__(self):
        return _node(-self.data, (self,), lambda g: (-g,))

    def __mul__(self, other):
        a = self.data
        if isinstance(other, Tensor):
            b = other.data
            ra, rb = self.requires_grad, other.requires_grad

            def bw(g):
                return (_unbroadcast(g * b, a.shape) if ra else None,
                        _unbroadcast(g * a, b.shape) if rb else None)
            return _node(a * b, (self, other), bw)
        return _node(a * other, (self,), lambda g: (g * other,))

    __rmul__ = __mul__

    def __truediv__(self, other):
        a = self.data
        if isinstance(other, Tensor):
            b = other.data
            out = a / b
            ra, rb = self.requires_grad, other.requires_grad

            def bw(g):
                return (_unbroadcast(g / b, a.shape) if ra else None,
                        _unbroadcast(-g * out / b, b.shape) if rb else None)
            return _node(out, (self, other), bw)
        inv = 1.0 / other
        return _node(a * inv, (self,), lambda g: (g * inv,))

    def __rtruediv__(self, other):
        a = self.data
        out = other / a
        return _node(out, (self,), lambda g: (-g * out / a,))

    def __pow__(self, p):
        a = self.data
        if isinstance(p, Tensor):
            return exp(log(self) * p)
        if p == 2:
            return _node(a * a, (self,), lambda g: (g * (2 * a),))
        return _node(a ** p, (self,), lambda g: (g * (p * a ** (p - 1)),))

    def __rpow__(self, base):
        out = base ** self.data
        lb = float(np.log(base))
        return _node(out, (self,), lambda g: (g * out * lb,))

    def __matmul__(self, other):
        if not isinstance(other, Tensor):
            other = _new(_to_array(other))
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(_new(_to_array(other)), self)

    # in-place ops act on data only and are allowed only where no graph is recorded
    def _inplace_ok(self, name):
        if _mode.enabled and self.requires_grad:
            raise RuntimeError(f"{name}: in-place change of a tensor that requires grad; wrap it in pf.no_grad()")

    def __iadd__(self, other):
        self._inplace_ok("+=")
        self.data += other.data if isinstance(other, Tensor) else other
        return self

    def __isub__(self, other):
        self._inplace_ok("-=")
        self.data -= other.data if isinstance(other, Tensor) else other
        return self

    def __imul__(self, other):
        self._inplace_ok("*=")
        self.data *= other.data if isinstance(other, Tensor) else other
        return self

    # ------------------------------------------------------------- comparisons (no grad)
    def _cmp(self, other, fn):
        return _new(fn(self.data, other.data if isinstance(other, Tensor) else other))

    def __lt__(self, o):
        return self._cmp(o, lambda a, b: a < b)

    def __le__(self, o):
        return self._cmp(o, lambda a, b: a <= b)

    def __gt__(self, o):
        return self._cmp(o, lambda a, b: a > b)

    def __ge__(self, o):
        return self._cmp(o, lambda a, b: a >= b)

    def eq(self, o):
        return self._cmp(o, lambda a, b: a == b)

    def ne(self, o):
        return self._cmp(o, lambda a, b: a != b)

    def argmax(self, dim=None, keepdim=False):
        return _new(self.data.argmax(axis=dim, keepdims=keepdim) if dim is not None else self.data.argmax())

    # ------------------------------------------------------------- elementwise math
    def exp(self):
        return exp(self)

    def log(self):
        return log(self)

    def sqrt(self):
        return sqrt(self)

    def abs(self):
        a = self.data
        return _node(abs(a), (self,), lambda g: (g * _xp(a).sign(a),))

    def clamp(self, min=None, max=None):  # noqa: A002 - torch's names
        a = self.data
        out = _xp(a).clip(a, min, max)

        def bw(g):
            mask = True
            if min is not None:
                mask = a >= min
            if max is not None:
                mask = mask & (a <= max)
            return (g * mask,)
        return _node(out, (self,), bw)

    def tanh(self):
        out = _xp(self.data).tanh(self.data)
        return _node(out, (self,), lambda g: (g * (1 - out * out),))

    def sigmoid(self):
        out = 1 / (1 + _xp(self.data).exp(-self.data))
        return _node(out, (self,), lambda g: (g * out * (1 - out),))

    def relu(self):
        a = self.data
        return _node(a * (a > 0), (self,), lambda g: (g * (a > 0),))

    def softmax(self, dim=-1):
        a = self.data
        e = _xp(a).exp(a - a.max(axis=dim, keepdims=True))
        out = e / e.sum(axis=dim, keepdims=True)
        return _node(out, (self,), lambda g: (out * (g - (g * out).sum(axis=dim, keepdims=True)),))

    def log_softmax(self, dim=-1):
        a = self.data
        xp = _xp(a)
        s = a - a.max(axis=dim, keepdims=True)
        out = s - xp.log(xp.exp(s).sum(axis=dim, keepdims=True))
        return _node(out, (self,), lambda g: (g - xp.exp(out) * g.sum(axis=dim, keepdims=True),))

    # ------------------------------------------------------------- reductions
    def sum(self, dim=None, keepdim=False):
        a = self.data
        shape = a.shape
        out = a.sum(axis=dim, keepdims=keepdim)

        def bw(g):
            if dim is not None and not keepdim:
                g = _xp(g).expand_dims(g, dim)
            return (_xp(g).broadcast_to(g, shape),)
        return _node(out, (self,), bw)

    def mean(self, dim=None, keepdim=False):
        a = self.data
        shape = a.shape
        out = a.mean(axis=dim, keepdims=keepdim)
        n = a.size // max(out.size, 1) if a.size else 1

        def bw(g):
            if dim is not None and not keepdim:
                g = _xp(g).expand_dims(g, dim)
            return (_xp(g).broadcast_to(g / n, shape),)
        return _node(out, (self,), bw)

    def var(self, dim=None, keepdim=False, unbiased=True, correction=None):
        c = (1 if unbiased else 0) if correction is None else correction
        m = self.mean(dim, keepdim=True)
        d = self - m
        n = self.data.size // max(m.data.size, 1)
        return (d * d).sum(dim, keepdim=keepdim) / max(n - c, 1)

    def max(self, dim=None, keepdim=False):
        return _minmax(self, dim, keepdim, "max")

    def min(self, dim=None, keepdim=False):
        return _minmax(self, dim, keepdim, "min")

    # ------------------------------------------------------------- shape
    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        a = self.data
        old = a.shape
        return _node(a.reshape(shape), (self,), lambda g: (g.reshape(old),))

    view = reshape

    def flatten(self, start_dim=0, end_dim=-1):
        shape = self.data.shape
        nd = len(shape)
        if nd == 0:
            return self.reshape(1)
        s, e = start_dim % nd, end_dim % nd
        n = 1
        for v in shape[s:e + 1]:
            n *= v
        return self.reshape(shape[:s] + (n,) + shape[e + 1:])

    def unsqueeze(self, dim):
        nd = self.data.ndim + 1
        d = dim % nd
        return self.reshape(self.data.shape[:d] + (1,) + self.data.shape[d:])

    def squeeze(self, dim=None):
        shape = self.data.shape
        if dim is None:
            return self.reshape(tuple(s for s in shape if s != 1))
        d = dim % max(len(shape), 1)
        if shape[d] != 1:
            return self
        return self.reshape(shape[:d] + shape[d + 1:])

    def transpose(self, dim0, dim1):
        nd = self.data.ndim
        perm = list(range(nd))
        perm[dim0], perm[dim1] = perm[dim1], perm[dim0]
        return self.permute(perm)

    def permute(self, *dims):
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        inv = tuple(np.argsort(dims))
        return _node(self.data.transpose(dims), (self,), lambda g: (g.transpose(inv),))

    @property
    def T(self):  # noqa: N802
        return self.permute(tuple(range(self.data.ndim - 1, -1, -1)))

    def expand(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        a = self.data
        full = tuple(a.shape[i - (len(shape) - a.ndim)] if s == -1 else s for i, s in enumerate(shape))
        old = a.shape
        return _node(_xp(a).broadcast_to(a, full), (self,), lambda g: (_unbroadcast(g, old),))

    def contiguous(self):
        a = self.data
        if a.flags.c_contiguous:
            return self
        return _node(_xp(a).ascontiguousarray(a), (self,), lambda g: (g,))

    def chunk(self, chunks, dim=0):
        n = self.data.shape[dim]
        step = -(-n // chunks)
        return [self[(slice(None),) * (dim % self.ndim) + (slice(i, min(i + step, n)),)] for i in range(0, n, step)]

    def split(self, size, dim=0):
        n = self.data.shape[dim]
        return [self[(slice(None),) * (dim % self.ndim) + (slice(i, min(i + size, n)),)] for i in range(0, n, size)]

    def __getitem__(self, idx):
        if isinstance(idx, Tensor):
            idx = idx.data
        elif isinstance(idx, tuple):
            idx = tuple(i.data if isinstance(i, Tensor) else i for i in idx)
        a = self.data
        out = a[idx]
        shape, dt = a.shape, a.dtype

        def bw(g):
            xp = _xp(g)
            z = xp.zeros(shape, dt)
            if _is_advanced(idx):
                xp.add.at(z, idx, g)  # repeated indices accumulate (CuPy's add.at too)
            else:
                z[idx] = g
            return (z,)
        return _node(out, (self,), bw)

    def __setitem__(self, idx, value):
        self._inplace_ok("__setitem__")
        self.data[idx] = value.data if isinstance(value, Tensor) else value


def _is_advanced(idx):
    items = idx if isinstance(idx, tuple) else (idx,)
    for i in items:
        if isinstance(i, (list, np.ndarray)) or (_is_array(i) and not isinstance(i, np.ndarray)):
            return True
    return False


def _minmax(t, dim, keepdim, kind):
    a = t.data
    xp = _xp(a)
    out = a.max(axis=dim, keepdims=True) if kind == "max" else a.min(axis=dim, keepdims=True)
    shape = a.shape

    def bw(g):
        gk = g if (keepdim or dim is None) else xp.expand_dims(g, dim)
        if dim is None:
            gk = gk.reshape((1,) * len(shape))
        mask = a == out
        # ties share the gradient equally (torch's amax convention)
        count = mask.sum(axis=dim, keepdims=True)
        return (mask * (gk / count),)
    res = out if keepdim else (out.reshape(()) if dim is None else out.squeeze(dim))
    return _node(res, (t,), bw)


# ----------------------------------------------------------------- functions
def _t(x):
    return x if isinstance(x, Tensor) else _new(_to_array(x))


def exp(x):
    x = _t(x)
    out = _xp(x.data).exp(x.data)
    return _node(out, (x,), lambda g: (g * out,))


def log(x):
    x = _t(x)
    a = x.data
    return _node(_xp(a).log(a), (x,), lambda g: (g / a,))


def sqrt(x):
    x = _t(x)
    out = _xp(x.data).sqrt(x.data)
    return _node(out, (x,), lambda g: (g * 0.5 / out,))


def _mm(A, B):
    """A @ B on pixelforge's GEMM (pf.ops.matmul) for 2-D / 3-D float operands; NumPy's rules
    (1-D operands, more batch dims) fall back to the array module's matmul."""
    if (A.ndim in (2, 3) and B.ndim in (2, 3) and A.dtype == B.dtype and A.dtype.kind == "f"
            and (A.ndim == 2 or B.ndim == 2 or A.shape[0] == B.shape[0] or 1 in (A.shape[0], B.shape[0]))):
        return ops.matmul(A, B)
    return A @ B


def matmul(a, b):
    """``a @ b`` with NumPy's rules (1-D operands, broadcast batch dims)."""
    A, B = a.data, b.data
    out = _mm(A, B)
    ra, rb = a.requires_grad, b.requires_grad
    prec = precision.compute_dtype()

    def bw(g):
        with precision.using(prec):  # the backward in the forward's precision
            return _matmul_grads(g, A, B, ra, rb)
    return _node(out, (a, b), bw)


def _matmul_grads(g, A, B, ra, rb):
    """(dA, dB) of A @ B for the upstream gradient g (None where not required)."""
    A2 = A[None, :] if A.ndim == 1 else A
    B2 = B[:, None] if B.ndim == 1 else B
    if A.ndim == 1 and B.ndim == 1:
        g2 = g.reshape(1, 1)
    elif A.ndim == 1:
        g2 = g[..., None, :]
    elif B.ndim == 1:
        g2 = g[..., None]
    else:
        g2 = g
    ga = gb = None
    if ra:
        ga = _unbroadcast(_mm(g2, B2.swapaxes(-1, -2)), A2.shape).reshape(A.shape)
    if rb:
        gb = _unbroadcast(_mm(A2.swapaxes(-1, -2), g2), B2.shape).reshape(B.shape)
    return ga, gb


def cat(tensors, dim=0):
    """Concatenate along ``dim`` (torch.cat)."""
    ts = [_t(x) for x in tensors]
    if not ts:
        raise ValueError("tensors: expected a non-empty sequence")
    arrays = [x.data for x in ts]
    xp = _xp(arrays[0])
    out = xp.concatenate(arrays, axis=dim)
    sizes = [a.shape[dim] for a in arrays]
    bounds = np.cumsum(sizes)[:-1].tolist()

    def bw(g):
        return tuple(xp.split(g, bounds, axis=dim))
    return _node(out, tuple(ts), bw)


def stack(tensors, dim=0):
    """Stack along a new ``dim`` (torch.stack)."""
    ts = [_t(x) for x in tensors]
    if not ts:
        raise ValueError("tensors: expected a non-empty sequence")
    xp = _xp(ts[0].data)
    out = xp.stack([x.data for x in ts], axis=dim)
    n = len(ts)

    def bw(g):
        return tuple(xp.take(g, i, axis=dim) for i in range(n))
    return _node(out, tuple(ts), bw)


def where(cond, a, b):
    """``cond ? a : b`` elementwise, gradients flow to the chosen side."""
    c = cond.data if isinstance(cond, Tensor) else cond
    a, b = _t(a), _t(b)
    xp = _xp(a.data)
    out = xp.where(c, a.data, b.data)
    sa, sb = a.data.shape, b.data.shape
    return _node(out, (a, b), lambda g: (_unbroadcast(xp.where(c, g, 0), sa), _unbroadcast(xp.where(c, 0, g), sb)))


def as_tensor(x):
    return _t(x)


def tensor(data, requires_grad=False, dtype=None):
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def zeros(*shape, dtype=np.float32, requires_grad=False):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return Tensor(np.zeros(shape, dtype), requires_grad=requires_grad)


def ones(*shape, dtype=np.float32, requires_grad=False):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return Tensor(np.ones(shape, dtype), requires_grad=requires_grad)


def randn(*shape, dtype=np.float32, requires_grad=False, generator=None):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    g = generator if generator is not None else np.random.default_rng()
    return Tensor(g.standard_normal(shape).astype(dtype), requires_grad=requires_grad)

