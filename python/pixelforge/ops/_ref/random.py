"""Reference Philox4x32-10 streams, uniforms and Box–Muller normals in NumPy (the truth the
Numba kernels in ops/_numba/philox.py must match bit for bit).

Stream layout (DESIGN.md): element i of a draw with key (k0, k1) reads word w = offset + i;
block counter = w // 4 (128-bit little-endian: words (w//4) mod 2^32, w//4 >> 32, 0, 0),
lane w % 4 of that block's philox4x32-10 output.
- uniform float32: (word >> 8) * 2^-24 in [0, 1)  (exact in float32)
- uniform float64: word * 2^-32 in [0, 1)         (exact)
- normal: words pair up inside a block, (lanes 0, 1) and (lanes 2, 3): for the pair (a, b),
  R = sqrt(-2 ln(1 - a 2^-32)) and theta = 2 pi b 2^-32; the even lane holds R cos(theta),
  the odd lane R sin(theta). The log, cos and sin are our own polynomials evaluated so that
  every product feeding an addition is exact (see ops/_numba/philox.py); :func:`normal_exact`
  is the same transform with NumPy's libm, to check the polynomials' accuracy.
"""
import math

import numpy as np

U32 = np.uint64(0xFFFFFFFF)
PH_M0, PH_M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
PH_W0, PH_W1 = np.uint64(0x9E3779B9), np.uint64(0xBB67AE85)
RND = 6755399441055744.0  # 1.5 * 2**52


def _bits_round(x, bits):
    m, e = math.frexp(x)
    return math.ldexp(round(m * (1 << bits)), e - bits)


def _grid_for(bound, bits):
    return float(2.0 ** (bits - math.ceil(math.log2(bound * 1.0001))))


def _horner_grids(coefs, xmax, bits):
    out, acc = [], 0.0
    for c in reversed(coefs):
        acc = abs(c) + xmax * acc
        out.append(_grid_for(acc, bits))
    return out[::-1]


def _q_const(v, s):
    return ((v * s + RND) - RND) / s


# shared with the kernels' own exact-product polynomials (ops/_numba/sampling.py)
bits_round, horner_grids, quant_const = _bits_round, _horner_grids, _q_const


_LN2 = 0.6931471805599453094172321214581766
LN2_HI = _bits_round(_LN2, 47)            # k * LN2_HI exact for |k| < 64
LN2_LO = _bits_round(_LN2 - LN2_HI, 47)
SQRT2 = 1.4142135623730951
# ln f = 2 s P(s^2), s = (f-1)/(f+1), f in [sqrt(1/2), sqrt(2)): P(t) = sum_k t^k / (2k+1)
LOG_C = [1.0 / (2 * k + 1) for k in range(7)]
# sin(pi z/4) = z S(z^2), cos(pi z/4) = C(z^2), z in [-1, 1]: Taylor, truncation < 1e-14
SIN_C = [(-1) ** k * (math.pi / 4) ** (2 * k + 1) / math.factorial(2 * k + 1) for k in range(7)]
COS_C = [(-1) ** k * (math.pi / 4) ** (2 * k) / math.factorial(2 * k) for k in range(8)]
# Quantization grids: t on 2^-31 (t <= 0.0295: 26 bits) times 27-bit accumulators; z^2 on 2^-26
# (<= 1: 27 bits) times 26-bit accumulators: every product is exact in float64.
LOG_TS = 2.0 ** 31
LOG_G = _horner_grids(LOG_C, 0.02944, 27)
ANG_ZS = 2.0 ** 26
SIN_G = _horner_grids(SIN_C, 1.0, 26)
COS_G = _horner_grids(COS_C, 1.0, 26)
LOG_TOP = _q_const(LOG_C[6], LOG_G[6])    # innermost coefficients are multiplicands too
SIN_TOP = _q_const(SIN_C[6], SIN_G[6])
COS_TOP = _q_const(COS_C[7], COS_G[7])


def quant(v, s):
    """v rounded to the grid 1/s (s a power of two, |v s| < 2^51) with exact operations."""
    return ((v * s + RND) - RND) * (1.0 / s)


# ------------------------------------------------------------------------------ Philox
def philox4x32(ctr, key):
    """Random123 philox4x32-10. ctr: uint32 (..., 4); key: uint32 (..., 2) -> uint32 (..., 4)."""
    c = [ctr[..., i].astype(np.uint64) for i in range(4)]
    k0 = key[..., 0].astype(np.uint64)
    k1 = key[..., 1].astype(np.uint64)
    for r in range(10):
        if r:
            k0 = (k0 + PH_W0) & U32
            k1 = (k1 + PH_W1) & U32
        p0 = PH_M0 * c[0]  # 32 x 32 -> 64-bit product: (hi, lo) = (p >> 32, p & U32)
        p1 = PH_M1 * c[2]
        c = [(p1 >> np.uint64(32)) ^ c[1] ^ k0, p1 & U32, (p0 >> np.uint64(32)) ^ c[3] ^ k1, p0 & U32]
    return np.stack(c, axis=-1).astype(np.uint32)


def seed_key(seed):
    return int(seed) & 0xFFFFFFFF, (int(seed) >> 32) & 0xFFFFFFFF


def block_words(blocks, k0, k1):
    """uint32 (n, 4): the outputs of blocks (uint64 (n,)) for key (k0, k1)."""
    blocks = np.asarray(blocks, np.uint64)
    ctr = np.zeros(blocks.shape + (4,), np.uint32)
    ctr[..., 0] = (blocks & U32).astype(np.uint32)
    ctr[..., 1] = (blocks >> np.uint64(32)).astype(np.uint32)
    key = np.empty(blocks.shape + (2,), np.uint32)
    key[..., 0], key[..., 1] = k0, k1
    return philox4x32(ctr, key)


def word_indices(n, offset):
    return np.uint64(offset) + np.arange(n, dtype=np.uint64)


def words(n, k0, k1, offset=0):
    """Raw stream words offset .. offset + n - 1 (uint32 (n,))."""
    w = word_indices(n, offset)
    blk = block_words(w >> np.uint64(2), k0, k1)
    return np.take_along_axis(blk, (w & np.uint64(3)).astype(np.int64)[:, None], axis=1)[:, 0]


# --------------------------------------------------------------------------- transforms
def uniform24(w):
    return (np.asarray(w, np.uint64) >> np.uint64(8)).astype(np.float64) * 2.0 ** -24


def uniform32(w):
    return np.asarray(w, np.uint64).astype(np.float64) * 2.0 ** -32


def neg_log_u(w):
    """-ln(1 - w 2^-32) for 32-bit words, our polynomial (see the module docstring)."""
    m = (np.uint64(1 << 32) - np.asarray(w, np.uint64)).astype(np.float64)  # [1, 2^32]
    f, e = m.copy(), np.zeros_like(m)
    for bits in (32, 16, 8, 4, 2, 1):
        c = f >= 2.0 ** bits
        f = np.where(c, f * 2.0 ** -bits, f)
        e = np.where(c, e + bits, e)
    c = f > SQRT2
    f = np.where(c, f * 0.5, f)
    e = np.where(c, e + 1, e)
    s = (f - 1.0) / (f + 1.0)
    t = quant(s * s, LOG_TS)
    y = LOG_C[5] + t * LOG_TOP
    for k in (4, 3, 2, 1, 0):
        y = LOG_C[k] + t * quant(y, LOG_G[k + 1])
    lnf = (s + s) * y
    k = 32.0 - e
    far = k * LN2_HI + (k * LN2_LO - quant(lnf, 2.0 ** 52))
    return np.where(k == 0.0, -lnf, far)


def cos_sin_turn(w):
    """(cos, sin) of 2 pi w 2^-32 for 32-bit words, our polynomials."""
    wi = np.asarray(w, np.uint64).astype(np.int64)
    j = (wi + (1 << 29)) >> 30            # nearest quarter turn
    z = (wi - (j << 30)).astype(np.float64) * 2.0 ** -29   # angle = pi/4 z, z in [-1, 1)
    z2 = quant(z * z, ANG_ZS)
    y = SIN_C[5] + z2 * SIN_TOP
    for k in (4, 3, 2, 1, 0):
        y = SIN_C[k] + z2 * quant(y, SIN_G[k + 1])
    sn = z * y
    y = COS_C[6] + z2 * COS_TOP
    for k in (5, 4, 3, 2, 1, 0):
        y = COS_C[k] + z2 * quant(y, COS_G[k + 1])
    cs = y
    q = j & 3
    odd = (q & 1) == 1
    c, s = np.where(odd, sn, cs), np.where(odd, cs, sn)
    c = np.where((q == 1) | (q == 2), -c, c)
    s = np.where(q >= 2, -s, s)
    return c, s


def _pairs(n, k0, k1, offset):
    w = word_indices(n, offset)
    blk = block_words(w >> np.uint64(2), k0, k1)
    lane = (w & np.uint64(3)).astype(np.int64)
    a = np.take_along_axis(blk, (lane & 2)[:, None], axis=1)[:, 0]
    b = np.take_along_axis(blk, ((lane & 2) + 1)[:, None], axis=1)[:, 0]
    return a, b, (lane & 1) == 1


def normal(n, k0, k1, offset=0):
    """float64 (n,) stream normals, our transform (bitwise what the kernels give)."""
    a, b, odd = _pairs(n, k0, k1, offset)
    rad = np.sqrt(2.0 * neg_log_u(a))
    c, s = cos_sin_turn(b)
    return rad * np.where(odd, s, c)


def normal_exact(n, k0, k1, offset=0):
    """The same Box–Muller transform through libm log/cos/sin (accuracy check only)."""
    a, b, odd = _pairs(n, k0, k1, offset)
    rad = np.sqrt(-2.0 * np.log1p(-uniform32(a)))
    theta = 2 * np.pi * uniform32(b)
    return rad * np.where(odd, np.sin(theta), np.cos(theta))


def draw(shape, seed, offset, dtype, kind):
    """What pf.random.rand / randn return on the CPU (kind "rand" or "randn")."""
    n = int(np.prod(shape, dtype=np.int64))
    k0, k1 = seed_key(seed)
    if kind == "randn":
        v = normal(n, k0, k1, offset)
    elif np.dtype(dtype) == np.float32:
        v = uniform24(words(n, k0, k1, offset))
    else:
        v = uniform32(words(n, k0, k1, offset))
    return v.astype(dtype).reshape(shape)
