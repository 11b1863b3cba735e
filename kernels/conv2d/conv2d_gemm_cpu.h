// kernels/conv2d/conv2d_gemm_cpu.h: the implicit-GEMM machinery every pass uses: vector traits,
// the register-blocked micro-kernels (outer product, dot product), im2col / col2im rows,
// weight packing and tiling.
// A part of conv2d_cpu.cpp's translation unit (compiled once per ISA into PF_ISA_NS, after
// the includes and helpers there): include it only from there, in that file's order.
#pragma once

namespace PF_ISA_NS {
namespace {
using pf::i64;

inline i64 imin(i64 a, i64 b) { return a < b ? a : b; }
inline i64 imax(i64 a, i64 b) { return a > b ? a : b; }
inline i64 cdiv(i64 a, i64 b) { return (a + b - 1) / b; }
inline i64 rup(i64 a, i64 b) { return cdiv(a, b) * b; }


// ---------------------------------------------------------------- SIMD vector traits
// The vector types of common/simd.h plus this file's register blocking: MR rows × NV vectors
// of outer-product accumulators, DM × DN dot-product accumulators.
template <class T> struct V;
#if defined(__AVX512F__)
template <> struct V<float> : simd::F16 { static constexpr int MR = 8, NV = 2, DM = 4, DN = 6; };
template <> struct V<double> : simd::D8 { static constexpr int MR = 8, NV = 2, DM = 4, DN = 6; };
#elif defined(__AVX2__) && defined(__FMA__)
template <> struct V<float> : simd::F8 { static constexpr int MR = 6, NV = 2, DM = 3, DN = 4; };
template <> struct V<double> : simd::D4 { static constexpr int MR = 6, NV = 2, DM = 3, DN = 4; };
#else
// Portable: one scalar per "vector"; 4×8 accumulators the compiler may keep in SSE registers.
template <class TT> struct VScalar {
  using T = TT;
  using R = T;
  static constexpr int W = 1, MR = 4, NV = 8;
  static R zero() { return T(0); }
  static R load(const T* p) { return *p; }
  static void store(T* p, R v) { *p = v; }
  static R set1(T v) { return v; }
  static R fma(R a, R b, R c) { return a * b + c; }
  static R add(R a, R b) { return a + b; }
  static T hsum(R a) { return a; }
  static constexpr int DM = 2, DN = 4;
};
template <> struct V<float> : VScalar<float> {};
template <> struct V<double> : VScalar<double> {};
#endif

template <class T> constexpr int MR_of() { return V<T>::MR; }
template <class T> constexpr int NR_of() { return V<T>::NV * V<T>::W; }

// Writes an MR×NR accumulator tile: C = acc (+ row_init[i] per row) or C += acc; only the
// valid m×n part.
template <class T>
inline void store_acc(typename V<T>::R (&acc)[V<T>::MR][V<T>::NV], T* __restrict c, i64 ldc, int m, int n,
                      const T* row_init, bool accumulate) {
  using VT = V<T>;
  using R = typename VT::R;
  constexpr int MR = VT::MR, NV = VT::NV, L = VT::W, NR = NV * L;
  if (m == MR && n == NR) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      T* ci = c + i * ldc;
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) {
        R r = acc[i][v];
        if (accumulate) r = VT::add(VT::load(ci + v * L), r);
        else if (row_init) r = VT::add(r, VT::set1(row_init[i]));
        VT::store(ci + v * L, r);
      }
    }
    return;
  }
  T tmp[MR * NR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) VT::store(tmp + i * NR + v * L, acc[i][v]);
  for (int i = 0; i < m; ++i) {
    T* ci = c + i * ldc;
    const T init = (!accumulate && row_init) ? row_init[i] : T(0);
    for (int j = 0; j < n; ++j) ci[j] = accumulate ? ci[j] + tmp[i * NR + j] : tmp[i * NR + j] + init;
  }
}

// C[m×n] (=|+=) A·B over kc. a: packed kc × MR (row i of step kk at a[kk*MR + i]);
// b: kc rows of NR values at stride ldb; c: row stride ldc. m ≤ MR, n ≤ NR are the valid
// part; only it is written. When not accumulating, row_init (if given) seeds row i.
template <class T>
void ukernel(i64 kc, const T* __restrict a, const T* __restrict b, i64 ldb, T* __restrict c, i64 ldc, int m,
             int n, const T* row_init, bool accumulate) {
  typename V<T>::R acc[V<T>::MR][V<T>::NV];
  gemm_tile<V<T>, V<T>::MR, V<T>::NV, true, 4>(kc, a, V<T>::MR, b, ldb, acc);  // common/gemm_cpu.h
  store_acc<T>(acc, c, ldc, m, n, row_init, accumulate);
}

// C[m×n] += A·Bᵀ where both operands keep the reduction contiguous (the weight gradient:
// dy rows and im2col rows are both pixel-contiguous, so nothing is transposed). a: m rows
// at stride lda, b: n rows at stride ldb, kv steps (a multiple of the vector length; the
// callers zero-pad). Each of the DM×DN outputs is a vector of partial sums, reduced once.
template <class T>
void dot_kernel(i64 kv, const T* __restrict a, i64 lda, const T* __restrict b, i64 ldb, T* __restrict c, i64 ldc,
                int m, int n) {
  using VT = V<T>;
  using R = typename VT::R;
  constexpr int DM = VT::DM, DN = VT::DN, L = VT::W;
  const T* ar[DM];
  const T* br[DN];
#pragma GCC unroll 8
  for (int i = 0; i < DM; ++i) ar[i] = a + (i < m ? i : m - 1) * lda;  // rows past m: re-read row m-1
#pragma GCC unroll 8
  for (int j = 0; j < DN; ++j) br[j] = b + (j < n ? j : n - 1) * ldb;
  R acc[DM][DN];
#pragma GCC unroll 8
  for (int i = 0; i < DM; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < DN; ++j) acc[i][j] = VT::zero();
#pragma GCC unroll 2
  for (i64 k = 0; k < kv; k += L) {
    R av[DM];
#pragma GCC unroll 8
    for (int i = 0; i < DM; ++i) av[i] = VT::load(ar[i] + k);
#pragma GCC unroll 8
    for (int j = 0; j < DN; ++j) {
      const R bv = VT::load(br[j] + k);
#pragma GCC unroll 8
      for (int i = 0; i < DM; ++i) acc[i][j] = VT::fma(av[i], bv, acc[i][j]);
    }
  }
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) c[i * ldc + j] += VT::hsum(acc[i][j]);
}

// ---------------------------------------------------------------- im2col / col2im rows
// Row `row` of a group's column matrix is (c, r, s) = (row / RS, (row % RS) / S, row % S);
// its entry for output pixel t = p*Q + q is x_c[p*sh - pt + r*dh, q*sw - pl + s*dw] (0 out
// of bounds). Two ways to walk it:
//  * Tap table (small or strided outputs): the input offset of every (tap, pixel) pair does
//    not depend on the channel, so it is computed once per call (RS × PQ int32, -1 = pad)
//    and each row becomes a plain gather.
//  * Segments (large stride-1 outputs): the pixel range is walked one output row at a time;
//    each segment is a contiguous run of one input row, clipped analytically.
// AVX-512, float: output rows of ≤ 16 pixels at stride 2 are gathered by two masked loads and
// one even-lane permute (rows_map), no table needed.
// AVX-512, float: whole input channels of ≤ 64 values with ≤ 16 outputs (8×8 → 4×4 at stride
// 2) are held in four registers and each tap's 16 outputs picked by two permutes
// (gather_small_images), from the tap table.
inline bool small_images(const pf::Conv2dParams& p, bool f32) {
#if defined(__AVX512F__)
  return f32 && p.H * p.W <= 64 && p.P * p.Q <= 16;
#else
  (void)p, (void)f32;
  return false;
#endif
}

inline bool stride2_rows(const pf::Conv2dParams& p, bool f32) {
#if defined(__AVX512F__)
  return f32 && p.stride_w == 2 && p.Q <= 16 && !small_images(p, f32);
#else
  (void)p, (void)f32;
  return false;
#endif
}

struct TapTable {
  int* off = nullptr;  // (RS, PQ) or null
  TapTable(const pf::Conv2dParams& p, bool f32) {
    const i64 RS = p.R * p.S, PQ = p.P * p.Q;
#if defined(__AVX512F__)
    const bool short_rows = false;  // masked loads make short stride-1 segments cheap
#else
    const bool short_rows = p.Q < 32;
#endif
    const bool want = (((p.stride_w != 1 || short_rows) && !stride2_rows(p, f32)) || small_images(p, f32)) &&
                      RS * PQ <= (i64(1) << 22) && p.H * p.W < (i64(1) << 31);
    if (!want) return;
    off = new int[RS * PQ];
    for (i64 rs = 0; rs < RS; ++rs) {
      const i64 r = rs / p.S, s = rs % p.S;
      for (i64 t = 0; t < PQ; ++t) {
        const i64 pp = t / p.Q, q = t % p.Q;
        const i64 ih = pp * p.stride_h - p.pad_top + r * p.dil_h, iw = q * p.stride_w - p.pad_left + s * p.dil_w;
        off[rs * PQ + t] = (ih < 0 || ih >= p.H || iw < 0 || iw >= p.W) ? -1 : int(ih * p.W + iw);
      }
    }
  }
  ~TapTable() { delete[] off; }
  TapTable(const TapTable&) = delete;
  TapTable& operator=(const TapTable&) = delete;
};

// d[i] = src[i] for lo <= i < hi, 0 elsewhere in [0, len): one clipped segment of an input
// row. On AVX-512 a short row (16×16 outputs: 16 pixels) is one masked load and store;
// masked-off lanes are never read, so src may point before the row (lo > 0).
template <class T>
inline void copy_clipped(T* __restrict d, const T* src, i64 len, i64 lo, i64 hi) {
#if defined(__AVX512F__)
  if (sizeof(T) == 4) {
    for (i64 i = 0; i < len; i += 16) {
      // lanes [a, b) are inside the row, lanes [0, e) inside the segment
      const i64 a = imax(lo - i, 0), b = imin(imax(hi - i, 0), 16), e = imin(len - i, 16);
      const __mmask16 mv = __mmask16(((1u << b) - 1u) & ~((1u << imin(a, 16)) - 1u));
      const __mmask16 ms = __mmask16((1u << e) - 1u);
      const __m512 v = _mm512_maskz_loadu_ps(mv, reinterpret_cast<const float*>(src) + i);
      _mm512_mask_storeu_ps(reinterpret_cast<float*>(d) + i, ms, v);
    }
    return;
  } else {
    for (i64 i = 0; i < len; i += 8) {
      const i64 a = imax(lo - i, 0), b = imin(imax(hi - i, 0), 8), e = imin(len - i, 8);
      const __mmask8 mv = __mmask8(((1u << b) - 1u) & ~((1u << imin(a, 8)) - 1u));
      const __mmask8 ms = __mmask8((1u << e) - 1u);
      const __m512d v = _mm512_maskz_loadu_pd(mv, reinterpret_cast<const double*>(src) + i);
      _mm512_mask_storeu_pd(reinterpret_cast<double*>(d) + i, ms, v);
    }
    return;
  }
#else
  for (i64 i = 0; i < lo && i < len; ++i) d[i] = T(0);
#pragma omp simd
  for (i64 i = lo; i < hi; ++i) d[i] = src[i];
  for (i64 i = imax(hi, lo); i < len; ++i) d[i] = T(0);
#endif
}

// d[i] = x[o[i]] (0 where o[i] < 0) for i in [0, len): one im2col row from the tap table.
// Scalar on purpose: an AVX-512 masked gather and a branch-free select both measured slower
// on Zen 4 for these short (4×4-output) rows.
template <class T>
inline void gather_row(T* __restrict d, const T* x, const int* o, i64 len) {
  for (i64 i = 0; i < len; ++i) d[i] = o[i] >= 0 ? x[o[i]] : T(0);
}

template <class T, bool kScatter>
void rows_map(T* xg /*channel 0 of the block*/, const pf::Conv2dParams& p, const int* tab, i64 row0, i64 row1,
              i64 t0, i64 t1, T* buf, i64 ldb) {
  const i64 RS = p.R * p.S, HW = p.H * p.W, PQ = p.P * p.Q;
#if defined(__AVX512F__)
  // Short stride-1 output rows (Q ≤ 64) over whole rows of the tile: the lane masks of a
  // tap column are the same for every output row, so each output row is one masked load
  // and store per 16 pixels, with no per-segment clipping arithmetic.
  const bool short_rows = sizeof(T) == 4 && !tab && p.stride_w == 1 && p.Q <= 64 && t0 % p.Q == 0 &&
                          t1 % p.Q == 0;
  // Stride-2 output rows of ≤ 16 pixels (gather only): input lanes [off, off + 32) of the row
  // in two masked loads, the even lanes picked by one permute.
  const bool s2_rows = !kScatter && !tab && stride2_rows(p, sizeof(T) == 4) && t0 % p.Q == 0 && t1 % p.Q == 0;
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
#endif
  for (i64 row = row0; row < row1; ++row) {
    const i64 c = row / RS, rs = row % RS, r = rs / p.S, s = rs % p.S;
    T* xc = xg + c * HW;
    T* d = buf + (row - row0) * ldb;
#if defined(__AVX512F__)
    if (s2_rows) {
      const i64 Q = p.Q, W = p.W, H = p.H, sh = p.stride_h, ih0 = r * p.dil_h - p.pad_top;
      const i64 off = s * p.dil_w - p.pad_left;  // iw = 2q + off: lane 2q of the loads
      const i64 lo = imin(imax(-off, 0), 32), hi = imax(imin(W - off, 32), lo);  // lanes inside the row
      const __mmask16 ma = __mmask16(((1u << imin(hi, 16)) - 1u) & ~((1u << imin(lo, 16)) - 1u));
      const i64 lo2 = imax(lo - 16, 0), hi2 = imax(hi - 16, 0);
      const __mmask16 mb = __mmask16(((1u << hi2) - 1u) & ~((1u << imin(lo2, 16)) - 1u));
      const __mmask16 ms = __mmask16((1u << Q) - 1u);
      float* df = reinterpret_cast<float*>(d);
      for (i64 pp = t0 / Q; pp < t1 / Q; ++pp, df += Q) {
        const i64 ih = pp * sh + ih0;
        if (ih < 0 || ih >= H) {
          _mm512_mask_storeu_ps(df, ms, _mm512_setzero_ps());
          continue;
        }
        const float* xr = reinterpret_cast<const float*>(xc) + ih * W + off;  // masked lanes are never read
        const __m512 a = _mm512_maskz_loadu_ps(ma, xr), b = _mm512_maskz_loadu_ps(mb, xr + 16);
        _mm512_mask_storeu_ps(df, ms, _mm512_permutex2var_ps(a, even, b));
      }
      continue;
    }
    if (short_rows) {
      // locals: the stores below may alias p as far as the compiler knows
      const i64 Q = p.Q, W = p.W, H = p.H, sh = p.stride_h, ih0 = r * p.dil_h - p.pad_top;
      const i64 pp0 = t0 / Q, pp1 = t1 / Q;
      const i64 off = s * p.dil_w - p.pad_left;  // iw = q + off
      const i64 qlo = imin(imax(-off, 0), Q), qhi = imax(imin(W - off, Q), qlo);
      const int nch = int(cdiv(Q, 16));
      __mmask16 mv[4], ms[4];
      for (int j = 0; j < nch; ++j) {
        const i64 a = imin(imax(qlo - 16 * j, 0), 16), b = imin(imax(qhi - 16 * j, 0), 16);
        const i64 e = imin(Q - 16 * j, 16);
        mv[j] = __mmask16(((1u << b) - 1u) & ~((1u << a) - 1u));
        ms[j] = __mmask16((1u << e) - 1u);
      }
      float* df = reinterpret_cast<float*>(d);
      for (i64 pp = pp0; pp < pp1; ++pp, df += Q) {
        const i64 ih = pp * sh + ih0;
        if (ih < 0 || ih >= H) {
          if (!kScatter)
            for (int j = 0; j < nch; ++j) _mm512_mask_storeu_ps(df + 16 * j, ms[j], _mm512_setzero_ps());
          continue;
        }
        float* xr = reinterpret_cast<float*>(xc) + ih * W + off;  // lanes before the row are masked
        for (int j = 0; j < nch; ++j) {
          if (!kScatter) {
            _mm512_mask_storeu_ps(df + 16 * j, ms[j], _mm512_maskz_loadu_ps(mv[j], xr + 16 * j));
          } else {
            const __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(mv[j], xr + 16 * j),
                                           _mm512_maskz_loadu_ps(mv[j], df + 16 * j));
            _mm512_mask_storeu_ps(xr + 16 * j, mv[j], v);
          }
        }
      }
      continue;
    }
#endif
    if (tab) {
      const int* o = tab + rs * PQ + t0;
      const i64 len = t1 - t0;
      if (!kScatter) {
        gather_row(d, xc, o, len);
      } else {
        for (i64 i = 0; i < len; ++i)
          if (o[i] >= 0) xc[o[i]] += d[i];
      }
      continue;
    }
    const i64 off = s * p.dil_w - p.pad_left;  // iw = q*sw + off
    // q with 0 <= q*sw + off < W:  q in [qlo, qhi)
    const i64 qlo_all = off >= 0 ? 0 : cdiv(-off, p.stride_w);
    const i64 qhi_all = (p.W - 1 - off) < 0 ? 0 : (p.W - 1 - off) / p.stride_w + 1;
    i64 t = t0, pp = t0 / p.Q, q = t0 % p.Q;
    while (t < t1) {
      const i64 qend = imin(p.Q, q + (t1 - t)), len = qend - q;
      const i64 ih = pp * p.stride_h - p.pad_top + r * p.dil_h;
      if (ih < 0 || ih >= p.H) {
        if (!kScatter) for (i64 i = 0; i < len; ++i) d[i] = T(0);
      } else {
        T* xr = xc + ih * p.W + off;
        const i64 qlo = imin(imax(qlo_all, q), qend), qhi = imax(imin(qhi_all, qend), qlo);
        if (!kScatter) {
          if (p.stride_w == 1) {
            copy_clipped(d, xr + q, len, qlo - q, qhi - q);
          } else {
            for (i64 qq = q; qq < qlo; ++qq) d[qq - q] = T(0);
            for (i64 qq = qlo; qq < qhi; ++qq) d[qq - q] = xr[qq * p.stride_w];
            for (i64 qq = qhi; qq < qend; ++qq) d[qq - q] = T(0);
          }
        } else {
          if (p.stride_w == 1) {
#pragma omp simd
            for (i64 qq = qlo; qq < qhi; ++qq) xr[qq] += d[qq - q];
          } else {
            for (i64 qq = qlo; qq < qhi; ++qq) xr[qq * p.stride_w] += d[qq - q];
          }
        }
      }
      d += len;
      t += len;
      ++pp;
      q = 0;
    }
  }
}

template <class T>
void im2col_rows(const T* xg, const pf::Conv2dParams& p, const int* tab, i64 row0, i64 row1, i64 t0, i64 t1, T* buf,
                 i64 ldb) {
  rows_map<T, false>(const_cast<T*>(xg), p, tab, row0, row1, t0, t1, buf, ldb);
}
// Table path for several whole small images side by side (the forward's multi-image
// tiles, 4×4 outputs): rows outer so the row's tap offsets are decoded once for all images.
// Image i's pixels land at buf[row * ldb + i * PQ + t].
#if defined(__AVX512F__)
// small_images: channel c of image i in registers x0..x3 (lanes past HW zero, never read),
// then per tap: lanes 0..31 and 32..63 by one two-table permute each, bit 5 of the index
// picks between them, pad lanes (index -1) are zeroed. Rows [row0, row1) as (c, tap).
inline void gather_small_images(const float* x0, i64 img_stride, i64 nimg, const pf::Conv2dParams& p, const int* tab,
                                i64 row0, i64 row1, float* buf, i64 ldb) {
  const i64 RS = p.R * p.S, HW = p.H * p.W, PQ = p.P * p.Q;
  const __mmask16 mq = __mmask16((1u << PQ) - 1u);
  __mmask16 mx[4];
  for (int j = 0; j < 4; ++j) mx[j] = __mmask16((1u << imin(imax(HW - 16 * j, 0), 16)) - 1u);
  const __m512i bit5 = _mm512_set1_epi32(32), zero = _mm512_setzero_si512();
  for (i64 c = row0 / RS; c * RS < row1; ++c) {
    const i64 rs0 = imax(row0 - c * RS, 0), rs1 = imin(row1 - c * RS, RS);
    const float* xc = x0 + c * HW;
    for (i64 i = 0; i < nimg; ++i, xc += img_stride) {
      const __m512 a = _mm512_maskz_loadu_ps(mx[0], xc), b = _mm512_maskz_loadu_ps(mx[1], xc + 16);
      const __m512 e = _mm512_maskz_loadu_ps(mx[2], xc + 32), f = _mm512_maskz_loadu_ps(mx[3], xc + 48);
      float* d = buf + (c * RS + rs0 - row0) * ldb + i * PQ;
      for (i64 rs = rs0; rs < rs1; ++rs, d += ldb) {
        const __m512i idx = _mm512_maskz_loadu_epi32(mq, tab + rs * PQ);
        const __mmask16 valid = _mm512_mask_cmpge_epi32_mask(mq, idx, zero);
        const __m512 lo = _mm512_permutex2var_ps(a, idx, b), hi = _mm512_permutex2var_ps(e, idx, f);
        const __m512 v = _mm512_mask_blend_ps(_mm512_test_epi32_mask(idx, bit5), lo, hi);
        _mm512_mask_storeu_ps(d, mq, _mm512_maskz_mov_ps(valid, v));
      }
    }
  }
}
#endif

template <class T>
void im2col_rows_images(const T* x0, i64 img_stride, i64 nimg, const pf::Conv2dParams& p, const int* tab, i64 row0,
                        i64 row1, T* buf, i64 ldb) {
  const i64 RS = p.R * p.S, HW = p.H * p.W, PQ = p.P * p.Q;
#if defined(__AVX512F__)
  if (small_images(p, sizeof(T) == 4)) {
    gather_small_images(reinterpret_cast<const float*>(x0), img_stride, nimg, p, tab, row0, row1,
                        reinterpret_cast<float*>(buf), ldb);
    return;
  }
#endif
  for (i64 row = row0; row < row1; ++row) {
    const i64 c = row / RS, rs = row % RS;
    const int* o = tab + rs * PQ;
    T* d = buf + (row - row0) * ldb;
    const T* xc = x0 + c * HW;
    for (i64 i = 0; i < nimg; ++i, d += PQ, xc += img_stride) gather_row(d, xc, o, PQ);
  }
}

template <class T>
void col2im_rows(T* xg, const pf::Conv2dParams& p, const int* tab, i64 row0, i64 row1, i64 t0, i64 t1, const T* buf,
                 i64 ldb) {
  rows_map<T, true>(xg, p, tab, row0, row1, t0, t1, const_cast<T*>(buf), ldb);
}

// Pack rows [0, rows) × reduction [0, kn) of src(i, k) = src[i*ld_i + k*ld_k] into MR-row
// panels of a (rows, ktot) packed matrix at reduction offset koff: panel ib holds ktot
// steps of MR values; step k of row i lands at dst[(ib*ktot + koff + k)*MR + i % MR].
template <class T>
void pack_a(const T* src, i64 ld_i, i64 ld_k, i64 rows, i64 kn, T* dst, i64 ktot, i64 koff) {
  constexpr int MR = MR_of<T>();
  const i64 mb = cdiv(rows, MR);
  for (i64 ib = 0; ib < mb; ++ib) {
    T* d = dst + (ib * ktot + koff) * MR;
    for (int m = 0; m < MR; ++m) {
      const i64 i = ib * MR + m;
      if (i < rows) {
        const T* s = src + i * ld_i;
        for (i64 k = 0; k < kn; ++k) d[k * MR + m] = s[k * ld_k];
      } else {
        for (i64 k = 0; k < kn; ++k) d[k * MR + m] = T(0);
      }
    }
  }
}

// Column tiles over the flattened (image, pixel) space of one group. Large images are cut
// into pixel ranges of one image; small ones are grouped whole, `ipt` images a tile, so the
// micro-kernel still sees full NR-wide panels (a 4×4 output has only 16 pixels).
struct Tiling {
  i64 PQ, N, nc, ipt, per_img, count;
  // tile -> images [n0, n1) and pixels [t0, t1) of each
  void tile(i64 i, i64& n0, i64& n1, i64& t0, i64& t1) const {
    if (ipt > 1) {
      n0 = i * ipt; n1 = imin(N, n0 + ipt); t0 = 0; t1 = PQ;
    } else {
      n0 = i / per_img; n1 = n0 + 1; t0 = (i % per_img) * nc; t1 = imin(PQ, t0 + nc);
    }
  }
};

// target: columns a tile should have; outer: independent jobs besides the tiles (groups,
// channel blocks). Keeps at least ~2 jobs per thread when the problem allows it.
template <class T>
Tiling make_tiling(i64 N, i64 PQ, i64 target, i64 outer) {
  constexpr i64 NR = NR_of<T>();
  Tiling tl{};
  tl.PQ = PQ; tl.N = N;
  target = imax(NR, target / NR * NR);
  const i64 want = 2 * max_threads();
  if (PQ >= target || PQ >= 4 * NR) {
    i64 nc = imin(target, rup(PQ, NR));
    if (outer * N * cdiv(PQ, nc) < want && PQ > NR) nc = imax(NR, rup(cdiv(PQ, cdiv(want, imax(1, outer * N))), NR));
    tl.nc = nc; tl.ipt = 1; tl.per_img = cdiv(PQ, nc); tl.count = N * tl.per_img;
  } else {
    i64 ipt = imax(1, target / PQ);
    if (outer * cdiv(N, ipt) < want) ipt = imax(1, cdiv(N, cdiv(want, imax(1, outer))));
    tl.ipt = ipt; tl.nc = PQ; tl.per_img = 1; tl.count = cdiv(N, ipt);
  }
  return tl;
}

// Leading dimension of a packed panel: a power-of-two row stride maps the kc rows a
// micro-kernel walks onto a few L1 sets (they evict each other and stream from L2); one
// extra cache line spreads them over all sets.
template <class T>
constexpr i64 padded_ld(i64 ld) { return (ld * i64(sizeof(T))) % 512 == 0 ? ld + 64 / i64(sizeof(T)) : ld; }

constexpr i64 kKC = 256;  // reduction block: one NR-wide B column panel fits L1
}  // namespace
}  // namespace PF_ISA_NS
