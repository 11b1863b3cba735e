"""Fused diffusion / VAE sampling kernels in Numba: CPU (``@njit(parallel=True)``, prange over
fixed chunks whose serial bodies LLVM vectorizes) and GPU (numba.cuda, one thread per element,
grid-stride), both from the scalar helpers below.

Kernels (x viewed flat; per-sample coefficients gathered by n = i // inner):
- ``lin2``      out = a[n] * X + b[n] * Y        (add_noise: X=x0, Y=noise; get_velocity: X=noise,
                                                  Y=x0, b negated)                 (N*inner,)
- ``step``      x0 = clamp(cs*s + cm*m, lo, hi); out = px0*x0 + ps*s + pm*m + pn*noise   (DDPM/DDIM step)
                noise: none, an array, or stream normals generated in the pass
- ``reparam``   eps = randn(stream); z = mu + exp(lv/2) * eps                 (mu, lv, z, eps same shape)
- ``reparam_bwd``  grad_lv = g * eps * exp(lv/2) / 2
- ``kl``        partial[n, c] = sum over chunk c of row n of (1 + lv - mu^2 - exp(lv)), in index
                order; kl[n] = -1/2 sum_c partial[n, c] in c order: fixed order, any thread count
- ``kl_bwd``    grad_mu = g[n] mu; grad_lv = g[n] (exp(lv) - 1) / 2

Same bits on CPU and GPU for float32 (GPU FMA contraction included): the host rounds every
coefficient to 29 significant bits, and intermediates that get multiplied (the clipped x0,
exp(lv/2)) are rounded to float32 first, so each product in a sum is exact in float64 and a fused
multiply-add rounds exactly like the separate multiply and add. exp is our own :func:`exp_det`
(same construction; libm's and libdevice's exp can differ in the last bit, and a libm call would
also stop LLVM vectorizing the CPU loops). float64 inputs (CPU only) skip the float32 roundings
and use libm's exp, for reference accuracy.

The float32 reparameterize loop is compiled with ``fastmath={"contract"}`` (fusing cannot change
a bit, as on the GPU) and its float32 std = :func:`exp32` takes 2^k from the bits of the
exponent on the CPU (:func:`_pow2_f32_cpu`, same float32 as :func:`pow2`'s select ladder).
"""
import math

import numba
import numpy as np
from numba import cuda, prange  # cuda as a module global: the simulator swaps it there

from ... import _backend
from .._ref import random as _r
from . import _jit, philox
from .philox import bits_f64, cpu_vec_fn, launch_config, stream_for

CHUNK = 16384      # elements per parallel task (CPU)
KL_CHUNK = 4096    # elements per partial sum of gaussian_kl (fixed: it sets the reduction order)

# exp for float32-derived arguments, with the exact-product construction of philox.py so the CPU
# and the FMA-contracting GPU round alike (libm's and libdevice's exp may differ in the last bit)
# and so LLVM can vectorize it (a libm call cannot be). Relative error ~4e-9 (r is quantized to
# 2^-27): a float32 result is within 1 ulp of the correctly rounded one.
_EXP_INV_LN2 = _r.bits_round(1.0 / math.log(2.0), 26)   # x (<= 26 bits) * this: exact
_EXP_LN2_HI = _r.bits_round(math.log(2.0), 42)           # k (<= 11 bits) * these: exact
_EXP_LN2_LO = _r.bits_round(math.log(2.0) - _EXP_LN2_HI, 42)
_EXP_C = [1.0 / math.factorial(j) for j in range(11)]   # truncation < 1e-12 for |r| < 0.35
_EXP_G = _r.horner_grids(_EXP_C, 0.35, 27)
EXP_RS = 2.0 ** 27                                        # r grid: |r| < 0.35 -> 26 bits
EC10 = _r.quant_const(_EXP_C[10], _EXP_G[10])
(EC9, EC8, EC7, EC6, EC5, EC4, EC3, EC2, EC1, EC0) = _EXP_C[9::-1]
(EG9, EG8, EG7, EG6, EG5, EG4, EG3, EG2, EG1) = _EXP_G[9:0:-1]
RND = _r.RND


def quant_sum(v, s):
    """v (the result of an addition, never a bare product) rounded to the grid 1/s: see
    philox.quant_sum."""
    c = RND / s
    return (v + c) - c


def pow2(k):
    """2.0 ** k for an integer-valued float k, |k| < 2048, by exact power-of-two products.
    Written as selects between constants (no float -> int conversion, no branches) so LLVM
    vectorizes it."""
    neg = k < 0.0
    a = abs(k)
    s = 1.0
    c = a >= 1024.0
    m = 5.562684646268003e-309 if neg else math.inf
    s = s * (m if c else 1.0)
    a = a - (1024.0 if c else 0.0)
    c = a >= 512.0
    m = 7.458340731200207e-155 if neg else 1.3407807929942597e+154
    s = s * (m if c else 1.0)
    a = a - (512.0 if c else 0.0)
    c = a >= 256.0
    m = 8.636168555094445e-78 if neg else 1.157920892373162e+77
    s = s * (m if c else 1.0)
    a = a - (256.0 if c else 0.0)
    c = a >= 128.0
    m = 2.938735877055719e-39 if neg else 3.402823669209385e+38
    s = s * (m if c else 1.0)
    a = a - (128.0 if c else 0.0)
    c = a >= 64.0
    m = 5.421010862427522e-20 if neg else 1.8446744073709552e+19
    s = s * (m if c else 1.0)
    a = a - (64.0 if c else 0.0)
    c = a >= 32.0
    m = 2.3283064365386963e-10 if neg else 4294967296.0
    s = s * (m if c else 1.0)
    a = a - (32.0 if c else 0.0)
    c = a >= 16.0
    m = 1.52587890625e-05 if neg else 65536.0
    s = s * (m if c else 1.0)
    a = a - (16.0 if c else 0.0)
    c = a >= 8.0
    m = 0.00390625 if neg else 256.0
    s = s * (m if c else 1.0)
    a = a - (8.0 if c else 0.0)
    c = a >= 4.0
    m = 0.0625 if neg else 16.0
    s = s * (m if c else 1.0)
    a = a - (4.0 if c else 0.0)
    c = a >= 2.0
    m = 0.25 if neg else 4.0
    s = s * (m if c else 1.0)
    a = a - (2.0 if c else 0.0)
    c = a >= 1.0
    m = 0.5 if neg else 2.0
    s = s * (m if c else 1.0)
    a = a - (1.0 if c else 0.0)
    return s


def exp_parts(x):
    """(p, k) with exp_det(x) = p * 2^k: p in [0.70, 1.42], k integer-valued in [-1076, 1024];
    x with at most 26 significant bits (a float32 value, or half of one)."""
    x = -746.0 if x < -746.0 else (710.0 if x > 710.0 else x)
    k = (x * _EXP_INV_LN2 + RND) - RND
    r = quant_sum((x - k * _EXP_LN2_HI) - k * _EXP_LN2_LO, EXP_RS)
    y = EC9 + r * EC10
    y = EC8 + r * quant_sum(y, EG9)
    y = EC7 + r * quant_sum(y, EG8)
    y = EC6 + r * quant_sum(y, EG7)
    y = EC5 + r * quant_sum(y, EG6)
    y = EC4 + r * quant_sum(y, EG5)
    y = EC3 + r * quant_sum(y, EG4)
    y = EC2 + r * quant_sum(y, EG3)
    y = EC1 + r * quant_sum(y, EG2)
    p = EC0 + r * quant_sum(y, EG1)
    return p, k


def exp_det(x):
    """exp(x) for x with at most 26 significant bits (a float32 value, or half of one)."""
    p, k = exp_parts(x)
    return p * pow2(k)


def pow2_f32(k):
    """pow2(k) where only float32(p * 2^k), 0.7 < p < 1.5, is used. The CPU kernels use
    :func:`_pow2_f32_cpu`, which gives that float32 bit for bit more cheaply."""
    return pow2(k)


def exp32(x):
    """exp_det(x) rounded to float32 (returned as a float64)."""
    p, k = exp_parts(x)
    return np.float64(np.float32(p * pow2_f32(k)))


# ------------------------------------------------------------------ scalar helpers (shared)
def lin2(a, x, b, y):
    return np.float64(a) * np.float64(x) + np.float64(b) * np.float64(y)


# Inputs are converted with np.float64() first: the CUDA simulator runs NumPy scalars, where
# float32 * Python float stays float32, and numba's float() keeps a float32 a float32.
def step_value(s, m, nz, cs, cm, lo, hi, to32, px0, ps, pm, pn):
    s = np.float64(s)
    m = np.float64(m)
    nz = np.float64(nz)
    x0 = cs * s + cm * m
    x0 = lo if x0 < lo else (hi if x0 > hi else x0)   # clip_sample: [-r, r], else [-inf, inf]
    if to32:
        x0 = np.float64(np.float32(x0))  # diffusers' pred_original_sample is a float32 tensor
    return px0 * x0 + ps * s + pm * m + pn * nz


def half_exp(lv, to32):
    if to32:
        return exp32(0.5 * np.float64(lv))
    return math.exp(0.5 * np.float64(lv))


def reparam_value(mu, lv, eps, to32):
    return np.float64(mu) + half_exp(lv, to32) * np.float64(eps)


def reparam_grad_lv(g, eps, lv, to32):
    return 0.5 * (np.float64(g) * np.float64(eps)) * half_exp(lv, to32)


def kl_term(mu, lv, to32):
    mu = np.float64(mu)
    lv = np.float64(lv)
    e = exp_det(lv) if to32 else math.exp(lv)
    return 1.0 + lv - mu * mu - e


def kl_grad_lv(g, lv, to32):
    lv = np.float64(lv)
    e = exp_det(lv) if to32 else math.exp(lv)
    return 0.5 * np.float64(g) * (e - 1.0)


# ----------------------------------------------------------------------------- CPU
def _pow2_f32_cpu(k):
    """:func:`pow2_f32` from the bits of 2^k (k <= 1024 from exp_parts), k clamped below at
    -200 (NaN to -200 too): for -200 <= k <= 1023 the power is the same exact value and
    k = 1024 gives inf's bits, as pow2 does; below, p * 2^k is +0 in float32 either way
    (p * 2^-200 < 2^-150), and a NaN p stays the same NaN (p * 1.0 before, p * 2^-200 now)."""
    k = k if k > -200.0 else -200.0
    return bits_f64((np.int64(k) + 1023) << 52)


_jit.set_variant(pow2_f32, "cpu-vec", numba.njit(inline="always", error_model="numpy")(_pow2_f32_cpu))
_lin2_c = cpu_vec_fn(lin2)
_step_c = cpu_vec_fn(step_value)
_reparam_c = cpu_vec_fn(reparam_value)
_reparam_g_c = cpu_vec_fn(reparam_grad_lv)
_kl_term_c = cpu_vec_fn(kl_term)
_kl_g_c = cpu_vec_fn(kl_grad_lv)
_fill_normals = philox.fill_normals_serial


@_jit.njit(error_model="numpy")
def _lin2_span(x, y, o, a, b):
    for i in range(o.shape[0]):
        o[i] = _lin2_c(a, x[i], b, y[i])


@_jit.njit(parallel=True, error_model="numpy")
def _lin2_cpu(x, y, o, a, b, inner):
    # x, y, o: (N * inner,); a, b: (N,) float64
    nch = (inner + CHUNK - 1) // CHUNK
    for t in prange(a.shape[0] * nch):
        n = t // nch
        lo = n * inner + (t - n * nch) * CHUNK
        hi = min(lo + CHUNK, (n + 1) * inner)
        _lin2_span(x[lo:hi], y[lo:hi], o[lo:hi], a[n], b[n])


@_jit.njit(error_model="numpy")
def _step_span(s, m, nz, o, mode, cs, cm, lo, hi, to32, px0, ps, pm, pn):
    # one loop per (mode, to32) with literal flags: branch-free bodies that LLVM vectorizes
    if to32:
        if mode == 0:
            for i in range(o.shape[0]):
                o[i] = _step_c(s[i], m[i], 0.0, cs, cm, lo, hi, True, px0, ps, pm, pn)
        elif mode == 1:
            for i in range(o.shape[0]):
                o[i] = _step_c(s[i], m[i], nz[i], cs, cm, lo, hi, True, px0, ps, pm, pn)
        else:  # o already holds the noise (written by the caller, rounded to o's dtype)
            for i in range(o.shape[0]):
                o[i] = _step_c(s[i], m[i], o[i], cs, cm, lo, hi, True, px0, ps, pm, pn)
    else:
        if mode == 0:
            for i in range(o.shape[0]):
                o[i] = _step_c(s[i], m[i], 0.0, cs, cm, lo, hi, False, px0, ps, pm, pn)
        elif mode == 1:
            for i in range(o.shape[0]):
                o[i] = _step_c(s[i], m[i], nz[i], cs, cm, lo, hi, False, px0, ps, pm, pn)
        else:
            for i in range(o.shape[0]):
                o[i] = _step_c(s[i], m[i], o[i], cs, cm, lo, hi, False, px0, ps, pm, pn)


@_jit.njit(parallel=True, error_model="numpy")
def _step_cpu(s, m, nz, o, mode, word0, k0, k1, cs, cm, lo, hi, to32, px0, ps, pm, pn):
    n = o.shape[0]
    for c in prange((n + CHUNK - 1) // CHUNK):
        a = c * CHUNK
        b = min(a + CHUNK, n)
        if mode == 2:
            _fill_normals(o[a:b], word0 + np.uint64(a), k0, k1)
        _step_span(s[a:b], m[a:b], nz[a:b] if mode == 1 else nz, o[a:b], mode, cs, cm, lo, hi, to32,
                   px0, ps, pm, pn)


@_jit.njit(error_model="numpy", fastmath={"contract"})
def _reparam_span32(mu, lv, z, eps):
    # float32: every product feeding an addition is exact, so letting LLVM fuse multiply-adds
    # (as the GPU does) cannot change a bit; no libm call, the loop vectorizes
    for i in range(z.shape[0]):
        z[i] = _reparam_c(mu[i], lv[i], eps[i], True)


@_jit.njit(error_model="numpy")
def _reparam_span(mu, lv, z, eps, to32):
    if to32:
        _reparam_span32(mu, lv, z, eps)
    else:  # float64: libm's exp, products rounded as written (no contraction)
        for i in range(z.shape[0]):
            z[i] = _reparam_c(mu[i], lv[i], eps[i], False)


@_jit.njit(parallel=True, error_model="numpy")
def _reparam_cpu(mu, lv, z, eps, word0, k0, k1, to32):
    n = z.shape[0]
    for c in prange((n + CHUNK - 1) // CHUNK):
        lo = c * CHUNK
        hi = min(lo + CHUNK, n)
        _fill_normals(eps[lo:hi], word0 + np.uint64(lo), k0, k1)
        _reparam_span(mu[lo:hi], lv[lo:hi], z[lo:hi], eps[lo:hi], to32)


@_jit.njit(parallel=True, error_model="numpy")
def _reparam_bwd_cpu(g, eps, lv, glv, to32):
    n = g.shape[0]
    for c in prange((n + CHUNK - 1) // CHUNK):
        lo = c * CHUNK
        hi = min(lo + CHUNK, n)
        if to32:
            for i in range(lo, hi):
                glv[i] = _reparam_g_c(g[i], eps[i], lv[i], True)
        else:
            for i in range(lo, hi):
                glv[i] = _reparam_g_c(g[i], eps[i], lv[i], False)


@_jit.njit(parallel=True, error_model="numpy")
def _kl_partial_cpu(mu, lv, part, inner, to32):
    # part (N, nch): sequential float64 sums over fixed chunks of each row
    nch = part.shape[1]
    for t in prange(part.shape[0] * nch):
        n = t // nch
        c = t - n * nch
        lo = n * inner + c * KL_CHUNK
        hi = min(lo + KL_CHUNK, (n + 1) * inner)
        acc = 0.0
        for i in range(lo, hi):
            acc += _kl_term_c(mu[i], lv[i], to32)
        part[n, c] = acc


@_jit.njit()
def _kl_finish(part, out):
    for n in range(part.shape[0]):
        acc = 0.0
        for c in range(part.shape[1]):
            acc += part[n, c]
        out[n] = -0.5 * acc


@_jit.njit(parallel=True, error_model="numpy")
def _kl_bwd_cpu(g, mu, lv, gmu, glv, inner, to32):
    nch = (inner + CHUNK - 1) // CHUNK
    for t in prange(g.shape[0] * nch):
        n = t // nch
        lo = n * inner + (t - n * nch) * CHUNK
        hi = min(lo + CHUNK, (n + 1) * inner)
        gn = g[n]
        for i in range(lo, hi):
            gmu[i] = gn * mu[i]
        if to32:
            for i in range(lo, hi):
                glv[i] = _kl_g_c(gn, lv[i], True)
        else:
            for i in range(lo, hi):
                glv[i] = _kl_g_c(gn, lv[i], False)


# --------------------------------------------------------------------- CPU entry points
# Arrays arrive C-contiguous; they are handled flat. Coefficients arrive prepared (float64,
# 29-bit for float32 inputs, see ops/add_noise.py and samplers.py).
def lin2_cpu(x, y, a, b):
    out = np.empty_like(x)
    if x.size:
        _lin2_cpu(x.reshape(-1), y.reshape(-1), out.reshape(-1), a, b, x.size // a.shape[0])
    return out


def _clip_bounds(c):
    return (-c["r"], c["r"]) if c["clip"] else (-math.inf, math.inf)


def step_cpu(sample, model_output, noise, gen, coefs):
    """gen: None or (word0, k0, k1) to draw the noise in the pass; coefs: dict of floats."""
    out = np.empty_like(sample)
    if sample.size == 0:
        return out
    mode = 1 if noise is not None else (2 if gen is not None else 0)
    nz = noise.reshape(-1) if noise is not None else np.empty(1, sample.dtype)
    word0, k0, k1 = gen if gen is not None else (0, 0, 0)
    c = coefs
    lo, hi = _clip_bounds(c)
    _step_cpu(sample.reshape(-1), model_output.reshape(-1), nz, out.reshape(-1), mode, np.uint64(word0),
              np.uint64(k0), np.uint64(k1), c["cs"], c["cm"], lo, hi, sample.dtype == np.float32,
              c["px0"], c["ps"], c["pm"], c["pn"])
    return out


def reparam_cpu(mu, lv, word0, k0, k1):
    z, eps = np.empty_like(mu), np.empty_like(mu)
    if mu.size:
        _reparam_cpu(mu.reshape(-1), lv.reshape(-1), z.reshape(-1), eps.reshape(-1), np.uint64(word0),
                     np.uint64(k0), np.uint64(k1), mu.dtype == np.float32)
    return z, eps


def reparam_bwd_cpu(g, eps, lv):
    glv = np.empty_like(g)
    if g.size:
        _reparam_bwd_cpu(g.reshape(-1), eps.reshape(-1), lv.reshape(-1), glv.reshape(-1), g.dtype == np.float32)
    return g.copy(), glv


def kl_cpu(mu, lv):
    n = mu.shape[0]
    inner = mu.size // n if n else 0
    out = np.zeros(n, mu.dtype)
    if n == 0:
        return out
    part = np.zeros((n, max(1, (inner + KL_CHUNK - 1) // KL_CHUNK)), np.float64)
    out64 = np.empty(n, np.float64)
    if inner:
        _kl_partial_cpu(mu.reshape(-1), lv.reshape(-1), part, inner, mu.dtype == np.float32)
    _kl_finish(part, out64)
    return out64.astype(mu.dtype)


def kl_bwd_cpu(g, mu, lv):
    gmu, glv = np.empty_like(mu), np.empty_like(mu)
    if mu.size:
        _kl_bwd_cpu(g.astype(np.float64), mu.reshape(-1), lv.reshape(-1), gmu.reshape(-1), glv.reshape(-1),
                    mu.size // mu.shape[0], mu.dtype == np.float32)
    return gmu, glv


# ----------------------------------------------------------------------------- GPU
_gpu_kernels = {}


def _gpu():
    if _gpu_kernels:
        return _gpu_kernels
    from ._jit import gpu_fn  # noqa: PLC0415
    lin2_g = gpu_fn(lin2)
    step_g = gpu_fn(step_value)
    reparam_g = gpu_fn(reparam_value)
    reparam_grad_g = gpu_fn(reparam_grad_lv)
    kl_term_g = gpu_fn(kl_term)
    kl_grad_g = gpu_fn(kl_grad_lv)
    normal_g = gpu_fn(philox.normal_at)

    @cuda.jit
    def lin2_k(x, y, o, a, b, inner):
        i = cuda.grid(1)
        while i < o.shape[0]:
            n = i // inner
            o[i] = lin2_g(a[n], x[i], b[n], y[i])
            i += cuda.gridsize(1)

    @cuda.jit
    def step_k(s, m, nz, o, mode, word0, k0, k1, cs, cm, lo, hi, to32, px0, ps, pm, pn):
        i = cuda.grid(1)
        while i < o.shape[0]:
            if mode == 1:
                v = nz[i]
            elif mode == 2:
                o[i] = normal_g(word0 + np.uint64(i), k0, k1)  # round to o's dtype like randn
                v = o[i]
            else:
                v = 0.0
            o[i] = step_g(s[i], m[i], v, cs, cm, lo, hi, to32, px0, ps, pm, pn)
            i += cuda.gridsize(1)

    @cuda.jit
    def reparam_k(mu, lv, z, eps, word0, k0, k1, to32):
        i = cuda.grid(1)
        while i < z.shape[0]:
            eps[i] = normal_g(word0 + np.uint64(i), k0, k1)
            z[i] = reparam_g(mu[i], lv[i], eps[i], to32)
            i += cuda.gridsize(1)

    @cuda.jit
    def reparam_bwd_k(g, eps, lv, glv, to32):
        i = cuda.grid(1)
        while i < g.shape[0]:
            glv[i] = reparam_grad_g(g[i], eps[i], lv[i], to32)
            i += cuda.gridsize(1)

    @cuda.jit
    def kl_partial_k(mu, lv, part, inner, to32):
        t = cuda.grid(1)
        nch = part.shape[1]
        while t < part.shape[0] * nch:
            n = t // nch
            c = t - n * nch
            lo = n * inner + c * KL_CHUNK
            hi = min(lo + KL_CHUNK, (n + 1) * inner)
            acc = 0.0
            for i in range(lo, hi):
                acc += kl_term_g(mu[i], lv[i], to32)
            part[n, c] = acc
            t += cuda.gridsize(1)

    @cuda.jit
    def kl_finish_k(part, out):
        n = cuda.grid(1)
        while n < part.shape[0]:
            acc = 0.0
            for c in range(part.shape[1]):
                acc += part[n, c]
            out[n] = -0.5 * acc
            n += cuda.gridsize(1)

    @cuda.jit
    def kl_bwd_k(g, mu, lv, gmu, glv, inner, to32):
        i = cuda.grid(1)
        while i < mu.shape[0]:
            n = i // inner
            gmu[i] = g[n] * mu[i]
            glv[i] = kl_grad_g(g[n], lv[i], to32)
            i += cuda.gridsize(1)

    _gpu_kernels.update(lin2=lin2_k, step=step_k, reparam=reparam_k, reparam_bwd=reparam_bwd_k,
                        kl_partial=kl_partial_k, kl_finish=kl_finish_k, kl_bwd=kl_bwd_k)
    return _gpu_kernels


_xp = _backend.xp_of


def _launch(name, n, *args, threads=128, max_blocks=4096):
    blocks, threads = launch_config(n, threads, max_blocks)
    _gpu()[name][blocks, threads, stream_for(args[0])](*args)


# GPU entry points take CuPy arrays (NumPy arrays under NUMBA_ENABLE_CUDASIM=1); coefficient
# vectors are moved to the device by the caller's array module.
def lin2_gpu(x, y, a, b, **launch):
    xp = _xp(x)
    out = xp.empty_like(x)
    if x.size:
        _launch("lin2", x.size, x.reshape(-1), y.reshape(-1), out.reshape(-1), xp.asarray(a), xp.asarray(b),
                x.size // a.shape[0], **launch)
    return out


def step_gpu(sample, model_output, noise, gen, coefs, **launch):
    xp = _xp(sample)
    out = xp.empty_like(sample)
    if sample.size == 0:
        return out
    mode = 1 if noise is not None else (2 if gen is not None else 0)
    nz = noise.reshape(-1) if noise is not None else xp.empty(1, sample.dtype)
    word0, k0, k1 = gen if gen is not None else (0, 0, 0)
    c = coefs
    lo, hi = _clip_bounds(c)
    _launch("step", sample.size, sample.reshape(-1), model_output.reshape(-1), nz, out.reshape(-1), mode,
            np.uint64(word0), np.uint64(k0), np.uint64(k1), c["cs"], c["cm"], lo, hi,
            sample.dtype == np.float32, c["px0"], c["ps"], c["pm"], c["pn"], **launch)
    return out


def reparam_gpu(mu, lv, word0, k0, k1, **launch):
    xp = _xp(mu)
    z, eps = xp.empty_like(mu), xp.empty_like(mu)
    if mu.size:
        _launch("reparam", mu.size, mu.reshape(-1), lv.reshape(-1), z.reshape(-1), eps.reshape(-1),
                np.uint64(word0), np.uint64(k0), np.uint64(k1), mu.dtype == np.float32, **launch)
    return z, eps


def reparam_bwd_gpu(g, eps, lv, **launch):
    xp = _xp(g)
    glv = xp.empty_like(g)
    if g.size:
        _launch("reparam_bwd", g.size, g.reshape(-1), eps.reshape(-1), lv.reshape(-1), glv.reshape(-1),
                g.dtype == np.float32, **launch)
    return g.copy(), glv


def kl_gpu(mu, lv, **launch):
    xp = _xp(mu)
    n = mu.shape[0]
    inner = mu.size // n if n else 0
    if n == 0:
        return xp.zeros(0, mu.dtype)
    part = xp.zeros((n, max(1, (inner + KL_CHUNK - 1) // KL_CHUNK)), np.float64)
    out64 = xp.empty(n, np.float64)
    if inner:
        _launch("kl_partial", part.size, mu.reshape(-1), lv.reshape(-1), part, inner, mu.dtype == np.float32,
                **launch)
    _launch("kl_finish", n, part, out64, **launch)
    return out64.astype(mu.dtype)


def kl_bwd_gpu(g, mu, lv, **launch):
    xp = _xp(mu)
    gmu, glv = xp.empty_like(mu), xp.empty_like(mu)
    if mu.size:
        _launch("kl_bwd", mu.size, xp.asarray(g, np.float64), mu.reshape(-1), lv.reshape(-1), gmu.reshape(-1),
                glv.reshape(-1), mu.size // mu.shape[0], mu.dtype == np.float32, **launch)
    return gmu, glv
