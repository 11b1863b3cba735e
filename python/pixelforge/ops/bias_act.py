"""Fused bias + activation + gain + clamp (StyleGAN2's ``bias_act``).

Implementations: ``cpu`` (kernels/bias_act/bias_act_cpu.cpp, AVX-512/AVX2/generic at run
time, OpenMP), ``cuda`` (kernels/bias_act/bias_act_cuda.cu; float32/float16/bfloat16),
``numba`` (njit on the CPU, numba.cuda on the GPU, one scalar definition), ``ref``.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _backend
from .._dispatch import NotBuilt, register, resolve
from .._validate import float_array, real_number, same_device, same_dtype, same_shape, axis, choice
from . import _glue
from ._ref import bias_act as _ref

_ptr = _glue.ptr

# name -> (kernel code, default alpha, default gain); gains follow StyleGAN2 (silu = swish).
ACTIVATIONS = {
    "linear": (0, 0.0, 1.0),
    "relu": (1, 0.0, math.sqrt(2)),
    "lrelu": (2, 0.2, math.sqrt(2)),
    "tanh": (3, 0.0, 1.0),
    "sigmoid": (4, 0.0, 1.0),
    "silu": (5, 0.0, math.sqrt(2)),
    "gelu": (6, 0.0, 1.0),
}



def _prepare(x, bias, dim, act, alpha, gain, clamp, *, grad_out=None):
    x = float_array(x, "x", min_ndim=1)
    dim = axis(dim, x.ndim, "dim")
    act = choice(act, "act", ACTIVATIONS)
    _, def_alpha, def_gain = ACTIVATIONS[act]
    alpha = def_alpha if alpha is None else real_number(alpha, "alpha")
    gain = def_gain if gain is None else real_number(gain, "gain")
    clamp = -1.0 if clamp is None else real_number(clamp, "clamp", min_value=0.0)
    if bias is not None:
        bias = float_array(bias, "bias", ndim=1)
        if bias.shape[0] != x.shape[dim]:
            raise ValueError(f"bias: length {bias.shape[0]} does not match x.shape[{dim}] = {x.shape[dim]}")
    if grad_out is not None:
        grad_out = float_array(grad_out, "grad_out")
        same_shape(grad_out, "grad_out", x, "x")
    device = same_device(x=x, bias=bias, grad_out=grad_out)
    same_dtype(x=x, bias=bias, grad_out=grad_out)
    return x, bias, dim, act, alpha, gain, clamp, grad_out, device


def bias_act(x, bias=None, dim=1, act="linear", alpha=None, gain=None, clamp=None, *, impl="auto"):
    """``y = clamp(act(x + bias) * gain, -clamp, clamp)``.

    x: any shape (ndim >= 1); bias: (x.shape[dim],) added along ``dim``, or None.
    act: "linear" | "relu" | "lrelu" | "tanh" | "sigmoid" | "silu" | "gelu" (erf form).
    alpha: lrelu slope (default 0.2). gain: default sqrt(2) for relu/lrelu/silu, else 1.
    clamp: None, or clip the output to [-clamp, clamp]. Returns an array like x.
    """
    x, bias, dim, act, alpha, gain, clamp, _, device = _prepare(x, bias, dim, act, alpha, gain, clamp)
    _, fn = resolve("bias_act", device, impl)
    return fn(x, bias, dim, act, alpha, gain, clamp)


def bias_act_backward(grad_out, x, bias=None, dim=1, act="linear", alpha=None, gain=None, clamp=None, *,
                      impl="auto"):
    """Gradients of :func:`bias_act`: ``(dx, dbias)`` (dbias None when bias is None).

    grad_out and x: the same shape; the output is not needed (recomputed from x).
    Where the clamp was active the gradient is zero.
    """
    x, bias, dim, act, alpha, gain, clamp, grad_out, device = _prepare(x, bias, dim, act, alpha, gain, clamp,
                                                                       grad_out=grad_out)
    _, fn = resolve("bias_act_backward", device, impl)
    return fn(grad_out, x, bias, dim, act, alpha, gain, clamp)


# ----------------------------------------------------------------------------- impls
@register("bias_act", "cpu", "ref")
@register("bias_act", "cuda", "ref")
def _load_ref():
    return _ref.bias_act


@register("bias_act_backward", "cpu", "ref")
@register("bias_act_backward", "cuda", "ref")
def _load_ref_backward():
    return _ref.bias_act_backward


def _cpu_mod():
    mod = _backend.cpu_module()
    if mod is None:
        raise NotBuilt("pixelforge._cpu is not built")
    return mod


@register("bias_act", "cpu", "cpu")
def _load_cpu():
    mod = _cpu_mod()

    def forward(x, bias, dim, act, alpha, gain, clamp):
        y = np.empty_like(x)
        mod.bias_act_forward(x, bias, y, dim, ACTIVATIONS[act][0], alpha, gain, clamp)
        return y
    return forward


@register("bias_act_backward", "cpu", "cpu")
def _load_cpu_backward():
    mod = _cpu_mod()

    def backward(grad_out, x, bias, dim, act, alpha, gain, clamp, need_dbias=True):
        dx = np.empty_like(x)
        db = np.empty_like(bias) if bias is not None and need_dbias else None
        mod.bias_act_backward(grad_out, x, bias, dx, db, dim, ACTIVATIONS[act][0], alpha, gain, clamp)
        return dx, db
    return backward


@register("bias_act", "cuda", "cuda")
def _load_cuda():
    mod = _glue.cuda_module("bias_act_forward")
    cp = _backend.cupy()

    def forward(x, bias, dim, act, alpha, gain, clamp):
        y = cp.empty_like(x)
        mod.bias_act_forward(_ptr(x), _ptr(bias), _ptr(y), list(x.shape), dim, ACTIVATIONS[act][0], alpha, gain,
                             clamp, _glue.dtype_code(x, "x"), _glue.stream())
        return y
    return forward


@register("bias_act_backward", "cuda", "cuda")
def _load_cuda_backward():
    mod = _glue.cuda_module("bias_act_backward")
    cp = _backend.cupy()

    def backward(grad_out, x, bias, dim, act, alpha, gain, clamp, need_dbias=True):
        dx = cp.empty_like(x)
        db32 = cp.empty(x.shape[dim], cp.float32) if bias is not None and need_dbias else None
        mod.bias_act_backward(_ptr(grad_out), _ptr(x), _ptr(bias), _ptr(dx), _ptr(db32), list(x.shape), dim,
                              ACTIVATIONS[act][0], alpha, gain, clamp, _glue.dtype_code(x, "x"), _glue.stream())
        return dx, (db32.astype(bias.dtype) if db32 is not None else None)
    return backward


def _numba_mod():
    if _backend.numba_version() is None:
        raise NotBuilt("numba is not installed")
    from ._numba import bias_act as nb  # noqa: PLC0415
    return nb


@register("bias_act", "cpu", "numba")
def _load_numba():
    nb = _numba_mod()
    return lambda x, bias, dim, act, alpha, gain, clamp: nb.forward_cpu(x, bias, dim, ACTIVATIONS[act][0], alpha,
                                                                        gain, clamp)


@register("bias_act_backward", "cpu", "numba")
def _load_numba_backward():
    nb = _numba_mod()
    return lambda g, x, bias, dim, act, alpha, gain, clamp, need_dbias=True: nb.backward_cpu(
        g, x, bias, dim, ACTIVATIONS[act][0], alpha, gain, clamp, need_dbias)


@register("bias_act", "cuda", "numba")
def _load_numba_gpu():
    if not _backend.numba_cuda_available():
        raise NotBuilt("numba.cuda has no GPU")
    nb = _numba_mod()

    def forward(x, bias, dim, act, alpha, gain, clamp):
        if x.dtype.name != "float32":
            raise ValueError(f"x: the numba GPU kernel takes float32, got {x.dtype.name}; use impl='cuda'")
        return nb.forward_gpu(x, bias, dim, ACTIVATIONS[act][0], alpha, gain, clamp)
    return forward


@register("bias_act_backward", "cuda", "numba")
def _load_numba_gpu_backward():
    if not _backend.numba_cuda_available():
        raise NotBuilt("numba.cuda has no GPU")
    nb = _numba_mod()

    def backward(g, x, bias, dim, act, alpha, gain, clamp, need_dbias=True):
        if x.dtype.name != "float32":
            raise ValueError(f"x: the numba GPU kernel takes float32, got {x.dtype.name}; use impl='cuda'")
        return nb.backward_gpu(g, x, bias, dim, ACTIVATIONS[act][0], alpha, gain, clamp, need_dbias)
    return backward
