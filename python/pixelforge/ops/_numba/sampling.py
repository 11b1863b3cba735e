"""Fused diffusion / VAE sampling kernels in Numba: CPU (``@njit(parallel=True)``, prange over
fixed chunks whose serial bodies LLVM vectorizes) and GPU (numba.cuda, one thread per element,
grid-stride), both from the scalar helpers below.

Kernels (x viewed flat; per-sample coefficients gathered by n = i // inner):
- ``lin2``      out = a[n] * X + b[n] * Y        (add_noise: X=x0, Y=noise; get_velocity: X=noise,
                                                  Y=x0, b negated)                 (N*inner,)
- ``step``      x0 = clip(cs*s + cm*m); out = px0*x0 + ps*s + pm*m + pn*noise   (DDPM/DDIM step)
                noise: none, an array, or stream normals generated in the pass
- ``reparam``   eps = randn(stream); z = mu + exp(lv/2) * eps                 (mu, lv, z, eps same shape)
- ``reparam_bwd``  grad_lv = g * eps * exp(lv/2) / 2
- ``kl``        partial[n, c] = sum over chunk c of row n of (1 + lv - mu^2 - exp(lv)), in index
                order; kl[n] = -1/2 sum_c partial[n, c] in c order: fixed order, any thread count
- ``kl_bwd``    grad_mu = g[n] mu; grad_lv = g[n] (exp(lv) - 1) / 2

Same bits on CPU and GPU for float32 (GPU FMA contraction included): the host rounds every
coefficient to 29 significant bits, and intermediates that get multiplied (the clipped x0,
exp(lv/2)) are rounded to float32 first, so each product in a sum is exact in float64 and a fused
multiply-add rounds exactly like the separate multiply and add. float64 inputs (CPU only) skip
those roundings. exp is libm's on the CPU and libdevice's on the GPU: both are within 1 ulp in
float64 but not always the same bits; after the float32 rounding they differ only when a value
lies within 1 float64 ulp of a float32 rounding boundary (<= 1 float32 ulp, astronomically rare).
"""
import math

import numba
import numpy as np
from numba import prange

from . import philox
from .philox import cpu_vec_fn, launch_config, stream_for

CHUNK = 16384      # elements per parallel task (CPU)
KL_CHUNK = 4096    # elements per partial sum of gaussian_kl (fixed: it sets the reduction order)


# ------------------------------------------------------------------ scalar helpers (shared)
def lin2(a, x, b, y):
    return a * x + b * y


def step_value(s, m, nz, cs, cm, clip, r, to32, px0, ps, pm, pn):
    x0 = cs * s + cm * m
    if clip:
        x0 = -r if x0 < -r else (r if x0 > r else x0)
    if to32:
        x0 = float(np.float32(x0))  # diffusers' pred_original_sample is a float32 tensor
    return px0 * x0 + ps * s + pm * m + pn * nz


def half_exp(lv, to32):
    e = math.exp(0.5 * lv)
    if to32:
        e = float(np.float32(e))
    return e


def reparam_value(mu, lv, eps, to32):
    return mu + half_exp(lv, to32) * eps


def reparam_grad_lv(g, eps, lv, to32):
    return 0.5 * (g * eps) * half_exp(lv, to32)


def kl_term(mu, lv):
    return 1.0 + lv - mu * mu - math.exp(lv)


def kl_grad_lv(g, lv):
    return 0.5 * g * (math.exp(lv) - 1.0)


# ----------------------------------------------------------------------------- CPU
_lin2_c = cpu_vec_fn(lin2)
_step_c = cpu_vec_fn(step_value)
_reparam_c = cpu_vec_fn(reparam_value)
_reparam_g_c = cpu_vec_fn(reparam_grad_lv)
_kl_term_c = cpu_vec_fn(kl_term)
_kl_g_c = cpu_vec_fn(kl_grad_lv)
_fill_normals = philox.fill_normals_serial


@numba.njit(error_model="numpy", cache=False)
def _lin2_span(x, y, o, a, b):
    for i in range(o.shape[0]):
        o[i] = _lin2_c(a, x[i], b, y[i])


@numba.njit(parallel=True, error_model="numpy", cache=False)
def _lin2_cpu(x, y, o, a, b, inner):
    # x, y, o: (N * inner,); a, b: (N,) float64
    nch = (inner + CHUNK - 1) // CHUNK
    for t in prange(a.shape[0] * nch):
        n = t // nch
        lo = n * inner + (t - n * nch) * CHUNK
        hi = min(lo + CHUNK, (n + 1) * inner)
        _lin2_span(x[lo:hi], y[lo:hi], o[lo:hi], a[n], b[n])


@numba.njit(error_model="numpy", cache=False)
def _step_span(s, m, nz, o, mode, cs, cm, clip, r, to32, px0, ps, pm, pn):
    if mode == 0:
        for i in range(o.shape[0]):
            o[i] = _step_c(s[i], m[i], 0.0, cs, cm, clip, r, to32, px0, ps, pm, pn)
    elif mode == 1:
        for i in range(o.shape[0]):
            o[i] = _step_c(s[i], m[i], nz[i], cs, cm, clip, r, to32, px0, ps, pm, pn)
    else:  # o already holds the noise (written by the caller, rounded to o's dtype)
        for i in range(o.shape[0]):
            o[i] = _step_c(s[i], m[i], o[i], cs, cm, clip, r, to32, px0, ps, pm, pn)


@numba.njit(parallel=True, error_model="numpy", cache=False)
def _step_cpu(s, m, nz, o, mode, word0, k0, k1, cs, cm, clip, r, to32, px0, ps, pm, pn):
    n = o.shape[0]
    for c in prange((n + CHUNK - 1) // CHUNK):
        lo = c * CHUNK
        hi = min(lo + CHUNK, n)
        if mode == 2:
            _fill_normals(o[lo:hi], word0 + np.uint64(lo), k0, k1)
        _step_span(s[lo:hi], m[lo:hi], nz[lo:hi] if mode == 1 else nz, o[lo:hi], mode, cs, cm, clip, r, to32,
                   px0, ps, pm, pn)


@numba.njit(error_model="numpy", cache=False)
def _reparam_span(mu, lv, z, eps, to32):
    for i in range(z.shape[0]):
        z[i] = _reparam_c(mu[i], lv[i], eps[i], to32)


@numba.njit(parallel=True, error_model="numpy", cache=False)
def _reparam_cpu(mu, lv, z, eps, word0, k0, k1, to32):
    n = z.shape[0]
    for c in prange((n + CHUNK - 1) // CHUNK):
        lo = c * CHUNK
        hi = min(lo + CHUNK, n)
        _fill_normals(eps[lo:hi], word0 + np.uint64(lo), k0, k1)
        _reparam_span(mu[lo:hi], lv[lo:hi], z[lo:hi], eps[lo:hi], to32)


@numba.njit(parallel=True, error_model="numpy", cache=False)
def _reparam_bwd_cpu(g, eps, lv, glv, to32):
    n = g.shape[0]
    for c in prange((n + CHUNK - 1) // CHUNK):
        lo = c * CHUNK
        hi = min(lo + CHUNK, n)
        for i in range(lo, hi):
            glv[i] = _reparam_g_c(g[i], eps[i], lv[i], to32)


@numba.njit(parallel=True, error_model="numpy", cache=False)
def _kl_partial_cpu(mu, lv, part, inner):
    # part (N, nch): sequential float64 sums over fixed chunks of each row
    nch = part.shape[1]
    for t in prange(part.shape[0] * nch):
        n = t // nch
        c = t - n * nch
        lo = n * inner + c * KL_CHUNK
        hi = min(lo + KL_CHUNK, (n + 1) * inner)
        acc = 0.0
        for i in range(lo, hi):
            acc += _kl_term_c(mu[i], lv[i])
        part[n, c] = acc


@numba.njit(cache=False)
def _kl_finish(part, out):
    for n in range(part.shape[0]):
        acc = 0.0
        for c in range(part.shape[1]):
            acc += part[n, c]
        out[n] = -0.5 * acc


@numba.njit(parallel=True, error_model="numpy", cache=False)
def _kl_bwd_cpu(g, mu, lv, gmu, glv, inner):
    nch = (inner + CHUNK - 1) // CHUNK
    for t in prange(g.shape[0] * nch):
        n = t // nch
        lo = n * inner + (t - n * nch) * CHUNK
        hi = min(lo + CHUNK, (n + 1) * inner)
        gn = g[n]
        for i in range(lo, hi):
            gmu[i] = gn * mu[i]
            glv[i] = _kl_g_c(gn, lv[i])


# --------------------------------------------------------------------- CPU entry points
# Arrays arrive C-contiguous; they are handled flat. Coefficients arrive prepared (float64,
# 29-bit for float32 inputs, see ops/add_noise.py and samplers.py).
def lin2_cpu(x, y, a, b):
    out = np.empty_like(x)
    if x.size:
        _lin2_cpu(x.reshape(-1), y.reshape(-1), out.reshape(-1), a, b, x.size // a.shape[0])
    return out


def step_cpu(sample, model_output, noise, gen, coefs):
    """gen: None or (word0, k0, k1) to draw the noise in the pass; coefs: dict of floats."""
    out = np.empty_like(sample)
    if sample.size == 0:
        return out
    mode = 1 if noise is not None else (2 if gen is not None else 0)
    nz = noise.reshape(-1) if noise is not None else np.empty(1, sample.dtype)
    word0, k0, k1 = gen if gen is not None else (0, 0, 0)
    c = coefs
    _step_cpu(sample.reshape(-1), model_output.reshape(-1), nz, out.reshape(-1), mode, np.uint64(word0),
              np.uint64(k0), np.uint64(k1), c["cs"], c["cm"], c["clip"], c["r"], sample.dtype == np.float32,
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
        _kl_partial_cpu(mu.reshape(-1), lv.reshape(-1), part, inner)
    _kl_finish(part, out64)
    return out64.astype(mu.dtype)


def kl_bwd_cpu(g, mu, lv):
    gmu, glv = np.empty_like(mu), np.empty_like(mu)
    if mu.size:
        _kl_bwd_cpu(g.astype(np.float64), mu.reshape(-1), lv.reshape(-1), gmu.reshape(-1), glv.reshape(-1),
                    mu.size // mu.shape[0])
    return gmu, glv


# ----------------------------------------------------------------------------- GPU
_gpu_kernels = {}


def _gpu():
    if _gpu_kernels:
        return _gpu_kernels
    from numba import cuda  # noqa: PLC0415
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
    def step_k(s, m, nz, o, mode, word0, k0, k1, cs, cm, clip, r, to32, px0, ps, pm, pn):
        i = cuda.grid(1)
        while i < o.shape[0]:
            if mode == 1:
                v = nz[i]
            elif mode == 2:
                o[i] = normal_g(word0 + np.uint64(i), k0, k1)  # round to o's dtype like randn
                v = o[i]
            else:
                v = 0.0
            o[i] = step_g(s[i], m[i], v, cs, cm, clip, r, to32, px0, ps, pm, pn)
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
    def kl_partial_k(mu, lv, part, inner):
        t = cuda.grid(1)
        nch = part.shape[1]
        while t < part.shape[0] * nch:
            n = t // nch
            c = t - n * nch
            lo = n * inner + c * KL_CHUNK
            hi = min(lo + KL_CHUNK, (n + 1) * inner)
            acc = 0.0
            for i in range(lo, hi):
                acc += kl_term_g(mu[i], lv[i])
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
    def kl_bwd_k(g, mu, lv, gmu, glv, inner):
        i = cuda.grid(1)
        while i < mu.shape[0]:
            n = i // inner
            gmu[i] = g[n] * mu[i]
            glv[i] = kl_grad_g(g[n], lv[i])
            i += cuda.gridsize(1)

    _gpu_kernels.update(lin2=lin2_k, step=step_k, reparam=reparam_k, reparam_bwd=reparam_bwd_k,
                        kl_partial=kl_partial_k, kl_finish=kl_finish_k, kl_bwd=kl_bwd_k)
    return _gpu_kernels


def _xp(a):
    return np if isinstance(a, np.ndarray) else __import__("cupy")


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
    _launch("step", sample.size, sample.reshape(-1), model_output.reshape(-1), nz, out.reshape(-1), mode,
            np.uint64(word0), np.uint64(k0), np.uint64(k1), c["cs"], c["cm"], c["clip"], c["r"],
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
        _launch("kl_partial", part.size, mu.reshape(-1), lv.reshape(-1), part, inner, **launch)
    _launch("kl_finish", n, part, out64, **launch)
    return out64.astype(mu.dtype)


def kl_bwd_gpu(g, mu, lv, **launch):
    xp = _xp(mu)
    gmu, glv = xp.empty_like(mu), xp.empty_like(mu)
    if mu.size:
        _launch("kl_bwd", mu.size, xp.asarray(g, np.float64), mu.reshape(-1), lv.reshape(-1), gmu.reshape(-1),
                glv.reshape(-1), mu.size // mu.shape[0], **launch)
    return gmu, glv
