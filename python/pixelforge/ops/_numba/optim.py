"""Fused optimizer updates as Numba kernels: one pass over every parameter of a dtype group.

The optimizer keeps all parameters (and their gradients and moments) of one dtype/device in
flat buffers, so an update is one kernel over 1-D arrays restricted to a few [start, end)
ranges (the parameters that received a gradient; usually a single range).

Variants, all from the scalar rules below, written once:
- ``adam_step_cpu``: Adam / AdamW (``decoupled``), @njit parallel (prange) or serial for small sizes;
- ``sgd_step_cpu``: SGD with momentum / dampening / Nesterov / weight decay;
- ``ema_cpu``: EMA ``s += (1 - decay) * (p - s)``;
- ``*_gpu``: numba.cuda siblings (grid-stride loops), for CuPy arrays or the CUDA simulator.
Moments and arithmetic are float64 inside the scalar rule; stores round to the buffer dtype.
Step counts are per parameter (as torch keeps them), so ranges also split where counts differ.
"""
import math

import numpy as np
from numba import cuda, prange

from ... import _backend
from .._ref.optim import adam_scalars
from . import _jit
from ._jit import cpu_fn, gpu_fn


# ----------------------------------------------------------------------------- scalar rules
def adam_rule(p, g, m, v, lr, beta1, beta2, eps, wd, decoupled, step_size, inv_sqrt_bc2):
    """One Adam(W) element: returns (p, m, v). torch's formula: denom = sqrt(v) / sqrt(bc2) + eps,
    p -= lr / bc1 * m / denom; AdamW first scales p by (1 - lr * wd), Adam adds wd * p to g."""
    if wd != 0.0:
        if decoupled:
            p = p * (1.0 - lr * wd)
        else:
            g = g + wd * p
    m = beta1 * m + (1.0 - beta1) * g
    v = beta2 * v + (1.0 - beta2) * g * g
    p = p - step_size * m / (math.sqrt(v) * inv_sqrt_bc2 + eps)
    return p, m, v


def sgd_rule(p, g, buf, lr, momentum, dampening, wd, nesterov, first):
    """One SGD element: returns (p, buf). torch's formula (buf = g on the first step)."""
    if wd != 0.0:
        g = g + wd * p
    if momentum != 0.0:
        if first:
            buf = g
        else:
            buf = momentum * buf + (1.0 - dampening) * g
        if nesterov:
            g = g + momentum * buf
        else:
            g = buf
    return p - lr * g, buf


def ema_rule(s, p, decay):
    return s + (1.0 - decay) * (p - s)


# ----------------------------------------------------------------------------- CPU
_adam1 = cpu_fn(adam_rule)
_sgd1 = cpu_fn(sgd_rule)
_ema1 = cpu_fn(ema_rule)

# The update is memory-bound (~5 loads/stores per element): below ~1M elements one thread
# finishes before a thread team pays for itself, and on a busy machine a spinning team is far
# worse (measured: 18 ms instead of 0.2 ms for 85k parameters with the 2 cores oversubscribed).
PARALLEL_MIN = 1 << 20


def _make_cpu(parallel):
    # Serial: loops over 1-D slices, which LLVM vectorizes (a flat offset index stays scalar).
    # Parallel: prange over the flat index; numba's parfor lowering gave wrong results for the
    # slice form with a tuple-returning helper (seen with numba 0.68), so it keeps the index form.
    if parallel:
        @_jit.njit(parallel=True)
        def adam(p, g, m, v, starts, ends, lr, beta1, beta2, eps, wd, decoupled, step_size, inv_sqrt_bc2):
            for r in range(starts.size):
                ss, ib = step_size[r], inv_sqrt_bc2[r]
                for i in prange(starts[r], ends[r]):
                    pi, mi, vi = _adam1(p[i], g[i], m[i], v[i], lr, beta1, beta2, eps, wd, decoupled, ss, ib)
                    p[i] = pi
                    m[i] = mi
                    v[i] = vi

        @_jit.njit(parallel=True)
        def sgd(p, g, buf, starts, ends, lr, momentum, dampening, wd, nesterov, first):
            for r in range(starts.size):
                fr = first[r]
                for i in prange(starts[r], ends[r]):
                    pi, bi = _sgd1(p[i], g[i], buf[i], lr, momentum, dampening, wd, nesterov, fr)
                    p[i] = pi
                    buf[i] = bi

        @_jit.njit(parallel=True)
        def ema(s, p, decay):
            for i in prange(s.size):
                s[i] = _ema1(s[i], p[i], decay)
        return adam, sgd, ema

    @_jit.njit()
    def adam(p, g, m, v, starts, ends, lr, beta1, beta2, eps, wd, decoupled, step_size, inv_sqrt_bc2):
        for r in range(starts.size):
            ss, ib = step_size[r], inv_sqrt_bc2[r]
            lo, hi = starts[r], ends[r]
            ps, gs, ms, vs = p[lo:hi], g[lo:hi], m[lo:hi], v[lo:hi]
            for i in range(hi - lo):
                pi, mi, vi = _adam1(ps[i], gs[i], ms[i], vs[i], lr, beta1, beta2, eps, wd, decoupled, ss, ib)
                ps[i] = pi
                ms[i] = mi
                vs[i] = vi

    @_jit.njit()
    def sgd(p, g, buf, starts, ends, lr, momentum, dampening, wd, nesterov, first):
        for r in range(starts.size):
            fr = first[r]
            lo, hi = starts[r], ends[r]
            ps, gs, bs = p[lo:hi], g[lo:hi], buf[lo:hi]
            for i in range(hi - lo):
                pi, bi = _sgd1(ps[i], gs[i], bs[i], lr, momentum, dampening, wd, nesterov, fr)
                ps[i] = pi
                bs[i] = bi

    @_jit.njit()
    def ema(s, p, decay):
        for i in range(s.size):
            s[i] = _ema1(s[i], p[i], decay)
    return adam, sgd, ema


_cpu_kernels = {}


def _cpu(n):
    par = n >= PARALLEL_MIN
    if par not in _cpu_kernels:
        _cpu_kernels[par] = _make_cpu(par)
    return _cpu_kernels[par]


_adam_scalars = adam_scalars


def adam_step_cpu(p, g, m, v, starts, ends, lr, beta1, beta2, eps, wd, decoupled, steps):
    """Update flat 1-D arrays p, m, v in place from g over the ranges [starts[r], ends[r]);
    ``steps[r]``: the step count (after this step) of the parameters in range r."""
    ss, ib = _adam_scalars(float(lr), float(beta1), float(beta2), steps)
    _cpu(p.size)[0](p, g, m, v, starts, ends, float(lr), float(beta1), float(beta2), float(eps), float(wd),
                    bool(decoupled), ss, ib)


def sgd_step_cpu(p, g, buf, starts, ends, lr, momentum, dampening, wd, nesterov, first):
    """``first[r]``: range r takes its first step (its momentum buffer starts as the gradient)."""
    _cpu(p.size)[1](p, g, buf, starts, ends, float(lr), float(momentum), float(dampening), float(wd),
                    bool(nesterov), np.asarray(first, np.bool_))


def ema_cpu(s, p, decay):
    _cpu(s.size)[2](s, p, float(decay))


# ----------------------------------------------------------------------------- GPU
_gpu_kernels = {}


def _gpu():
    if not _gpu_kernels:
        adam1 = gpu_fn(adam_rule)
        sgd1 = gpu_fn(sgd_rule)
        ema1 = gpu_fn(ema_rule)

        @cuda.jit
        def adam(p, g, m, v, start, end, lr, beta1, beta2, eps, wd, decoupled, step_size, inv_sqrt_bc2):
            i = start + cuda.grid(1)
            stride = cuda.gridsize(1)
            while i < end:
                pi, mi, vi = adam1(p[i], g[i], m[i], v[i], lr, beta1, beta2, eps, wd, decoupled, step_size,
                                   inv_sqrt_bc2)
                p[i] = pi
                m[i] = mi
                v[i] = vi
                i += stride

        @cuda.jit
        def sgd(p, g, buf, start, end, lr, momentum, dampening, wd, nesterov, first):
            i = start + cuda.grid(1)
            stride = cuda.gridsize(1)
            while i < end:
                pi, bi = sgd1(p[i], g[i], buf[i], lr, momentum, dampening, wd, nesterov, first)
                p[i] = pi
                buf[i] = bi
                i += stride

        @cuda.jit
        def ema(s, p, decay):
            i = cuda.grid(1)
            stride = cuda.gridsize(1)
            while i < s.size:
                s[i] = ema1(s[i], p[i], decay)
                i += stride
        _gpu_kernels.update(adam=adam, sgd=sgd, ema=ema)
    return _gpu_kernels


def _launch(n):
    threads = 256
    return max(1, min((n + threads - 1) // threads, 1024)), threads


def _stream_for(arr):
    if _backend.is_cupy_array(arr):
        return cuda.external_stream(_backend.cupy().cuda.get_current_stream().ptr)
    return 0


def adam_step_gpu(p, g, m, v, starts, ends, lr, beta1, beta2, eps, wd, decoupled, steps):
    ss, ib = _adam_scalars(float(lr), float(beta1), float(beta2), steps)
    k = _gpu()["adam"]
    for r, (s, e) in enumerate(zip(np.asarray(starts).tolist(), np.asarray(ends).tolist())):
        if e > s:
            blocks, threads = _launch(e - s)
            k[blocks, threads, _stream_for(p)](p, g, m, v, s, e, float(lr), float(beta1), float(beta2), float(eps),
                                               float(wd), bool(decoupled), float(ss[r]), float(ib[r]))


def sgd_step_gpu(p, g, buf, starts, ends, lr, momentum, dampening, wd, nesterov, first):
    k = _gpu()["sgd"]
    first = np.asarray(first, np.bool_)
    for r, (s, e) in enumerate(zip(np.asarray(starts).tolist(), np.asarray(ends).tolist())):
        if e > s:
            blocks, threads = _launch(e - s)
            k[blocks, threads, _stream_for(p)](p, g, buf, s, e, float(lr), float(momentum), float(dampening),
                                               float(wd), bool(nesterov), bool(first[r]))


def ema_gpu(s, p, decay):
    if s.size:
        blocks, threads = _launch(s.size)
        _gpu()["ema"][blocks, threads, _stream_for(s)](s, p, float(decay))
