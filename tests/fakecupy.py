"""A stand-in for CuPy on machines without a GPU: test-only plumbing, never GPU truth.

``install(monkeypatch)`` makes ``pixelforge._backend.cupy()`` return :data:`fake`, a module-like
namespace whose ``ndarray`` wraps a NumPy array and behaves as a CuPy array does where it
matters for device plumbing:

- it refuses implicit conversion to NumPy (``np.asarray(a)``, NumPy ufuncs and functions on it,
  arithmetic with a ``numpy.ndarray``): ``TypeError``, as CuPy raises;
- explicit transfers work: ``fake.asarray(np_array)`` (host -> device), ``a.get()`` and
  ``fake.asnumpy(a)`` (device -> host);
- reading a value on the host (``.get()``, ``.item()``, ``float()``, ``int()``, ``bool()``) is
  a synchronisation: each is counted in :data:`SYNCS`, so a test can bound the host round trips
  of a training step;
- reductions return 0-d arrays (not NumPy scalars), so ``float(loss)`` is visibly a sync;
- indexing with host integer arrays is allowed (CuPy copies them over).

Functions of the namespace are NumPy's, applied to the wrapped arrays (``fake.exp``,
``fake.concatenate``, ``fake.add.at``, ...). There is no CUDA: ``cuda.is_available()`` is
True only so code that asks finds a device; pixelforge's CUDA and numba.cuda impls are not
built for it, so ops run their ``ref`` implementations, written against the array module.
"""
from __future__ import annotations

import types

import numpy as np

SYNCS = {"count": 0}

_IMPLICIT = ("Implicit conversion to a NumPy array is not allowed (fake CuPy). "
             "Please use `.get()` to construct a NumPy array explicitly.")


def _sync():
    SYNCS["count"] += 1


def _unwrap(v, allow_host=False):
    """Arguments for NumPy: fake arrays unwrapped; host arrays refused unless allowed."""
    if isinstance(v, ndarray):
        return v._a
    if isinstance(v, np.ndarray) and not allow_host:
        raise TypeError(f"Unsupported type {type(v)} (fake CuPy: a host array mixed with device arrays)")
    if isinstance(v, (list, tuple)):
        return type(v)(_unwrap(x, allow_host) for x in v)
    if isinstance(v, dict):
        return {k: _unwrap(x, allow_host) for k, x in v.items()}
    return v


def _wrap(v):
    if isinstance(v, np.ndarray):
        return ndarray(v)
    if isinstance(v, np.generic) and not isinstance(v, np.dtype):
        return ndarray(np.asarray(v))  # reductions give 0-d device arrays, as CuPy does
    if isinstance(v, tuple):
        return tuple(_wrap(x) for x in v)
    if isinstance(v, list):
        return [_wrap(x) for x in v]
    return v


def _index(k):
    # host integer/bool index arrays are fine (CuPy copies them); device ones are unwrapped
    return _unwrap(k, allow_host=True)


class ndarray:  # noqa: N801 - CuPy's name
    __slots__ = ("_a",)
    __array_ufunc__ = None      # NumPy ufuncs on a device array: TypeError, via the reflected op
    __array_priority__ = 1000

    def __init__(self, a):
        self._a = a

    # ------------------------------------------------------------ host conversion
    def __array__(self, *args, **kwargs):
        raise TypeError(_IMPLICIT)

    def __array_function__(self, func, types_, args, kwargs):
        raise TypeError(_IMPLICIT + f" ({func.__module__}.{func.__name__})")

    def get(self, stream=None):
        _sync()
        return self._a.copy()

    def item(self):
        _sync()
        return self._a.item()

    def tolist(self):
        _sync()
        return self._a.tolist()

    def __float__(self):
        _sync()
        return float(self._a)

    def __int__(self):
        _sync()
        return int(self._a)

    def __bool__(self):
        _sync()
        return bool(self._a)

    def __index__(self):
        _sync()
        return self._a.__index__()

    # ------------------------------------------------------------ attributes
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    strides = property(lambda self: self._a.strides)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: ndarray(self._a.T))
    real = property(lambda self: ndarray(self._a.real))

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (_wrap(x) for x in self._a)

    def __repr__(self):
        return f"fakecupy.ndarray({self._a!r})"

    def __getattr__(self, name):
        if name.startswith("__"):  # never NumPy's protocols (__array_interface__, ...)
            raise AttributeError(name)
        attr = getattr(self._a, name)  # methods: reshape, astype, sum, transpose, fill, ...
        if not callable(attr):
            return _wrap(attr)

        def method(*args, **kwargs):
            return _wrap(attr(*_unwrap(args), **_unwrap(kwargs)))
        return method

    def __getitem__(self, k):
        return _wrap(self._a[_index(k)])

    def __setitem__(self, k, v):
        self._a[_index(k)] = _unwrap(v, allow_host=True)  # CuPy copies a host value over


def _binary(name):
    def op(self, other):
        return _wrap(getattr(self._a, name)(_unwrap(other)))
    op.__name__ = name
    return op


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor",
              "lshift", "rshift"):
    for _pre in ("__", "__r", "__i"):
        _dunder = f"{_pre}{_name}__"
        setattr(ndarray, _dunder, _binary(_dunder))
for _dunder in ("__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__"):
    setattr(ndarray, _dunder, _binary(_dunder))
for _dunder in ("__neg__", "__pos__", "__abs__", "__invert__"):
    setattr(ndarray, _dunder, (lambda n: lambda self: _wrap(getattr(self._a, n)()))(_dunder))
ndarray.__hash__ = None


class _Ufunc:
    """NumPy's ufunc on device arrays, with ``at`` (CuPy has ``add.at``)."""

    def __init__(self, uf):
        self._uf = uf

    def __call__(self, *args, **kwargs):
        return _wrap(self._uf(*_unwrap(args), **_unwrap(kwargs)))

    def at(self, a, indices, b=None):
        args = (_unwrap(a), _index(indices)) + (() if b is None else (_unwrap(b),))
        self._uf.at(*args)

    def reduce(self, *args, **kwargs):
        return _wrap(self._uf.reduce(*_unwrap(args), **_unwrap(kwargs)))


class _Namespace(types.SimpleNamespace):
    """NumPy's functions (of ``_module``: numpy, or a submodule such as numpy.linalg) on device
    arrays."""

    ndarray = ndarray
    _module = np

    def __getattr__(self, name):
        attr = getattr(self._module, name)
        if isinstance(attr, types.ModuleType):
            return _Namespace(_module=attr)  # fake.linalg.norm, ...
        if isinstance(attr, np.ufunc):
            return _Ufunc(attr)
        if isinstance(attr, type) or not callable(attr):
            return attr  # dtypes (fake.float32), constants (fake.pi, fake.inf)

        def fn(*args, **kwargs):
            return _wrap(attr(*_unwrap(args), **_unwrap(kwargs)))
        fn.__name__ = name
        return fn


def _asarray(a, dtype=None, order=None):
    if isinstance(a, ndarray):
        return a if dtype is None or a.dtype == np.dtype(dtype) else ndarray(a._a.astype(dtype))
    return ndarray(np.array(a, dtype=dtype, order=order))  # host -> device: an explicit copy


def _asnumpy(a, stream=None, out=None):
    if isinstance(a, ndarray):
        return a.get()
    return np.asarray(a)


_stream = types.SimpleNamespace(ptr=0, synchronize=_sync)
fake = _Namespace(
    asarray=_asarray, array=_asarray, asnumpy=_asnumpy,
    cuda=types.SimpleNamespace(is_available=lambda: True, get_current_stream=lambda: _stream,
                               Device=lambda i=0: types.SimpleNamespace(synchronize=_sync)),
)


def _cupyx():
    """cupyx.scipy.special.erf (what the references import for GELU) over SciPy's."""
    from scipy import special
    x = types.ModuleType("cupyx")
    x.scipy = types.ModuleType("cupyx.scipy")
    x.scipy.special = types.ModuleType("cupyx.scipy.special")
    x.scipy.special.erf = lambda v: _wrap(special.erf(_unwrap(v)))
    return {"cupyx": x, "cupyx.scipy": x.scipy, "cupyx.scipy.special": x.scipy.special}


def install(monkeypatch):
    """Register :data:`fake` as pixelforge's GPU array module for one test (or module)."""
    import sys

    from pixelforge import _backend
    monkeypatch.setattr(_backend, "cupy", lambda: fake)
    for name, mod in _cupyx().items():
        monkeypatch.setitem(sys.modules, name, mod)
    SYNCS["count"] = 0
    return fake
