"""Philox4x32-10 streams, uniforms and Box–Muller normals as Numba kernels.

Variants: CPU (``@njit(parallel=True)``: prange over fixed chunks of 8192 Philox blocks, each
chunk a serial span function that LLVM vectorizes with AVX-512/AVX2; normals in two passes per
1024-block sub-chunk, Philox words into an L1 scratch, then Box–Muller) and GPU (numba.cuda, one
thread per Philox block, grid-stride), both compiled from the plain-Python scalar helpers
below (also run as-is by the CUDA simulator). Two helpers have CPU bodies that compute the
same values from the bits of a float64 (``_jit.set_variant``; bitcasts vectorize, the
simulator cannot run them): :func:`split_sqrt2` and sampling.py's ``pow2_f32``. Kernels: raw ``philox4x32`` on given
counters/keys (ctr (n, 4), key (n, 2) -> out (n, 4)), ``fill`` writing rand / randn for the
stream of one key from a word offset (out (n,), element i <- word offset + i; partial blocks at
the ends go through the same kernel on a 4-element scratch), and ``fill_normals_serial``, the
per-chunk building block the fused ops (ops/_numba/sampling.py) draw their noise with.
Word indices stay below 2**64 (block counter words 2 and 3 are zero; pf.random checks it).

Bitwise agreement between the CPU, the GPU and the NumPy reference (ops/_ref/random.py):
- Philox and the uniforms are integer math plus exact scalings: identical by construction.
- Normals need log, cos, sin. numba.cuda contracts ``a*b + c`` into an FMA even without
  fastmath (NVVM's default ``-fma=1``) while the CPU and NumPy round the product first. So
  the transform is built so that every product that feeds an addition is *exact* in float64
  (both factors are quantized to <= 53 significant bits together); then fused or not, the
  sum is rounded once from the same exact value. Quantization (:func:`quant`, and
  :func:`quant_sum` for accumulators) uses the round-to-integer trick
  ``(v + 1.5*2^52) - 1.5*2^52``, which strict IEEE compilers never fold. For the same reason
  the CPU transform loops let LLVM contract too (``fastmath={"contract"}`` and nothing else):
  the fused multiply-adds cut a third of the floating-point work and change no bit (the
  tests compare these kernels with the NumPy reference, which never fuses).
  Division and sqrt are correctly rounded on all three (numba.cuda without fastmath emits
  div.rn / sqrt.rn). The cost: the polynomial evaluation carries ~1e-9 relative error, so a
  float32 normal is within 1 ulp of the exactly rounded Box–Muller value (float64 normals
  carry the same ~1e-9 relative error; their inputs are 32-bit uniforms anyway).
"""
import math

import numba
import numpy as np
from llvmlite import ir as llvm_ir
from numba import cuda, prange  # cuda as a module global: the simulator swaps it there
from numba.core import types as nbtypes
from numba.core.extending import intrinsic

from ... import _backend
from .._ref import random as _r
from . import _jit
from ._jit import gpu_fn

# --------------------------------------------------------------------------- constants
U32 = np.uint64(0xFFFFFFFF)
SH32 = np.uint64(32)
SH8 = np.uint64(8)
TWO32 = np.uint64(1 << 32)
PH_M0 = np.uint64(0xD2511F53)
PH_M1 = np.uint64(0xCD9E8D57)
PH_W0 = np.uint64(0x9E3779B9)
PH_W1 = np.uint64(0xBB67AE85)

# The transform's constants are defined once, next to the NumPy reference.
RND = _r.RND
LN2_HI, LN2_LO, SQRT2 = _r.LN2_HI, _r.LN2_LO, _r.SQRT2
LOG_TS, ANG_ZS = _r.LOG_TS, _r.ANG_ZS
# Horner coefficients and accumulator grids as plain globals (compile-time constants)
LC6 = _r.LOG_TOP
LC5, LC4, LC3, LC2, LC1, LC0 = _r.LOG_C[5], _r.LOG_C[4], _r.LOG_C[3], _r.LOG_C[2], _r.LOG_C[1], _r.LOG_C[0]
LG5, LG4, LG3, LG2, LG1 = _r.LOG_G[5], _r.LOG_G[4], _r.LOG_G[3], _r.LOG_G[2], _r.LOG_G[1]
SC6 = _r.SIN_TOP
SC5, SC4, SC3, SC2, SC1, SC0 = _r.SIN_C[5], _r.SIN_C[4], _r.SIN_C[3], _r.SIN_C[2], _r.SIN_C[1], _r.SIN_C[0]
SG5, SG4, SG3, SG2, SG1 = _r.SIN_G[5], _r.SIN_G[4], _r.SIN_G[3], _r.SIN_G[2], _r.SIN_G[1]
CC7 = _r.COS_TOP
CC6, CC5, CC4, CC3, CC2, CC1, CC0 = (_r.COS_C[6], _r.COS_C[5], _r.COS_C[4], _r.COS_C[3], _r.COS_C[2],
                                     _r.COS_C[1], _r.COS_C[0])
CG6, CG5, CG4, CG3, CG2, CG1 = _r.COS_G[6], _r.COS_G[5], _r.COS_G[4], _r.COS_G[3], _r.COS_G[2], _r.COS_G[1]


# ------------------------------------------------------------------ scalar helpers (shared)
def philox_round(c0, c1, c2, c3, k0, k1):
    # mulhilo(M, x) on 32-bit words held in uint64: the product fits in 64 bits
    p0 = PH_M0 * c0
    p1 = PH_M1 * c2
    return (p1 >> SH32) ^ c1 ^ k0, p1 & U32, (p0 >> SH32) ^ c3 ^ k1, p0 & U32


def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Random123's philox4x32 with 10 rounds; every argument a uint64 holding a 32-bit word."""
    # unrolled by hand so the CPU loop vectorizer sees straight-line code
    c0, c1, c2, c3 = philox_round(c0, c1, c2, c3, k0, k1)
    k0 = (k0 + PH_W0) & U32
    k1 = (k1 + PH_W1) & U32
    c0, c1, c2, c3 = philox_round(c0, c1, c2, c3, k0, k1)
    k0 = (k0 + PH_W0) & U32
    k1 = (k1 + PH_W1) & U32
    c0, c1, c2, c3 = philox_round(c0, c1, c2, c3, k0, k1)
    k0 = (k0 + PH_W0) & U32
    k1 = (k1 + PH_W1) & U32
    c0, c1, c2, c3 = philox_round(c0, c1, c2, c3, k0, k1)
    k0 = (k0 + PH_W0) & U32
    k1 = (k1 + PH_W1) & U32
    c0, c1, c2, c3 = philox_round(c0, c1, c2, c3, k0, k1)
    k0 = (k0 + PH_W0) & U32
    k1 = (k1 + PH_W1) & U32
    c0, c1, c2, c3 = philox_round(c0, c1, c2, c3, k0, k1)
    k0 = (k0 + PH_W0) & U32
    k1 = (k1 + PH_W1) & U32
    c0, c1, c2, c3 = philox_round(c0, c1, c2, c3, k0, k1)
    k0 = (k0 + PH_W0) & U32
    k1 = (k1 + PH_W1) & U32
    c0, c1, c2, c3 = philox_round(c0, c1, c2, c3, k0, k1)
    k0 = (k0 + PH_W0) & U32
    k1 = (k1 + PH_W1) & U32
    c0, c1, c2, c3 = philox_round(c0, c1, c2, c3, k0, k1)
    k0 = (k0 + PH_W0) & U32
    k1 = (k1 + PH_W1) & U32
    return philox_round(c0, c1, c2, c3, k0, k1)


def block_words(block, k0, k1):
    """The 4 words of Philox block ``block`` (uint64 block index < 2**64; upper counter words 0)."""
    zero = block ^ block
    # the keys masked to 32 bits (they are): lets LLVM multiply with 32x32->64 vpmuludq
    return philox4x32_10(block & U32, block >> SH32, zero, zero, k0 & U32, k1 & U32)


def uniform24(w):
    """Word -> float32-exact uniform in [0, 1): top 24 bits."""
    return float(w >> SH8) * 5.9604644775390625e-08  # 2**-24


def uniform32(w):
    """Word -> uniform in [0, 1) with 32 bits (float64 output)."""
    return float(w) * 2.3283064365386963e-10  # 2**-32


def quant(v, s):
    """v rounded to the grid 1/s (s a power of two, |v*s| < 2**51); exact scalings only.
    For a v that is a bare product: ``v * s`` is exact, so a fused ``fma(x*y, s, RND)`` rounds
    like the separate operations (``quant_sum``'s ``x*y + c`` would not)."""
    return ((v * s + RND) - RND) * (1.0 / s)


def quant_sum(v, s):
    """The same rounding as :func:`quant` in two additions, for a v that is the result of an
    addition (a Horner accumulator): v + 1.5*2^52/s lands in the binade whose spacing is 1/s,
    so it rounds v to that grid (ties to even, as quant), and subtracting the constant back is
    exact. Only for sums: a bare product x*y here could be fused into fma(x, y, c) by a
    contracting compiler and rounded once instead of twice."""
    c = RND / s
    return (v + c) - c


def split_sqrt2(m):
    """(f, e) with m = 2^e f exactly, f in (sqrt(1/2), sqrt(2)], e integer-valued, for m in
    [1, 2**32]. A binary search for the exponent written as selects (vectorizable); the CPU
    kernels use :func:`_split_sqrt2_cpu` (the same values from the bits of m)."""
    big = m >= 4294967296.0
    f = m * 2.3283064365386963e-10 if big else m
    e = 32.0 if big else 0.0
    c = f >= 65536.0
    f = f * 1.52587890625e-05 if c else f
    e = e + 16.0 if c else e
    c = f >= 256.0
    f = f * 0.00390625 if c else f
    e = e + 8.0 if c else e
    c = f >= 16.0
    f = f * 0.0625 if c else f
    e = e + 4.0 if c else e
    c = f >= 4.0
    f = f * 0.25 if c else f
    e = e + 2.0 if c else e
    c = f >= 2.0
    f = f * 0.5 if c else f
    e = e + 1.0 if c else e
    c = f > SQRT2
    f = f * 0.5 if c else f
    e = e + 1.0 if c else e
    return f, e


def neg_log_u(w):
    """-ln(1 - w / 2**32) for a 32-bit word w, i.e. -ln(u) with u in (0, 1]."""
    m = float(TWO32 - w)  # [1, 2**32], exact
    f, e = split_sqrt2(m)
    # m = 2^e f, f in (sqrt(1/2), sqrt(2)]; -ln(u) = (32 - e) ln2 - ln f
    s = (f - 1.0) / (f + 1.0)
    t = quant(s * s, LOG_TS)
    y = LC5 + t * LC6
    y = LC4 + t * quant_sum(y, LG5)
    y = LC3 + t * quant_sum(y, LG4)
    y = LC2 + t * quant_sum(y, LG3)
    y = LC1 + t * quant_sum(y, LG2)
    p = LC0 + t * quant_sum(y, LG1)
    lnf = (s + s) * p
    k = 32.0 - e
    far = k * LN2_HI + (k * LN2_LO - quant(lnf, 4503599627370496.0))  # 2**52 grid
    # k == 0: no ln2 term, and -lnf keeps full relative precision for u near 1
    return -lnf if k == 0.0 else far


def cos_sin_turn(w):
    """(cos, sin) of 2*pi*w/2**32 for a 32-bit word w."""
    wi = np.int64(w)
    j = (wi + 536870912) >> 30          # nearest quarter turn, 0..4
    r = wi - (j << 30)                  # [-2**29, 2**29)
    z = float(r) * 1.862645149230957e-09  # r / 2**29 in [-1, 1): angle pi/4 * z
    z2 = quant(z * z, ANG_ZS)
    y = SC5 + z2 * SC6
    y = SC4 + z2 * quant_sum(y, SG5)
    y = SC3 + z2 * quant_sum(y, SG4)
    y = SC2 + z2 * quant_sum(y, SG3)
    y = SC1 + z2 * quant_sum(y, SG2)
    sn = z * (SC0 + z2 * quant_sum(y, SG1))
    y = CC6 + z2 * CC7
    y = CC5 + z2 * quant_sum(y, CG6)
    y = CC4 + z2 * quant_sum(y, CG5)
    y = CC3 + z2 * quant_sum(y, CG4)
    y = CC2 + z2 * quant_sum(y, CG3)
    y = CC1 + z2 * quant_sum(y, CG2)
    cs = CC0 + z2 * quant_sum(y, CG1)
    q = j & 3
    odd = (q & 1) == 1
    c = sn if odd else cs
    s = cs if odd else sn
    c = -c if ((q + 1) & 2) != 0 else c   # quadrants 1, 2
    s = -s if q >= 2 else s               # quadrants 2, 3
    return c, s


def box_muller(wa, wb):
    """Two normals from a word pair: radius from wa, angle from wb."""
    rad = math.sqrt(2.0 * neg_log_u(wa))
    c, s = cos_sin_turn(wb)
    return rad * c, rad * s


def block_values(block, k0, k1, kind):
    """The 4 float64 values of one block: kind 0 uniform24, 1 uniform32, 2 normal."""
    x0, x1, x2, x3 = block_words(block, k0, k1)
    if kind == 2:
        n0, n1 = box_muller(x0, x1)
        n2, n3 = box_muller(x2, x3)
        return n0, n1, n2, n3
    if kind == 0:
        return uniform24(x0), uniform24(x1), uniform24(x2), uniform24(x3)
    return uniform32(x0), uniform32(x1), uniform32(x2), uniform32(x3)


def word_value(word, k0, k1, kind):
    """The value of the stream at one word index (uint64): what element i of a draw holds."""
    v0, v1, v2, v3 = block_values(word >> np.uint64(2), k0, k1, kind)
    lane = word & np.uint64(3)
    if lane == np.uint64(0):
        return v0
    if lane == np.uint64(1):
        return v1
    if lane == np.uint64(2):
        return v2
    return v3


def normal_at(word, k0, k1):
    """The stream normal at one word index: only the Box–Muller pair it belongs to is evaluated
    (what the GPU's one-thread-per-element kernels call); same operations as block_values."""
    x0, x1, x2, x3 = block_words(word >> np.uint64(2), k0, k1)
    lane = word & np.uint64(3)
    hi = lane >= np.uint64(2)
    wa = x2 if hi else x0
    wb = x3 if hi else x1
    rad = math.sqrt(2.0 * neg_log_u(wa))
    c, s = cos_sin_turn(wb)
    return rad * s if (lane & np.uint64(1)) == np.uint64(1) else rad * c


# ----------------------------------------------------------------------------- CPU
def cpu_vec_fn(f):
    """Like :func:`cpu_fn` (inlined njit, helpers rebound) but with NumPy's error model: no
    zero-division checks, whose exception branches would stop LLVM vectorizing the loops."""
    return _jit._rebound(f, "cpu-vec", lambda g: numba.njit(inline="always", error_model="numpy")(g))


# CPU bodies of shared helpers: the same values with fewer operations, from the bits of a
# float64 (LLVM bitcasts, which vectorize; the CUDA simulator could not run them).
@intrinsic
def f64_bits(typingctx, x):
    """The IEEE bits of a float64 as an int64 (CPU kernels only)."""
    if isinstance(x, nbtypes.Float) and x.bitwidth == 64:
        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], llvm_ir.IntType(64))
        return nbtypes.int64(x), codegen
    return None


@intrinsic
def bits_f64(typingctx, b):
    """The float64 whose IEEE bits are the int64 b (CPU kernels only)."""
    if isinstance(b, nbtypes.Integer) and b.bitwidth == 64:
        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], llvm_ir.DoubleType())
        return nbtypes.float64(b), codegen
    return None


_MANT = np.int64(0x000FFFFFFFFFFFFF)
_ONE_BITS = np.int64(0x3FF0000000000000)


def _split_sqrt2_cpu(m):
    """:func:`split_sqrt2` from the bits of m (a normal float64 >= 1): exponent field and
    mantissa, then the same sqrt(2) fold; every step exact, so the values are identical."""
    b = f64_bits(m)
    e = float((b >> 52) - 1023)
    f = bits_f64((b & _MANT) | _ONE_BITS)
    c = f > SQRT2
    f = f * 0.5 if c else f
    e = e + 1.0 if c else e
    return f, e


_jit.set_variant(split_sqrt2, "cpu-vec", numba.njit(inline="always", error_model="numpy")(_split_sqrt2_cpu))

_philox_c = cpu_vec_fn(philox4x32_10)
_block_words_c = cpu_vec_fn(block_words)
_uniform24_c = cpu_vec_fn(uniform24)
_uniform32_c = cpu_vec_fn(uniform32)
_box_muller_c = cpu_vec_fn(box_muller)


@_jit.njit(parallel=True, error_model="numpy")
def _philox_cpu(ctr, key, out):
    # ctr (n, 4), key (n, 2), out (n, 4): uint32
    for i in prange(ctr.shape[0]):
        a, b, c, d = _philox_c(np.uint64(ctr[i, 0]), np.uint64(ctr[i, 1]), np.uint64(ctr[i, 2]),
                               np.uint64(ctr[i, 3]), np.uint64(key[i, 0]), np.uint64(key[i, 1]))
        out[i, 0] = a
        out[i, 1] = b
        out[i, 2] = c
        out[i, 3] = d


# Full Philox blocks only: out[base0 + 4*j + lane] <- block b0 + j, lane; the partial blocks at
# the ends of a draw go through the same kernels on a 4-element scratch (see fill_cpu).
# The serial span functions are what LLVM vectorizes (a parfor body is not); prange hands out
# fixed chunks of them. Every value depends only on its word index, so any split gives the
# same bits.
_CHUNK = 8192  # blocks per parallel task


@_jit.njit(error_model="numpy")
def _uniform_span(out, base0, j0, j1, k0, k1, b0, bits24):
    # o[4*j] with j from range(): provably non-negative indices, so no wraparound selects
    # and the loop vectorizes
    o = out[base0 + 4 * j0:base0 + 4 * j1]
    bj = b0 + np.uint64(j0)
    if bits24:
        for j in range(j1 - j0):
            x0, x1, x2, x3 = _block_words_c(bj + np.uint64(j), k0, k1)
            o[4 * j] = _uniform24_c(x0)
            o[4 * j + 1] = _uniform24_c(x1)
            o[4 * j + 2] = _uniform24_c(x2)
            o[4 * j + 3] = _uniform24_c(x3)
    else:
        for j in range(j1 - j0):
            x0, x1, x2, x3 = _block_words_c(bj + np.uint64(j), k0, k1)
            o[4 * j] = _uniform32_c(x0)
            o[4 * j + 1] = _uniform32_c(x1)
            o[4 * j + 2] = _uniform32_c(x2)
            o[4 * j + 3] = _uniform32_c(x3)


_SUB = 1024  # blocks per words -> normals sub-pass (16 KiB of words: they stay in L1)


@_jit.njit(error_model="numpy")
def _words_span(w0, w1, w2, w3, b, k0, k1):
    # the words of blocks b, b+1, ..., one array per lane (contiguous vector stores)
    for j in range(w0.shape[0]):
        x0, x1, x2, x3 = _block_words_c(b + np.uint64(j), k0, k1)
        w0[j] = x0
        w1[j] = x1
        w2[j] = x2
        w3[j] = x3


# Every product feeding an addition in the transform is exact (module docstring), so letting
# LLVM fuse multiply-adds, as the GPU does, cannot change a bit; it saves a third of the FP work.
@_jit.njit(error_model="numpy", fastmath={"contract"})
def _bm_span(o, w0, w1, w2, w3):
    for j in range(w0.shape[0]):
        n0, n1 = _box_muller_c(np.uint64(w0[j]), np.uint64(w1[j]))
        n2, n3 = _box_muller_c(np.uint64(w2[j]), np.uint64(w3[j]))
        o[4 * j] = n0
        o[4 * j + 1] = n1
        o[4 * j + 2] = n2
        o[4 * j + 3] = n3


@_jit.njit(error_model="numpy")
def _normal_span(out, base0, j0, j1, k0, k1, b0):
    # two passes per sub-chunk (Philox words into an L1 scratch, then Box-Muller): two small
    # loops keep their values in registers where one fused loop spilled (~10% faster)
    o = out[base0 + 4 * j0:base0 + 4 * j1]
    n = j1 - j0
    m = min(n, _SUB)
    w0 = np.empty(m, np.uint32)
    w1 = np.empty(m, np.uint32)
    w2 = np.empty(m, np.uint32)
    w3 = np.empty(m, np.uint32)
    for s in range(0, n, _SUB):
        e = min(s + _SUB, n)
        _words_span(w0[:e - s], w1[:e - s], w2[:e - s], w3[:e - s], b0 + np.uint64(j0 + s), k0, k1)
        _bm_span(o[4 * s:4 * e], w0[:e - s], w1[:e - s], w2[:e - s], w3[:e - s])


@_jit.njit(parallel=True, error_model="numpy")
def _uniform_cpu(out, base0, nfull, k0, k1, b0, bits24):
    for c in prange((nfull + _CHUNK - 1) // _CHUNK):
        _uniform_span(out, base0, c * _CHUNK, min(nfull, (c + 1) * _CHUNK), k0, k1, b0, bits24)


@_jit.njit(parallel=True, error_model="numpy")
def _normal_cpu(out, base0, nfull, k0, k1, b0):
    for c in prange((nfull + _CHUNK - 1) // _CHUNK):
        _normal_span(out, base0, c * _CHUNK, min(nfull, (c + 1) * _CHUNK), k0, k1, b0)


@_jit.njit(error_model="numpy")
def fill_normals_serial(o, word0, k0, k1):
    """o (n,) <- stream normals from word ``word0`` (uint64), serially: the building block the
    fused ops call on each parallel chunk (so noise never takes a trip through memory)."""
    n = o.shape[0]
    first = word0 >> np.uint64(2)
    lead = np.int64(word0 & np.uint64(3))
    head = (4 - lead) & 3
    if head > n:
        head = n
    if head > 0:
        tmp = np.empty(4, o.dtype)
        _normal_span(tmp, 0, 0, 1, k0, k1, first)
        for i in range(head):
            o[i] = tmp[lead + i]
        first += np.uint64(1)
    nfull = (n - head) // 4
    _normal_span(o, head, 0, nfull, k0, k1, first)
    tail0 = head + 4 * nfull
    if tail0 < n:
        tmp = np.empty(4, o.dtype)
        _normal_span(tmp, 0, 0, 1, k0, k1, first + np.uint64(nfull))
        for i in range(tail0, n):
            o[i] = tmp[i - tail0]


def philox_cpu(ctr, key):
    out = np.empty_like(ctr)
    if ctr.shape[0]:
        _philox_cpu(ctr, key, out)
    return out


def _blocks(out, base0, nfull, k0, k1, b0, kind):
    if kind == 2:
        _normal_cpu(out, base0, nfull, k0, k1, b0)
    else:
        _uniform_cpu(out, base0, nfull, k0, k1, b0, kind == 0)


def fill_cpu(out, k0, k1, offset, kind):
    """Fill the 1-D contiguous ``out`` (n,) with the stream of key (k0, k1) from word ``offset``:
    kind 0 uniform24, 1 uniform32, 2 normal."""
    n = out.size
    if n == 0:
        return out
    k0, k1 = np.uint64(k0), np.uint64(k1)
    first, lead = offset >> 2, offset & 3
    head = min((4 - lead) & 3, n)            # elements before the first full block
    if head:
        tmp = np.empty(4, out.dtype)
        _blocks(tmp, 0, 1, k0, k1, np.uint64(first), kind)
        out[:head] = tmp[lead:lead + head]
        first += 1
    nfull = (n - head) // 4
    if nfull:
        _blocks(out, head, nfull, k0, k1, np.uint64(first), kind)
    tail = n - head - 4 * nfull
    if tail:
        tmp = np.empty(4, out.dtype)
        _blocks(tmp, 0, 1, k0, k1, np.uint64(first + nfull), kind)
        out[n - tail:] = tmp[:tail]
    return out


# ----------------------------------------------------------------------------- GPU
_gpu_kernels = {}


def _gpu():
    if not _gpu_kernels:
        philox = gpu_fn(philox4x32_10)
        word_value_g = gpu_fn(word_value)
        block_values_g = gpu_fn(block_values)

        @cuda.jit
        def philox_k(ctr, key, out):
            i = cuda.grid(1)
            stride = cuda.gridsize(1)
            while i < ctr.shape[0]:
                a, b, c, d = philox(np.uint64(ctr[i, 0]), np.uint64(ctr[i, 1]), np.uint64(ctr[i, 2]),
                                    np.uint64(ctr[i, 3]), np.uint64(key[i, 0]), np.uint64(key[i, 1]))
                out[i, 0] = a
                out[i, 1] = b
                out[i, 2] = c
                out[i, 3] = d
                i += stride

        @cuda.jit
        def fill_k(out, k0, k1, first_block, lead, kind):
            # one thread per Philox block touched by out; same split as the CPU kernel
            n = out.shape[0]
            nblocks = (lead + n + 3) // 4
            j = cuda.grid(1)
            stride = cuda.gridsize(1)
            while j < nblocks:
                base = 4 * j - lead          # element index of lane 0
                if base >= 0 and base + 4 <= n:
                    v0, v1, v2, v3 = block_values_g(first_block + np.uint64(j), k0, k1, kind)
                    out[base] = v0
                    out[base + 1] = v1
                    out[base + 2] = v2
                    out[base + 3] = v3
                else:
                    for lane in range(4):
                        i = base + lane
                        if i >= 0 and i < n:
                            out[i] = word_value_g((first_block + np.uint64(j)) * np.uint64(4)
                                                  + np.uint64(lane), k0, k1, kind)
                j += stride

        _gpu_kernels["philox"], _gpu_kernels["fill"] = philox_k, fill_k
    return _gpu_kernels


def launch_config(n, threads=128, max_blocks=4096):
    return max(1, min((n + threads - 1) // threads, max_blocks)), threads


def stream_for(arr):
    if _backend.is_cupy_array(arr):
        return cuda.external_stream(_backend.cupy().cuda.get_current_stream().ptr)
    return 0


_xp = _backend.xp_of


def philox_gpu(ctr, key):
    out = _xp(ctr).empty_like(ctr)
    if ctr.shape[0]:
        blocks, threads = launch_config(ctr.shape[0])
        _gpu()["philox"][blocks, threads, stream_for(ctr)](ctr, key, out)
    return out


def fill_gpu(out, k0, k1, offset, kind, *, threads=128, max_blocks=4096):
    """GPU twin of :func:`fill_cpu`; ``threads``/``max_blocks`` let tests vary the launch."""
    if out.size:
        fb, lead = np.uint64(offset >> 2), offset & 3
        nblocks = (lead + out.size + 3) // 4
        blocks, threads = launch_config(nblocks, threads, max_blocks)
        _gpu()["fill"][blocks, threads, stream_for(out)](out, np.uint64(k0), np.uint64(k1), fb, lead, kind)
    return out
