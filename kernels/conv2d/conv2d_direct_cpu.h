// kernels/conv2d/conv2d_direct_cpu.h: the AVX-512 direct paths (stride 1, no im2col): forward
// over a zero-padded copy of the input rows, and the weight gradient as outer products.
// A part of conv2d_cpu.cpp's translation unit (compiled once per ISA into PF_ISA_NS, after
// the includes and helpers there): include it only from there, in that file's order.
#pragma once

namespace PF_ISA_NS {
namespace {
// ---------------------------------------------------------------- forward, direct
// AVX-512 float, stride 1, no im2col. A job copies the input rows its tile of output rows
// needs into a buffer xp (Cg, rows, Wp) where tap (c, r, s) of output pixel (p, q) sits at
// xp[c][p - p0 + r·dh][q + s·dw - sh]: the GEMM's B row for that tap over 16 consecutive
// pixels is one unaligned load at a per-tap offset off[kk] from the pixels' base. Two layouts:
//   wide    Q % 16 == 0: rows zero-padded left and right (Wp = Q + dw·(S−1), sh = 0); the 16
//           pixels lie in one output row.
//   narrow  Q % 16 != 0 with W == Q ("same" width: 28×28, 14×14, 7×7, and the 8×8 and 4×8
//           bottoms of UNets and GANs): rows unpadded (Wp = Q, sh = pad_left), so 16
//           consecutive pixels run across rows, contiguous in xp as in the output; the taps
//           that fall left or right of their row are lanes masked off (the load reads zeros
//           there). A lane's column depends on the vector's first pixel modulo Q (its phase),
//           so the masks are a table per phase and tap. Zero rows above and below pad
//           vertically; zeroed guards before and after xp keep every load inside the buffer
//           (lanes past a tile's last pixel are computed and never stored).
// The B data a k-block touches (~28 channels × a few rows) stays in L1 instead of a
// 256-row im2col panel in L2. Also runs stride-1 backward-data (a forward over dy with the
// flipped, transposed weights; see backward_data).
constexpr i64 kDKC = 384;  // the direct path's reduction block (swept 64..1152 on C)
#if defined(__AVX512F__)
// (≥ 16 taps: a 1-channel 3×3 layer on 28×28 took 0.39 ms here, 0.28 ms through im2col)
inline bool direct_narrow(const pf::Conv2dParams& p) {
  return p.Q % 16 != 0 && p.W == p.Q && (p.C / p.groups) * p.R * p.S >= 16;
}

inline bool direct_ok(const pf::Conv2dParams& p) {
  if (p.stride_h != 1 || p.stride_w != 1 || p.P * p.Q < 32) return false;
  if (p.Q % 16 != 0 && !direct_narrow(p)) return false;
  const i64 rows = imax(1, 256 / p.Q) + p.dil_h * (p.R - 1), wp = p.Q + p.dil_w * (p.S - 1);
  return (p.C / p.groups) * rows * wp < (i64(1) << 30);  // int tap offsets
}

// C[m×n] (=|+=) A·B over kc; B step kk is the 32 values b0[off[kk]..+16), b1[off[kk]..+16)
// (MASKED: lanes outside m0[kk], m1[kk] read as zero).
template <bool MASKED>
inline void ukernel_taps(i64 kc, const float* __restrict a, const float* b0, const float* b1,
                         const int* __restrict off, const __mmask16* m0, const __mmask16* m1, float* __restrict c,
                         i64 ldc, int m, int n, const float* row_init, bool accumulate) {
  static_assert(V<float>::MR == 8 && V<float>::NV == 2, "AVX-512 float tile is 8×32");
  __m512 acc[8][2];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
#pragma GCC unroll 4
  for (i64 kk = 0; kk < kc; ++kk) {
    const i64 o = off[kk];
    __m512 u, v;
    if constexpr (MASKED) {
      u = _mm512_maskz_loadu_ps(m0[kk], b0 + o);
      v = _mm512_maskz_loadu_ps(m1[kk], b1 + o);
    } else {
      u = _mm512_loadu_ps(b0 + o);
      v = _mm512_loadu_ps(b1 + o);
    }
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      acc[i][0] = _mm512_fmadd_ps(ai, u, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, v, acc[i][1]);
    }
    a += 8;
  }
  store_acc<float>(acc, c, ldc, m, n, row_init, accumulate);
}

// lanes i·s, i = 0..15: gather/scatter offsets of 16 rows (channels) s floats apart
inline __m512i lane_multiples(i64 s) {
  return _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                            _mm512_set1_epi32(int(s)));
}

// Rows [h0, h0 + hr) of channel xc (H × W) zero-padded into d (hr × Wp): padded row i is
// input row h0 + i - pad_top, padded col j input col j - pad_left (0 outside the input).
inline void pad_rows(float* __restrict d, const float* __restrict xc, const pf::Conv2dParams& p, i64 h0, i64 hr,
                     i64 Wp) {
  const i64 jlo = imin(p.pad_left, Wp), jhi = imax(imin(p.pad_left + p.W, Wp), jlo);
  // Masked loads and stores per 16 columns (rows are short: libc memcpy/memset calls, which
  // the compiler made of plain loops, cost ~4% of a 16×16 weight gradient).
  for (i64 i = 0; i < hr; ++i, d += Wp) {
    const i64 ih = h0 + i - p.pad_top;
    const bool inside = ih >= 0 && ih < p.H;
    const float* xr = xc + (inside ? ih : 0) * p.W - p.pad_left;  // lanes outside [jlo, jhi) are never read
    for (i64 j = 0; j < Wp; j += 16) {
      const i64 a = imin(imax(jlo - j, 0), 16), b = inside ? imin(imax(jhi - j, 0), 16) : 0;
      const __mmask16 mv = __mmask16(((1u << b) - 1u) & ~((1u << a) - 1u));
      const __mmask16 ms = __mmask16((1u << imin(Wp - j, 16)) - 1u);
      _mm512_mask_storeu_ps(d + j, ms, _mm512_maskz_loadu_ps(mv, xr + j));
    }
  }
}

// off[kk] for tap kk = (c, r, s) of a group: its offset in a padded buffer of channel stride
// CS and row stride Wp (stride 1: the tap of output pixel (p, q) is at p·Wp + q + off[kk]);
// sh: the columns the layout leaves out on the left (narrow: pad_left, else 0).
inline void tap_offsets(const pf::Conv2dParams& p, i64 CS, i64 Wp, i64 sh, int* off) {
  const i64 RS = p.R * p.S, kred = (p.C / p.groups) * RS;
  for (i64 kk = 0; kk < kred; ++kk) {
    const i64 c = kk / RS, r = (kk % RS) / p.S, s = kk % p.S;
    off[kk] = int(c * CS + r * p.dil_h * Wp + s * p.dil_w - sh);
  }
}

// The narrow layout's lane masks, (phases, kred): msk[φ·kred + kk] holds the lanes l of 16
// consecutive pixels starting at column φ whose tap kk = (c, r, s) column (φ + l) mod Q +
// s·dw − pad_left lies inside the row. Phases: the first pixels' columns j mod Q, j a multiple
// of 16 (Q / gcd(Q, 16) of them; phase φ is stored at index φ / gcd).
inline i64 narrow_phase_step(i64 Q) {
  i64 g = 16;
  while (Q % g) g /= 2;
  return g;
}
inline void narrow_masks(const pf::Conv2dParams& p, __mmask16* msk) {
  const i64 RS = p.R * p.S, kred = (p.C / p.groups) * RS, step = narrow_phase_step(p.Q);
  for (i64 ph = 0; ph < p.Q; ph += step)
    for (i64 kk = 0; kk < kred; ++kk) {
      const i64 dq = (kk % p.S) * p.dil_w - p.pad_left;
      unsigned m = 0;
      for (int l = 0; l < 16; ++l) {
        const i64 col = (ph + l) % p.Q + dq;
        if (col >= 0 && col < p.W) m |= 1u << l;
      }
      msk[ph / step * kred + kk] = __mmask16(m);
    }
}

// Rows [h0, h0 + hr) of channel xc (H × W, W == Q) into d (hr × W): input row h0 + i − pad_top,
// zeros outside the input (the narrow layout: no column padding).
inline void copy_rows_narrow(float* __restrict d, const float* __restrict xc, const pf::Conv2dParams& p, i64 h0,
                             i64 hr) {
  const i64 a = imin(imax(p.pad_top - h0, 0), hr), b = imax(imin(p.pad_top + p.H - h0, hr), a);
  if (a) memset(d, 0, size_t(a * p.W) * sizeof(float));
  if (b > a) memcpy(d + a * p.W, xc + (h0 + a - p.pad_top) * p.W, size_t((b - a) * p.W) * sizeof(float));
  if (hr > b) memset(d + b * p.W, 0, size_t((hr - b) * p.W) * sizeof(float));
}

// apack: the weights packed as forward packs them, (G, mb, kred, MR).
inline void forward_direct(const float* x, const float* apack, const float* bias, float* out,
                           const pf::Conv2dParams& p) {
  constexpr int MR = 8, NR = 32;
  const i64 G = p.groups, Cg = p.C / G, Kg = p.K / G, RS = p.R * p.S, kred = Cg * RS;
  const i64 PQ = p.P * p.Q, HW = p.H * p.W, Q = p.Q, mb = cdiv(Kg, MR);
  const bool narrow = direct_narrow(p);
  // tiles of whole output rows, ~256 pixels; at least ~2 jobs per thread
  i64 tr = imax(1, 256 / Q);
  const i64 want = 2 * max_threads();
  if (p.N * G * cdiv(p.P, tr) < want) tr = imax(1, cdiv(p.P, cdiv(want, p.N * G)));
  const i64 tiles = cdiv(p.P, tr), jobs = p.N * G * tiles;
  const i64 Wp = narrow ? Q : Q + p.dil_w * (p.S - 1), Hr = tr + p.dil_h * (p.R - 1), CS = Hr * Wp;
  // narrow: zeros before xp (taps left of the first pixel) and after it (the lanes up to 31
  // past a tile's last pixel, plus the rightmost tap)
  const i64 guard = narrow ? 48 + p.dil_w * (p.S - 1) : 0, step = narrow ? narrow_phase_step(Q) : 1;
  Scratch<int> off(kred);
  Scratch<__mmask16> msk(narrow ? Q / step * kred : 0);
  tap_offsets(p, CS, Wp, narrow ? p.pad_left : 0, off.p);
  if (narrow) narrow_masks(p, msk.p);
  const i64 kc_max = imin(kred, kDKC);
#pragma omp parallel if (jobs > 1 && p.N * p.K * PQ * kred > 32768)
  {
    Scratch<float> xbuf(Cg * CS + 2 * guard);
    float* xp = xbuf.p + guard;
    if (narrow) {
      memset(xbuf.p, 0, size_t(guard) * sizeof(float));
      memset(xp + Cg * CS, 0, size_t(guard) * sizeof(float));
    }
#pragma omp for schedule(dynamic, 1)
    for (i64 job = 0; job < jobs; ++job) {
      const i64 g = job % G, rest = job / G, ti = rest % tiles, n = rest / tiles;
      const i64 p0 = ti * tr, rows = imin(p.P, p0 + tr) - p0, hr = rows + p.dil_h * (p.R - 1);
      for (i64 c = 0; c < Cg; ++c) {
        const float* xc = x + (n * p.C + g * Cg + c) * HW;
        if (narrow) copy_rows_narrow(xp + c * CS, xc, p, p0, hr);
        else pad_rows(xp + c * CS, xc, p, p0, hr, Wp);
      }
      const i64 npx = rows * Q;
      float* cbase = out + (n * p.K + g * Kg) * PQ + p0 * Q;
      const float* bg = bias ? bias + g * Kg : nullptr;
      const float* ag = apack + g * mb * kred * MR;
      for (i64 k0 = 0; k0 < kred; k0 += kc_max) {
        const i64 kc = imin(kc_max, kred - k0);
        for (i64 j0 = 0; j0 < npx; j0 += NR) {
          const int nn = int(imin(NR, npx - j0));
          // narrow: pixel j of the tile is at xp + j (rows of Q, no column padding)
          const float* b0 = narrow ? xp + j0 : xp + (j0 / Q) * Wp + j0 % Q;
          const float* b1 = nn > 16 ? (narrow ? xp + j0 + 16 : xp + ((j0 + 16) / Q) * Wp + (j0 + 16) % Q) : b0;
          for (i64 ib = 0; ib < mb; ++ib) {
            const int mm = int(imin(MR, Kg - ib * MR));
            float* ct = cbase + ib * MR * PQ + j0;
            const float* at = ag + (ib * kred + k0) * MR;
            const float* bi = bg ? bg + ib * MR : nullptr;
            if (narrow) {  // tiles start at a row, so pixel j's column is j mod Q
              const __mmask16* m0 = msk.p + (j0 % Q) / step * kred + k0;
              const __mmask16* m1 = msk.p + ((j0 + 16) % Q) / step * kred + k0;
              ukernel_taps<true>(kc, at, b0, b1, off.p + k0, m0, m1, ct, PQ, mm, nn, bi, k0 > 0);
            } else {
              ukernel_taps<false>(kc, at, b0, b1, off.p + k0, nullptr, nullptr, ct, PQ, mm, nn, bi, k0 > 0);
            }
          }
        }
      }
    }
  }
}
#endif  // __AVX512F__

// ---------------------------------------------------------------- backward-weight, direct
// AVX-512 float, stride 1, Kg % 32 == 0: dWᵀ (kred × Kg) = Σ over pixels of an outer
// product — 32 output channels of dy as two vectors (dy transposed to pixel-major once per
// chunk of images) times 8 taps broadcast straight from a zero-padded copy of x. Nothing is
// im2col'ed and there are no horizontal sums. A job owns 32 channels × a range of taps of
// dWᵀ and sweeps the images in order, so the bits do not depend on the thread count.
#if defined(__AVX512F__)
inline bool bw_direct_ok(const pf::Conv2dParams& p) {
  const i64 Hp = p.P + p.dil_h * (p.R - 1), Wp = p.Q + p.dil_w * (p.S - 1);
  // (few taps: the dy transpose is not repaid — B's 1-channel 3×3 measured 0.8 -> 0.65× torch)
  return p.stride_h == 1 && p.stride_w == 1 && (p.K / p.groups) % 32 == 0 && (p.C / p.groups) * p.R * p.S >= 64 &&
         p.C * Hp * Wp < (i64(1) << 30) &&
         32 * p.P * p.Q < (i64(1) << 31);  // int32 gather indices
}

// c[j*ldc + 0..32) (=|+=) Σ_t dyt[t*ldt + 0..32) · b_j[base(t)], t over P×Q pixels with
// base(p, q) = p·Wp + q; taps j < nj (b pointers past nj repeat the last, unused).
inline void ukernel_bw(const float* dyt, i64 ldt, const float* const* b, int nj, i64 P, i64 Q, i64 Wp, float* c,
                       i64 ldc, bool accumulate) {
  const float* b0 = b[0];
  const float* b1 = b[imin(1, nj - 1)];
  const float* b2 = b[imin(2, nj - 1)];
  const float* b3 = b[imin(3, nj - 1)];
  const float* b4 = b[imin(4, nj - 1)];
  const float* b5 = b[imin(5, nj - 1)];
  const float* b6 = b[imin(6, nj - 1)];
  const float* b7 = b[imin(7, nj - 1)];
  __m512 acc[8][2];
#pragma GCC unroll 8
  for (int j = 0; j < 8; ++j) acc[j][0] = acc[j][1] = _mm512_setzero_ps();
  for (i64 pp = 0; pp < P; ++pp) {
    const float* a = dyt + pp * Q * ldt;
    const i64 i0 = pp * Wp;
#pragma GCC unroll 4
    for (i64 i = i0; i < i0 + Q; ++i, a += ldt) {
      const __m512 u = _mm512_loadu_ps(a), v = _mm512_loadu_ps(a + 16);
#define PF_BW_TAP(j)                                                 \
      {                                                              \
        const __m512 bj = _mm512_set1_ps(b##j[i]);                   \
        acc[j][0] = _mm512_fmadd_ps(u, bj, acc[j][0]);               \
        acc[j][1] = _mm512_fmadd_ps(v, bj, acc[j][1]);               \
      }
      PF_BW_TAP(0) PF_BW_TAP(1) PF_BW_TAP(2) PF_BW_TAP(3) PF_BW_TAP(4) PF_BW_TAP(5) PF_BW_TAP(6) PF_BW_TAP(7)
#undef PF_BW_TAP
    }
  }
  for (int j = 0; j < nj; ++j) {
    float* cj = c + j * ldc;
    for (int h = 0; h < 2; ++h) {
      const __m512 r = accumulate ? _mm512_add_ps(_mm512_loadu_ps(cj + 16 * h), acc[j][h]) : acc[j][h];
      _mm512_storeu_ps(cj + 16 * h, r);
    }
  }
}

inline void backward_weight_direct(const float* x, const float* dy, float* dw, const pf::Conv2dParams& p) {
  const i64 G = p.groups, Cg = p.C / G, Kg = p.K / G, RS = p.R * p.S, kred = Cg * RS;
  const i64 PQ = p.P * p.Q, HW = p.H * p.W;
  const i64 Hp = p.P + p.dil_h * (p.R - 1), Wp = p.Q + p.dil_w * (p.S - 1), CS = Hp * Wp;
  // images per chunk: their padded x and transposed dy about 8 MiB
  const i64 per_img = p.C * CS + PQ * p.K, fit = imax(1, imin(p.N, (i64(8) << 20) / 4 / per_img));
  const i64 nch = cdiv(p.N, cdiv(p.N, fit));  // equal chunks
  Scratch<float> xp(nch * p.C * CS), dyt(nch * PQ * p.K);
  Scratch<float> dwt(G * kred * Kg);  // (G, kred, Kg)
  Scratch<int> off(kred);
  tap_offsets(p, CS, Wp, 0, off.p);
  // jobs: (group, 32 channels, tap range of ~256 taps rounded to 8), more ranges if the
  // threads would starve
  const i64 kt = Kg / 32, want = 2 * max_threads();
  i64 ntr = cdiv(kred, 256);
  if (G * kt * ntr < want) ntr = imin(cdiv(kred, 8), cdiv(want, G * kt));
  const i64 trw = rup(cdiv(kred, ntr), 8);
  ntr = cdiv(kred, trw);
  const i64 jobs = G * kt * ntr;
  const bool par = p.N * p.K * PQ * kred > 32768;
  const __m512i rows = lane_multiples(PQ);  // 16 channel rows of dy
  for (i64 n0 = 0; n0 < p.N; n0 += nch) {
    const i64 nn = imin(nch, p.N - n0);
#pragma omp parallel for schedule(static) if (par)
    for (i64 jc = 0; jc < nn * p.C; ++jc)  // padded x, one (image, channel) each
      pad_rows(xp.p + jc * CS, x + (n0 * p.C + jc) * HW, p, 0, Hp, Wp);
#pragma omp parallel for schedule(static) if (par)
    for (i64 jt = 0; jt < nn * (p.K / 32); ++jt) {  // dyt (image, K/32, pixel, 32): contiguous blocks
      const float* src = dy + (n0 * p.K + jt * 32) * PQ;  // (since jt = i*(K/32) + k-tile)
      float* d = dyt.p + jt * PQ * 32;
      for (i64 t = 0; t < PQ; ++t) {  // one pixel's 32 channels: two 16-lane gathers down the rows
        _mm512_storeu_ps(d + t * 32, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), 0xFFFF, rows, src + t, 4));
        _mm512_storeu_ps(d + t * 32 + 16, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), 0xFFFF, rows, src + 16 * PQ + t, 4));
      }
    }
#pragma omp parallel for schedule(dynamic, 1) if (par && jobs > 1)
    for (i64 job = 0; job < jobs; ++job) {
      const i64 tri = job % ntr, rest = job / ntr, kb = rest % kt, g = rest / kt;
      const i64 kk0 = tri * trw, kk1 = imin(kred, kk0 + trw), k0 = g * Kg + kb * 32;
      float* cg = dwt.p + g * kred * Kg + kb * 32;
      for (i64 i = 0; i < nn; ++i) {
        const float* xg = xp.p + (i * p.C + g * Cg) * CS;
        const float* a = dyt.p + (i * (p.K / 32) + k0 / 32) * PQ * 32;  // 32 KiB for 16×16
        for (i64 kk = kk0; kk < kk1; kk += 8) {
          const int nj = int(imin(8, kk1 - kk));
          const float* bp[8];
          for (int j = 0; j < nj; ++j) bp[j] = xg + off.p[kk + j];
          ukernel_bw(a, 32, bp, nj, p.P, p.Q, Wp, cg + kk * Kg, Kg, n0 + i > 0);
        }
      }
    }
  }
  const i64 kkb = cdiv(kred, 16);
#pragma omp parallel for schedule(static) if (par)
  for (i64 blk = 0; blk < G * kt * kkb; ++blk) {  // dW (K, kred) = dWᵀ, 32 × 16 blocks
    const i64 g = blk / (kt * kkb), k0 = (blk / kkb) % kt * 32, kk0 = blk % kkb * 16, kk1 = imin(kred, kk0 + 16);
    const float* src = dwt.p + g * kred * Kg;
    float* d = dw + g * Kg * kred;
    for (i64 k = k0; k < k0 + 32; ++k)
      for (i64 kk = kk0; kk < kk1; ++kk) d[k * kred + kk] = src[kk * Kg + k];
  }
}
#endif  // __AVX512F__
}  // namespace
}  // namespace PF_ISA_NS
