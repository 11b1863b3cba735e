// kernels/conv2d/conv2d_cpu.cpp: 2-D convolution on the CPU, all three passes.
// Compiled three times (generic, AVX2+FMA, AVX-512 flags) into PF_ISA_NS.
//
// Every pass is a GEMM fed by packed, bounded panels (never a whole-batch im2col):
//   forward          out_g (Kg × cols) = W_g (Kg × CgRS) · col (CgRS × cols)
//                    OpenMP over (group, column tile); a tile is a pixel range of one image
//                    or several whole small images (so 4×4 outputs still fill the kernel).
//   backward-data    dcol (CgRS × cols) = W_gᵀ · dy_g, then col2im (scatter-add) into dx.
//                    OpenMP over (images, group, channel block): a job owns its dx rows.
//                    Stride > 1 (dilation 1): by phases instead — each of the stride_h·stride_w
//                    phases of dx is a stride-1 forward GEMM of dy with a flipped sub-kernel, a
//                    job runs all phases for whole images and writes dx once, interleaved
//                    (backward_data_phases; conv_transpose2d's forward is this pass).
//   backward-weight  dW_g (Kg × CgRS) = Σ dy_g · colᵀ over (image, pixel) chunks, OpenMP
//                    over (group, row block, column block) of dW. Both operands keep the
//                    pixel index contiguous, so a dot-product micro-kernel consumes them
//                    without transposes; every element is reduced in the same order whatever
//                    the thread count (deterministic).
// Micro-kernels (register-blocked; B rows read with a leading dimension):
//   outer-product (forward, backward-data)   AVX-512: float 8×32, double 8×16
//                                            AVX2+FMA: float 6×16, double 6×8; generic 4×8
//   dot-product (backward-weight)            AVX-512 4×6, AVX2 3×4, generic 2×4 vectors
// im2col rows come from a per-call tap-offset table (strided outputs; also short stride-1
// rows below AVX-512) or from clipped contiguous segments of input rows (stride 1). On
// AVX-512, stride-1 output rows of ≤ 64 pixels are masked loads/stores with per-tap lane
// masks (im2col and col2im), longer segments masked copies.
// AVX-512 float special paths (same results to rounding, tested against the reference):
//   small images     ≤ 64 input pixels, ≤ 16 outputs: a channel in four registers, each tap's
//                    outputs picked by two permutes (gather_small_images).
//   Winograd         3×3, stride 1, Q % 16 == 0, P even, ≥ 32 channels in and out per group:
//                    F(2×2, 3×3), 16 GEMMs over transformed tiles, 2.25× fewer multiplies than
//                    direct (forward_winograd; stride-1 backward-data runs it with flipped weights).
//                    Weight gradient (32 output channels per group): the transposed algorithm,
//                    per fixed image block, blocks summed in order (backward_weight_winograd).
//   direct           stride 1, output rows of whole vectors (Q % 16 == 0): no im2col; B rows are
//                    loads at per-tap offsets from a zero-padded copy of the tile's input rows
//                    (forward_direct, ukernel_taps). Stride-1 backward-data runs it as the
//                    forward of dy with the flipped, transposed weights (no col2im).
//   weight gradient  stride 1, 32 output channels per block, ≥ 64 taps: outer products of dy
//                    (pixel-major 32-channel blocks) and taps broadcast from padded x
//                    (backward_weight_direct, ukernel_bw); no horizontal sums, deterministic.
//   few taps         stride 1, < 64 taps per group, kernel width ≤ 7 (first layers): weight
//                    gradient as NC channels × one kernel row's taps of 16-lane accumulators
//                    over padded x planes, fixed image blocks (backward_weight_small).
// Panel leading dimensions that are multiples of 512 bytes get one extra cache line
// (padded_ld): power-of-two strides put a micro-kernel's rows into a few L1 sets.
// Workspace: the packed weights plus per-thread panels sized by tiles, never by the batch.
// Nothing here instantiates an std:: template (see kernels/common/common.h).

#include <string.h>

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif
#if defined(_OPENMP)
#include <omp.h>
#endif

#include "common/cpu_scratch.h"
#include "conv2d/conv2d.h"

namespace PF_ISA_NS {
namespace {
using pf::i64;

inline i64 imin(i64 a, i64 b) { return a < b ? a : b; }
inline i64 imax(i64 a, i64 b) { return a > b ? a : b; }
inline i64 cdiv(i64 a, i64 b) { return (a + b - 1) / b; }
inline i64 rup(i64 a, i64 b) { return cdiv(a, b) * b; }


// ---------------------------------------------------------------- SIMD vector traits
template <class T> struct V;
#if defined(__AVX512F__)
template <> struct V<float> {
  using R = __m512;
  static constexpr int L = 16, MR = 8, NV = 2;
  static R zero() { return _mm512_setzero_ps(); }
  static R load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, R v) { _mm512_storeu_ps(p, v); }
  static R set1(float v) { return _mm512_set1_ps(v); }
  static R fma(R a, R b, R c) { return _mm512_fmadd_ps(a, b, c); }
  static R add(R a, R b) { return _mm512_add_ps(a, b); }
  static float hsum(R a) {  // (maskz forms: the plain ones trip a GCC 12 -Wmaybe-uninitialized)
    const __m256 h = _mm256_add_ps(_mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xFF, _mm512_castps_pd(a), 0)),
                                   _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xFF, _mm512_castps_pd(a), 1)));
    __m128 v = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    v = _mm_add_ps(v, _mm_movehl_ps(v, v));
    v = _mm_add_ss(v, _mm_movehdup_ps(v));
    return _mm_cvtss_f32(v);
  }
  static constexpr int DM = 4, DN = 6;
};
template <> struct V<double> {
  using R = __m512d;
  static constexpr int L = 8, MR = 8, NV = 2;
  static R zero() { return _mm512_setzero_pd(); }
  static R load(const double* p) { return _mm512_loadu_pd(p); }
  static void store(double* p, R v) { _mm512_storeu_pd(p, v); }
  static R set1(double v) { return _mm512_set1_pd(v); }
  static R fma(R a, R b, R c) { return _mm512_fmadd_pd(a, b, c); }
  static R add(R a, R b) { return _mm512_add_pd(a, b); }
  static double hsum(R a) {
    const __m256d h = _mm256_add_pd(_mm512_maskz_extractf64x4_pd(0xFF, a, 0), _mm512_maskz_extractf64x4_pd(0xFF, a, 1));
    const __m128d v = _mm_add_pd(_mm256_castpd256_pd128(h), _mm256_extractf128_pd(h, 1));
    return _mm_cvtsd_f64(_mm_add_sd(v, _mm_unpackhi_pd(v, v)));
  }
  static constexpr int DM = 4, DN = 6;
};
#elif defined(__AVX2__) && defined(__FMA__)
template <> struct V<float> {
  using R = __m256;
  static constexpr int L = 8, MR = 6, NV = 2;
  static R zero() { return _mm256_setzero_ps(); }
  static R load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, R v) { _mm256_storeu_ps(p, v); }
  static R set1(float v) { return _mm256_set1_ps(v); }
  static R fma(R a, R b, R c) { return _mm256_fmadd_ps(a, b, c); }
  static R add(R a, R b) { return _mm256_add_ps(a, b); }
  static float hsum(R a) {
    __m128 v = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    v = _mm_add_ps(v, _mm_movehl_ps(v, v));
    v = _mm_add_ss(v, _mm_movehdup_ps(v));
    return _mm_cvtss_f32(v);
  }
  static constexpr int DM = 3, DN = 4;
};
template <> struct V<double> {
  using R = __m256d;
  static constexpr int L = 4, MR = 6, NV = 2;
  static R zero() { return _mm256_setzero_pd(); }
  static R load(const double* p) { return _mm256_loadu_pd(p); }
  static void store(double* p, R v) { _mm256_storeu_pd(p, v); }
  static R set1(double v) { return _mm256_set1_pd(v); }
  static R fma(R a, R b, R c) { return _mm256_fmadd_pd(a, b, c); }
  static R add(R a, R b) { return _mm256_add_pd(a, b); }
  static double hsum(R a) {
    __m128d v = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    return _mm_cvtsd_f64(_mm_add_sd(v, _mm_unpackhi_pd(v, v)));
  }
  static constexpr int DM = 3, DN = 4;
};
#else
// Portable: one scalar per "vector"; 4×8 accumulators the compiler may keep in SSE registers.
template <class T> struct VScalar {
  using R = T;
  static constexpr int L = 1, MR = 4, NV = 8;
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
template <class T> constexpr int NR_of() { return V<T>::NV * V<T>::L; }

// Writes an MR×NR accumulator tile: C = acc (+ row_init[i] per row) or C += acc; only the
// valid m×n part.
template <class T>
inline void store_acc(typename V<T>::R (&acc)[V<T>::MR][V<T>::NV], T* __restrict c, i64 ldc, int m, int n,
                      const T* row_init, bool accumulate) {
  using VT = V<T>;
  using R = typename VT::R;
  constexpr int MR = VT::MR, NV = VT::NV, L = VT::L, NR = NV * L;
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
  using VT = V<T>;
  using R = typename VT::R;
  constexpr int MR = VT::MR, NV = VT::NV, L = VT::L;
  R acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[i][v] = VT::zero();
  // Unrolled: the loop's scalar bookkeeping otherwise lands on the two FMA ports often
  // enough to cost ~18% on Golden Cove (8×32 in L1: 185 -> 224 GFLOP/s at unroll 4).
#pragma GCC unroll 4
  for (i64 kk = 0; kk < kc; ++kk) {
    R bv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) bv[v] = VT::load(b + v * L);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const R ai = VT::set1(a[i]);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[i][v] = VT::fma(ai, bv[v], acc[i][v]);
    }
    a += MR;
    b += ldb;
  }
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
  constexpr int DM = VT::DM, DN = VT::DN, L = VT::L;
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

// ---------------------------------------------------------------- forward, direct
// AVX-512 float, stride 1, output rows of whole vectors (Q % 16 == 0): no im2col. A job
// copies the input rows its tile of output rows needs into a zero-padded buffer
// xp (Cg, rows, Wp), where tap (c, r, s) of output pixel (p, q) sits at
// xp[c][p - p0 + r·dh][q + s·dw]: the GEMM's B row for that tap over 16 consecutive pixels
// of one output row is one unaligned load at a per-tap offset off[kk] from the pixels' base.
// The B data a k-block touches (~28 channels × a few rows) stays in L1 instead of a
// 256-row im2col panel in L2. Also runs stride-1 backward-data (a forward over dy with the
// flipped, transposed weights; see backward_data).
constexpr i64 kDKC = 384;  // the direct path's reduction block (swept 64..1152 on C)
#if defined(__AVX512F__)
inline bool direct_ok(const pf::Conv2dParams& p) {
  if (p.stride_h != 1 || p.stride_w != 1 || p.Q % 16 != 0 || p.P * p.Q < 32) return false;
  const i64 rows = imax(1, 256 / p.Q) + p.dil_h * (p.R - 1), wp = p.Q + p.dil_w * (p.S - 1);
  return (p.C / p.groups) * rows * wp < (i64(1) << 30);  // int tap offsets
}

// C[m×n] (=|+=) A·B over kc; B step kk is the 32 values b0[off[kk]..+16), b1[off[kk]..+16).
inline void ukernel_taps(i64 kc, const float* __restrict a, const float* b0, const float* b1,
                         const int* __restrict off, float* __restrict c, i64 ldc, int m, int n, const float* row_init,
                         bool accumulate) {
  static_assert(V<float>::MR == 8 && V<float>::NV == 2, "AVX-512 float tile is 8×32");
  __m512 acc[8][2];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
#pragma GCC unroll 4
  for (i64 kk = 0; kk < kc; ++kk) {
    const i64 o = off[kk];
    const __m512 u = _mm512_loadu_ps(b0 + o), v = _mm512_loadu_ps(b1 + o);
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
// CS and row stride Wp (stride 1: the tap of output pixel (p, q) is at p·Wp + q + off[kk]).
inline void tap_offsets(const pf::Conv2dParams& p, i64 CS, i64 Wp, int* off) {
  const i64 RS = p.R * p.S, kred = (p.C / p.groups) * RS;
  for (i64 kk = 0; kk < kred; ++kk) {
    const i64 c = kk / RS, r = (kk % RS) / p.S, s = kk % p.S;
    off[kk] = int(c * CS + r * p.dil_h * Wp + s * p.dil_w);
  }
}

// apack: the weights packed as forward packs them, (G, mb, kred, MR).
inline void forward_direct(const float* x, const float* apack, const float* bias, float* out,
                           const pf::Conv2dParams& p) {
  constexpr int MR = 8, NR = 32;
  const i64 G = p.groups, Cg = p.C / G, Kg = p.K / G, RS = p.R * p.S, kred = Cg * RS;
  const i64 PQ = p.P * p.Q, HW = p.H * p.W, Q = p.Q, mb = cdiv(Kg, MR);
  // tiles of whole output rows, ~256 pixels; at least ~2 jobs per thread
  i64 tr = imax(1, 256 / Q);
  const i64 want = 2 * max_threads();
  if (p.N * G * cdiv(p.P, tr) < want) tr = imax(1, cdiv(p.P, cdiv(want, p.N * G)));
  const i64 tiles = cdiv(p.P, tr), jobs = p.N * G * tiles;
  const i64 Wp = Q + p.dil_w * (p.S - 1), Hr = tr + p.dil_h * (p.R - 1), CS = Hr * Wp;
  Scratch<int> off(kred);
  tap_offsets(p, CS, Wp, off.p);
  const i64 kc_max = imin(kred, kDKC);
#pragma omp parallel if (jobs > 1 && p.N * p.K * PQ * kred > 32768)
  {
    Scratch<float> xp(Cg * CS);
#pragma omp for schedule(dynamic, 1)
    for (i64 job = 0; job < jobs; ++job) {
      const i64 g = job % G, rest = job / G, ti = rest % tiles, n = rest / tiles;
      const i64 p0 = ti * tr, rows = imin(p.P, p0 + tr) - p0, hr = rows + p.dil_h * (p.R - 1);
      for (i64 c = 0; c < Cg; ++c)
        pad_rows(xp.p + c * CS, x + (n * p.C + g * Cg + c) * HW, p, p0, hr, Wp);
      const i64 npx = rows * Q;
      float* cbase = out + (n * p.K + g * Kg) * PQ + p0 * Q;
      const float* bg = bias ? bias + g * Kg : nullptr;
      const float* ag = apack + g * mb * kred * MR;
      for (i64 k0 = 0; k0 < kred; k0 += kc_max) {
        const i64 kc = imin(kc_max, kred - k0);
        for (i64 j0 = 0; j0 < npx; j0 += NR) {
          const int nn = int(imin(NR, npx - j0));
          const float* b0 = xp.p + (j0 / Q) * Wp + j0 % Q;
          const float* b1 = nn > 16 ? xp.p + ((j0 + 16) / Q) * Wp + (j0 + 16) % Q : b0;
          for (i64 ib = 0; ib < mb; ++ib) {
            const int mm = int(imin(MR, Kg - ib * MR));
            ukernel_taps(kc, ag + (ib * kred + k0) * MR, b0, b1, off.p + k0, cbase + ib * MR * PQ + j0, PQ, mm, nn,
                         bg ? bg + ib * MR : nullptr, k0 > 0);
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------- forward, Winograd F(2×2, 3×3)
// AVX-512 float, 3×3, stride 1, dilation 1, output rows of whole vectors, ≥ 32 channels in and
// out per group: each 2×2 output tile is Aᵀ[U ⊙ V]A with U = G g Gᵀ (weights) and V = Bᵀ d B
// (the tile's 4×4 input patch), so the channel sums become 16 GEMMs M_ξ (Kg × tiles) =
// U_ξ (Kg × Cg) · V_ξ (Cg × tiles): 16 multiplies per tile where direct needs 36 (2.25× fewer;
// the transforms are adds and halvings, float32 results stay within a few ulps of the
// direct sums' error). Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2016).
//   Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]   G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1]
//   Aᵀ = [1 1 1 0; 0 1 -1 -1]
// A job is a band of tile rows of one image and group; its tiles are chunks of 8 along a row
// (16 output columns, an 18-column input window of the zero-padded rows), two chunks per
// vector, transformed with lane permutes; U is packed once per call like forward's weights.
constexpr i64 kWinoCols = 128;  // tiles per job (V: 16 × Cg × tiles floats, L2-resident)
inline i64 winograd_band(const pf::Conv2dParams& p) {  // tile rows per job; 0: not this path
  const i64 Cg = p.C / p.groups, Kg = p.K / p.groups;
  if (p.R != 3 || p.S != 3 || p.stride_h != 1 || p.stride_w != 1 || p.dil_h != 1 || p.dil_w != 1) return 0;
  if (p.Q % 16 != 0 || p.P % 2 != 0 || Cg < 32 || Kg < 32) return 0;
  if (i64(p.C) * (p.P + 2) * (p.Q + 2) >= (i64(1) << 31)) return 0;
  // workspace bounds: U (16·K·Cg floats) ≤ 16 MiB; a thread's V + M (16·(Cg + Kg)·tiles) ≤ 4 MiB
  if (16 * p.K * Cg > (i64(1) << 22)) return 0;
  const i64 Pt = p.P / 2, nch = p.Q / 16, cmax = imin(kWinoCols, (i64(1) << 16) / (Cg + rup(Kg, 8)));
  for (i64 bt = Pt; bt >= 1; --bt)  // whole 32-tile panels, bands that divide the tile rows
    if (Pt % bt == 0 && bt * nch % 4 == 0 && bt * nch * 8 <= cmax) return bt;
  return 0;
}

// V = Bᵀ d B of a channel's tiles, 16 a vector (two chunks of 8 tiles along a row): xc is the
// zero-padded channel (rows of Wp = Q + 2, tile row i at rows 2i..2i+3), tiles in row-major
// order; plane ξ of vector v at vo[ξ·xs + 16v].
inline void winograd_input_tiles(const float* xc, i64 Wp, i64 nch, i64 nvec, float* vo, i64 xs) {
  // lanes 0..7 pick input columns 2l + m of one chunk, lanes 8..15 the same of the next
  const __m512i pick0 = _mm512_set_epi32(14, 12, 10, 8, 6, 4, 2, 0, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i one = _mm512_set1_epi32(1);
  for (i64 v = 0; v < nvec; ++v, vo += 16) {
    const float* ba = xc + (2 * v / nch) * 2 * Wp + (2 * v % nch) * 16;
    const float* bb = xc + ((2 * v + 1) / nch) * 2 * Wp + ((2 * v + 1) % nch) * 16;
    __m512 e[4][4];
    for (int r = 0; r < 4; ++r) {
      const __m512 la = _mm512_loadu_ps(ba + r * Wp), ha = _mm512_maskz_loadu_ps(0x3, ba + r * Wp + 16);
      const __m512 lb = _mm512_loadu_ps(bb + r * Wp), hb = _mm512_maskz_loadu_ps(0x3, bb + r * Wp + 16);
      __m512 d[4];
      __m512i idx = pick0;
      for (int m = 0; m < 4; ++m, idx = _mm512_add_epi32(idx, one))
        d[m] = _mm512_mask_blend_ps(0xFF00, _mm512_permutex2var_ps(la, idx, ha), _mm512_permutex2var_ps(lb, idx, hb));
      e[r][0] = _mm512_sub_ps(d[0], d[2]);
      e[r][1] = _mm512_add_ps(d[1], d[2]);
      e[r][2] = _mm512_sub_ps(d[2], d[1]);
      e[r][3] = _mm512_sub_ps(d[1], d[3]);
    }
    for (int j = 0; j < 4; ++j) {
      _mm512_storeu_ps(vo + (0 + j) * xs, _mm512_sub_ps(e[0][j], e[2][j]));
      _mm512_storeu_ps(vo + (4 + j) * xs, _mm512_add_ps(e[1][j], e[2][j]));
      _mm512_storeu_ps(vo + (8 + j) * xs, _mm512_sub_ps(e[2][j], e[1][j]));
      _mm512_storeu_ps(vo + (12 + j) * xs, _mm512_sub_ps(e[1][j], e[3][j]));
    }
  }
}

inline void forward_winograd(const float* x, const float* w, const float* bias, float* out,
                             const pf::Conv2dParams& p, i64 bt) {
  constexpr int MR = 8, NR = 32;
  const i64 G = p.groups, Cg = p.C / G, Kg = p.K / G, mb = cdiv(Kg, MR), HW = p.H * p.W, PQ = p.P * p.Q;
  const i64 Q = p.Q, nch = Q / 16, bands = p.P / 2 / bt, cols = bt * nch * 8, ld = padded_ld<float>(cols);
  const i64 Wp = Q + 2, Hr = 2 * bt + 2, CS = Hr * Wp;
  // U packed (16, G, mb, Cg, MR): U_ξ[k][c] at ((ξ·G + g)·mb + k / MR)·Cg·MR + c·MR + k % MR
  Scratch<float> U(16 * G * mb * Cg * MR);
#pragma omp parallel for schedule(static) if (G * Kg * Cg > 4096)
  for (i64 gb = 0; gb < G * mb; ++gb) {
    for (int i = 0; i < MR; ++i) {
      const i64 k = gb % mb * MR + i;
      for (i64 c = 0; c < Cg; ++c) {
        float u[16] = {};
        if (k < Kg) {
          const float* g9 = w + ((gb / mb * Kg + k) * Cg + c) * 9;
          float t[4][3];
          for (int s = 0; s < 3; ++s) {
            t[0][s] = g9[s];
            t[1][s] = 0.5f * (g9[s] + g9[3 + s] + g9[6 + s]);
            t[2][s] = 0.5f * (g9[s] - g9[3 + s] + g9[6 + s]);
            t[3][s] = g9[6 + s];
          }
          for (int r = 0; r < 4; ++r) {
            u[4 * r + 0] = t[r][0];
            u[4 * r + 1] = 0.5f * (t[r][0] + t[r][1] + t[r][2]);
            u[4 * r + 2] = 0.5f * (t[r][0] - t[r][1] + t[r][2]);
            u[4 * r + 3] = t[r][2];
          }
        }
        for (int xi = 0; xi < 16; ++xi) U.p[((xi * G * mb + gb) * Cg + c) * MR + i] = u[xi];
      }
    }
  }
  const i64 jobs = p.N * G * bands;
  const __m512i zip_lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512i zip_hi = _mm512_add_epi32(zip_lo, _mm512_set1_epi32(8));
#pragma omp parallel if (jobs > 1)
  {
    Scratch<float> xp(Cg * CS), V(16 * Cg * ld), M(16 * mb * MR * ld);
#pragma omp for schedule(dynamic, 1)
    for (i64 job = 0; job < jobs; ++job) {
      const i64 g = job % G, rest = job / G, n = rest / bands, p0 = rest % bands * bt * 2;
      for (i64 c = 0; c < Cg; ++c) pad_rows(xp.p + c * CS, x + (n * p.C + g * Cg + c) * HW, p, p0, Hr, Wp);
      // V_ξ (Cg × cols) = Bᵀ d B
      for (i64 c = 0; c < Cg; ++c) winograd_input_tiles(xp.p + c * CS, Wp, nch, cols / 16, V.p + c * ld, Cg * ld);
      // M_ξ = U_ξ · V_ξ
      for (int xi = 0; xi < 16; ++xi) {
        const float* ug = U.p + (xi * G + g) * mb * Cg * MR;
        const float* vx = V.p + xi * Cg * ld;
        float* mx = M.p + xi * mb * MR * ld;
        for (i64 j0 = 0; j0 < cols; j0 += NR)
          for (i64 ib = 0; ib < mb; ++ib)
            ukernel<float>(Cg, ug + ib * Cg * MR, vx + j0, ld, mx + ib * MR * ld + j0, ld, MR, NR, nullptr, false);
      }
      // out = Aᵀ M A (+ bias), two output rows of 16 columns per chunk
      const i64 xs = mb * MR * ld;
      for (i64 k = 0; k < Kg; ++k) {
        const __m512 bk = _mm512_set1_ps(bias ? bias[g * Kg + k] : 0.f);
        float* ok = out + (n * p.K + g * Kg + k) * PQ + p0 * Q;
        for (i64 v = 0; v < cols / 16; ++v) {
          const float* mk = M.p + k * ld + 16 * v;
          __m512 t[2][4];
          for (int j = 0; j < 4; ++j) {
            const __m512 m0 = _mm512_loadu_ps(mk + j * xs), m1 = _mm512_loadu_ps(mk + (4 + j) * xs);
            const __m512 m2 = _mm512_loadu_ps(mk + (8 + j) * xs), m3 = _mm512_loadu_ps(mk + (12 + j) * xs);
            t[0][j] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
            t[1][j] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
          }
          for (int i = 0; i < 2; ++i) {
            const __m512 y0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(t[i][0], t[i][1]), t[i][2]), bk);
            const __m512 y1 = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(t[i][1], t[i][2]), t[i][3]), bk);
            const i64 ca = 2 * v, cb = 2 * v + 1;  // chunks: (tile row, 16-column block)
            _mm512_storeu_ps(ok + (2 * (ca / nch) + i) * Q + ca % nch * 16, _mm512_permutex2var_ps(y0, zip_lo, y1));
            _mm512_storeu_ps(ok + (2 * (cb / nch) + i) * Q + cb % nch * 16, _mm512_permutex2var_ps(y0, zip_hi, y1));
          }
        }
      }
    }
  }
}
#endif

// ---------------------------------------------------------------- forward
template <class T>
void forward(const T* x, const T* w, const T* bias, T* out, const pf::Conv2dParams& p) {
  constexpr int MR = MR_of<T>(), NR = NR_of<T>();
  const i64 G = p.groups, Cg = p.C / G, Kg = p.K / G, RS = p.R * p.S, kred = Cg * RS;
  const i64 PQ = p.P * p.Q, HW = p.H * p.W;
  if (p.N == 0) return;
#if defined(__AVX512F__)
  if (sizeof(T) == 4) {
    if (const i64 bt = winograd_band(p)) {
      forward_winograd(reinterpret_cast<const float*>(x), reinterpret_cast<const float*>(w),
                       reinterpret_cast<const float*>(bias), reinterpret_cast<float*>(out), p, bt);
      return;
    }
  }
#endif
  const i64 mb = cdiv(Kg, MR);
  // weights packed once: (G, mb, kred, MR)
  // (pack_a writes every element, zero rows included; one job per MR-row panel)
  Scratch<T> apack(G * mb * kred * MR);
#pragma omp parallel for schedule(static) if (G * Kg * kred > 65536)
  for (i64 gb = 0; gb < G * mb; ++gb) {
    const i64 g = gb / mb, ib = gb % mb;
    pack_a(w + (g * Kg + ib * MR) * kred, kred, 1, imin(MR, Kg - ib * MR), kred, apack.p + gb * kred * MR, kred, 0);
  }
#if defined(__AVX512F__)
  if (sizeof(T) == 4 && direct_ok(p)) {
    forward_direct(reinterpret_cast<const float*>(x), reinterpret_cast<const float*>(apack.p),
                   reinterpret_cast<const float*>(bias), reinterpret_cast<float*>(out), p);
    return;
  }
#endif
  TapTable tab(p, sizeof(T) == 4);

  const i64 kc_max = imin(kred, kKC);
  // the packed B block (kc × columns) around 256 KiB (L2)
  const Tiling tl = make_tiling<T>(p.N, PQ, (i64(256) * 1024 / i64(sizeof(T))) / kc_max, G);
  const i64 cols_max = tl.ipt > 1 ? tl.ipt * PQ : tl.nc, ldb = padded_ld<T>(rup(cols_max, NR));
  const i64 jobs = G * tl.count;
#pragma omp parallel if (jobs > 1 && p.N * p.K * PQ * kred > 32768)
  {
    Scratch<T> bbuf(kc_max * ldb, true);
    Scratch<T> ctile(tl.ipt > 1 ? mb * MR * ldb : 0, true);
#pragma omp for schedule(dynamic, 1)
    for (i64 job = 0; job < jobs; ++job) {
      const i64 g = job % G, ti = job / G;
      i64 n0, n1, t0, t1;
      tl.tile(ti, n0, n1, t0, t1);
      const i64 seg = t1 - t0, nt = (n1 - n0) * seg;
      // one image: write straight into out; several: into ctile, copied out per image
      T* cbase = tl.ipt > 1 ? ctile.p : out + (n0 * p.K + g * Kg) * PQ + t0;
      const i64 ldc = tl.ipt > 1 ? ldb : PQ;
      const T* bg = bias ? bias + g * Kg : nullptr;
      const T* ag = apack.p + g * mb * kred * MR;
      for (i64 k0 = 0; k0 < kred; k0 += kc_max) {
        const i64 kc = imin(kc_max, kred - k0);
        if (tab.off && n1 - n0 > 1)
          im2col_rows_images(x + (n0 * p.C + g * Cg) * HW, p.C * HW, n1 - n0, p, tab.off, k0, k0 + kc, bbuf.p, ldb);
        else
          for (i64 n = n0; n < n1; ++n)
            im2col_rows(x + (n * p.C + g * Cg) * HW, p, tab.off, k0, k0 + kc, t0, t1, bbuf.p + (n - n0) * seg, ldb);
        for (i64 j0 = 0; j0 < nt; j0 += NR) {
          const int nn = int(imin(NR, nt - j0));
          for (i64 ib = 0; ib < mb; ++ib) {
            const int mm = int(imin(MR, Kg - ib * MR));
            ukernel<T>(kc, ag + (ib * kred + k0) * MR, bbuf.p + j0, ldb, cbase + ib * MR * ldc + j0, ldc, mm, nn,
                       bg ? bg + ib * MR : nullptr, k0 > 0);
          }
        }
      }
      if (tl.ipt > 1) {
        for (i64 n = n0; n < n1; ++n)
          for (i64 m = 0; m < Kg; ++m)
            memcpy(out + (n * p.K + g * Kg + m) * PQ, ctile.p + m * ldb + (n - n0) * PQ, size_t(PQ) * sizeof(T));
      }
    }
  }
}

// ---------------------------------------------------------------- backward-data, by phases
// Stride s > 1, dilation 1: dx rows h = s·i + a (phase a) only receive taps r ≡ a + pad (mod s),
// so each of the s_h·s_w phases of dx is a stride-1 forward convolution of dy with a sub-kernel
// of the flipped, transposed weights (k4 s2: four 2×2 kernels). A job runs every phase's GEMM
// for a few whole images into L2-resident tiles, then writes the images' dx channels
// interleaved, once, in order: the multiply-adds of the GEMM + col2im path without its
// scatter-add (and small phase images, 8×8 → 4×4, take the forward's register gather).
//   taps r = r0 + s·t (t < taps); dx row s·i + a and tap t read dy row i + e − t, which as a
//   forward over dy with t' = taps − 1 − t is row i − pad + t' with pad = taps − 1 − e.
struct Phase {
  i64 r0, taps, pad, out;  // first tap, taps, the forward's leading pad, dx rows of the phase
};
inline Phase phase_of(i64 a, i64 stride, i64 pad, i64 R, i64 H) {
  Phase f;
  f.r0 = (a + pad) % stride;
  f.taps = f.r0 < R ? cdiv(R - f.r0, stride) : 0;
  f.pad = f.taps - 1 - (a + pad - f.r0) / stride;
  f.out = a < H ? cdiv(H - a, stride) : 0;
  return f;
}

// Returns false (nothing written) where the general path is used instead: dilation, a pad
// beyond the kernel's reach (a phase would need a negative pad), or per-job tiles over ~1 MiB.
template <class T>
bool backward_data_phases(const T* dy, const T* w, T* dx, const pf::Conv2dParams& p) {
  constexpr int MR = MR_of<T>(), NR = NR_of<T>();
  if (p.dil_h != 1 || p.dil_w != 1 || p.N == 0) return false;
  const i64 G = p.groups, Cg = p.C / G, Kg = p.K / G, RS = p.R * p.S, HW = p.H * p.W, PQ = p.P * p.Q;
  const i64 sh = p.stride_h, sw = p.stride_w, nph = sh * sw, mb = cdiv(Cg, MR);
  // phase ph = a·sw + b: its forward's parameters (taps == 0: no tap reaches it, dx is 0 there)
  Scratch<pf::Conv2dParams> qs(nph);
  Scratch<i64> aofs(nph + 1);  // offsets of the phases' packed weights
  i64 opq_max = 1, kred_max = 1;
  aofs.p[0] = 0;
  for (i64 ph = 0; ph < nph; ++ph) {
    const Phase fa = phase_of(ph / sw, sh, p.pad_top, p.R, p.H), fb = phase_of(ph % sw, sw, p.pad_left, p.S, p.W);
    if (fa.out == 0 || fb.out == 0) return false;  // (an input narrower than the stride)
    const bool live = fa.taps > 0 && fb.taps > 0;
    if (live && (fa.pad < 0 || fb.pad < 0)) return false;
    pf::Conv2dParams& q = qs.p[ph];
    q = p;
    q.C = p.K; q.H = p.P; q.W = p.Q; q.K = p.C;
    q.R = live ? fa.taps : 0; q.S = live ? fb.taps : 0; q.P = fa.out; q.Q = fb.out;
    q.stride_h = q.stride_w = 1;
    q.pad_top = fa.pad; q.pad_left = fb.pad;
    q.pad_bottom = imax(0, fa.out + fa.taps - 2 - fa.pad - (p.P - 1));  // informative
    q.pad_right = imax(0, fb.out + fb.taps - 2 - fb.pad - (p.Q - 1));
    opq_max = imax(opq_max, q.P * q.Q);
    kred_max = imax(kred_max, Kg * q.R * q.S);
    aofs.p[ph + 1] = aofs.p[ph] + G * mb * Kg * q.R * q.S * MR;
  }
  // whole images per job, ~256 phase pixels, at least ~2 jobs per thread
  const i64 want = 2 * max_threads();
  i64 ipt = imax(1, 256 / opq_max);
  if (G * cdiv(p.N, ipt) < want) ipt = imax(1, cdiv(p.N, cdiv(want, G)));
  const i64 ldb = padded_ld<T>(rup(ipt * opq_max, NR)), kc_max = imin(kred_max, kKC);
  if (nph * mb * MR * ldb * i64(sizeof(T)) > (i64(1) << 20)) return false;
  // packed weights per phase, (G, mb, Kg·taps_a·taps_b, MR): row c, step (k, t', u') =
  // w[g·Kg + k][c][r0_a + s_h·(taps_a − 1 − t')][r0_b + s_w·(taps_b − 1 − u')]
  Scratch<T> apack(aofs.p[nph]);
#pragma omp parallel for schedule(static) if (p.K * Cg * RS > 65536)
  for (i64 pgb = 0; pgb < nph * G * mb; ++pgb) {
    const i64 ph = pgb / (G * mb), g = pgb / mb % G, ib = pgb % mb;
    const pf::Conv2dParams& q = qs.p[ph];
    const i64 kq = Kg * q.R * q.S, ra = (q.R - 1) * sh + (p.pad_top + ph / sw) % sh, sb = (q.S - 1) * sw + (p.pad_left + ph % sw) % sw;
    T* d = apack.p + aofs.p[ph] + (g * mb + ib) * kq * MR;
    for (i64 kk = 0; kk < kq; ++kk) {
      const i64 k = kk / (q.R * q.S), t = kk / q.S % q.R, u = kk % q.S;
      const T* wk = w + (g * Kg + k) * Cg * RS + (ra - sh * t) * p.S + (sb - sw * u);
      for (int i = 0; i < MR; ++i) {
        const i64 c = ib * MR + i;
        d[kk * MR + i] = c < Cg ? wk[c * RS] : T(0);
      }
    }
  }
  TapTable** tabs = new TapTable*[nph];
  for (i64 ph = 0; ph < nph; ++ph) tabs[ph] = qs.p[ph].R > 0 ? new TapTable(qs.p[ph], sizeof(T) == 4) : nullptr;
  const i64 tiles = cdiv(p.N, ipt), jobs = G * tiles;
#pragma omp parallel if (jobs > 1 && p.N * p.K * PQ * Cg * RS > 32768)
  {
    Scratch<T> bbuf(kc_max * ldb, true);
    Scratch<T> ctile(nph * mb * MR * ldb, true);
#pragma omp for schedule(dynamic, 1)
    for (i64 job = 0; job < jobs; ++job) {
      const i64 g = job % G, n0 = job / G * ipt, n1 = imin(p.N, n0 + ipt);
      for (i64 ph = 0; ph < nph; ++ph) {
        const pf::Conv2dParams& q = qs.p[ph];
        if (q.R == 0) continue;
        const i64 opq = q.P * q.Q, nt = (n1 - n0) * opq, kq = Kg * q.R * q.S;
        const int* tab = tabs[ph]->off;
        T* ct = ctile.p + ph * mb * MR * ldb;
        const T* ag = apack.p + aofs.p[ph] + g * mb * kq * MR;
        for (i64 k0 = 0; k0 < kq; k0 += kc_max) {
          const i64 kc = imin(kc_max, kq - k0);
          if (tab && n1 - n0 > 1)
            im2col_rows_images(dy + (n0 * p.K + g * Kg) * PQ, p.K * PQ, n1 - n0, q, tab, k0, k0 + kc, bbuf.p, ldb);
          else
            for (i64 n = n0; n < n1; ++n)
              im2col_rows(dy + (n * p.K + g * Kg) * PQ, q, tab, k0, k0 + kc, 0, opq, bbuf.p + (n - n0) * opq, ldb);
          for (i64 j0 = 0; j0 < nt; j0 += NR) {
            const int nn = int(imin(NR, nt - j0));
            for (i64 ib = 0; ib < mb; ++ib)
              ukernel<T>(kc, ag + (ib * kq + k0) * MR, bbuf.p + j0, ldb, ct + ib * MR * ldb + j0, ldb,
                         int(imin(MR, Cg - ib * MR)), nn, nullptr, k0 > 0);
          }
        }
      }
      // dx channel by channel, all phases interleaved: each dx line is written once
      for (i64 n = n0; n < n1; ++n)
        for (i64 c = 0; c < Cg; ++c) {
          T* d = dx + (n * p.C + g * Cg + c) * HW;
#if defined(__AVX512F__)
          if (sizeof(T) == 4 && sw == 2 && p.W <= 16) {  // a dx row is one vector: two phase rows, zipped
            const __m512i zip = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
            const __mmask16 mrow = __mmask16((1u << p.W) - 1u);
            for (i64 a = 0; a < sh; ++a) {
              const pf::Conv2dParams &q0 = qs.p[a * 2], &q1 = qs.p[a * 2 + 1];
              const __mmask16 m0 = __mmask16((1u << q0.Q) - 1u), m1 = __mmask16((1u << q1.Q) - 1u);
              const float* s0 = reinterpret_cast<const float*>(ctile.p + (a * 2) * mb * MR * ldb + c * ldb) + (n - n0) * q0.P * q0.Q;
              const float* s1 = reinterpret_cast<const float*>(ctile.p + (a * 2 + 1) * mb * MR * ldb + c * ldb) + (n - n0) * q1.P * q1.Q;
              for (i64 i = 0; i < q0.P; ++i) {
                const __m512 u = q0.R ? _mm512_maskz_loadu_ps(m0, s0 + i * q0.Q) : _mm512_setzero_ps();
                const __m512 v = q1.R ? _mm512_maskz_loadu_ps(m1, s1 + i * q1.Q) : _mm512_setzero_ps();
                _mm512_mask_storeu_ps(reinterpret_cast<float*>(d) + (sh * i + a) * p.W, mrow, _mm512_permutex2var_ps(u, zip, v));
              }
            }
            continue;
          }
#endif
          for (i64 ph = 0; ph < nph; ++ph) {
            const pf::Conv2dParams& q = qs.p[ph];
            const i64 a = ph / sw, b = ph % sw, opq = q.P * q.Q;
            const T* src = ctile.p + ph * mb * MR * ldb + c * ldb + (n - n0) * opq;
            for (i64 i = 0; i < q.P; ++i) {
              T* drow = d + (sh * i + a) * p.W + b;
              if (q.R == 0)
                for (i64 j = 0; j < q.Q; ++j) drow[j * sw] = T(0);
              else
                for (i64 j = 0; j < q.Q; ++j) drow[j * sw] = src[i * q.Q + j];
            }
          }
        }
    }
  }
  for (i64 ph = 0; ph < nph; ++ph) delete tabs[ph];
  delete[] tabs;
  return true;
}

// ---------------------------------------------------------------- backward-data
template <class T>
void backward_data(const T* dy, const T* w, T* dx, const pf::Conv2dParams& p) {
  constexpr int MR = MR_of<T>(), NR = NR_of<T>();
  const i64 G = p.groups, Cg = p.C / G, Kg = p.K / G, RS = p.R * p.S, kred = Cg * RS;
  const i64 PQ = p.P * p.Q, HW = p.H * p.W;
  if (p.N == 0) return;
#if defined(__AVX512F__)
  // Stride 1: dx is the forward convolution of dy with the flipped, transposed weights
  // (dx[c, h, w] = Σ dy[k, h + pt − r·dh, w + pl − s·dw] · w[k, c, r, s]) — the forward's
  // Winograd or direct path, with no col2im, when dx rows are whole vectors and the pads are
  // inside the kernel extent.
  if (sizeof(T) == 4 && p.stride_h == 1 && p.stride_w == 1) {
    pf::Conv2dParams q = p;
    q.C = p.K; q.H = p.P; q.W = p.Q; q.K = p.C; q.P = p.H; q.Q = p.W;
    q.pad_top = p.dil_h * (p.R - 1) - p.pad_top;
    q.pad_left = p.dil_w * (p.S - 1) - p.pad_left;
    if (q.pad_top >= 0 && q.pad_left >= 0 && (winograd_band(q) || direct_ok(q))) {
      // flipped, transposed weights (C, Kg, R, S): w'[g·Cg + c][k][r][s] = w[g·Kg + k][c][R−1−r][S−1−s]
      Scratch<T> wq(p.C * Kg * RS);
#pragma omp parallel for schedule(static) if (G * Kg * kred > 65536)
      for (i64 gc = 0; gc < p.C; ++gc)
        for (i64 k = 0; k < Kg; ++k)
          for (i64 rs = 0; rs < RS; ++rs)
            wq.p[(gc * Kg + k) * RS + rs] = w[((gc / Cg * Kg + k) * Cg + gc % Cg) * RS + RS - 1 - rs];
      forward(dy, wq.p, static_cast<const T*>(nullptr), dx, q);  // takes the Winograd or direct path
      return;
    }
  }
#endif
  if ((p.stride_h > 1 || p.stride_w > 1) && backward_data_phases(dy, w, dx, p)) return;
  // Channel blocks: a job owns dx[images, block] (no races, no atomics). Split channels
  // only when images × groups cannot feed the threads; bound the dcol rows of a block.
  i64 cb = Cg;
  const i64 want = 2 * max_threads();
  if (p.N * G < want) cb = cdiv(Cg, cdiv(want, p.N * G));
  cb = imax(1, imin(cb, imax(1, 4096 / RS)));
  const i64 nblk = cdiv(Cg, cb);
  const i64 rows_max = cb * RS, mb_max = cdiv(rows_max, MR);
  // Wᵀ packed per (group, channel block): rows (c, r, s) of the block, reduction k.
  const i64 blk_stride = mb_max * Kg * MR;
  Scratch<T> apack(G * nblk * blk_stride, true);
#pragma omp parallel for schedule(static) if (G * Kg * kred > 65536)
  for (i64 gb = 0; gb < G * nblk; ++gb) {
    const i64 g = gb / nblk, bi = gb % nblk, c0 = bi * cb, rows = (imin(Cg, c0 + cb) - c0) * RS;
    pack_a(w + g * Kg * kred + c0 * RS, 1, kred, rows, Kg, apack.p + gb * blk_stride, Kg, 0);
  }
  TapTable tab(p, sizeof(T) == 4);
  const i64 kc_max = imin(Kg, kKC);
  // dcol tile (rows × columns) around 512 KiB. A job covers whole images (all their pixel
  // tiles) so that it owns the dx rows it scatters into.
  const Tiling tl = make_tiling<T>(p.N, PQ, (i64(512) * 1024 / i64(sizeof(T))) / imax(rows_max, 1), G * nblk);
  const i64 cols_max = tl.ipt > 1 ? tl.ipt * PQ : tl.nc, ldb = padded_ld<T>(rup(cols_max, NR));
  const i64 img_jobs = tl.ipt > 1 ? tl.count : p.N;
  const i64 jobs = img_jobs * G * nblk;
#pragma omp parallel if (jobs > 1 && p.N * p.K * PQ * kred > 32768)
  {
    Scratch<T> bbuf(kc_max * ldb, true);
    Scratch<T> dcol(mb_max * MR * ldb, true);
#pragma omp for schedule(dynamic, 1)
    for (i64 job = 0; job < jobs; ++job) {
      const i64 bi = job % nblk, rest = job / nblk, g = rest % G, ij = rest / G;
      const i64 c0 = bi * cb, c1 = imin(Cg, c0 + cb), rows = (c1 - c0) * RS, mb = cdiv(rows, MR);
      const i64 na = tl.ipt > 1 ? ij * tl.ipt : ij, nb = tl.ipt > 1 ? imin(p.N, na + tl.ipt) : ij + 1;
      for (i64 n = na; n < nb; ++n) {
        T* dxb = dx + (n * p.C + g * Cg + c0) * HW;
        for (i64 i = 0; i < (c1 - c0) * HW; ++i) dxb[i] = T(0);
      }
      const i64 tiles = tl.ipt > 1 ? 1 : tl.per_img;
      for (i64 tt = 0; tt < tiles; ++tt) {
        i64 n0, n1, t0, t1;
        tl.tile(tl.ipt > 1 ? ij : ij * tl.per_img + tt, n0, n1, t0, t1);
        const i64 seg = t1 - t0, nt = (n1 - n0) * seg;
        for (i64 k0 = 0; k0 < Kg; k0 += kc_max) {
          const i64 kc = imin(kc_max, Kg - k0);
          for (i64 n = n0; n < n1; ++n) {
            const T* dyn = dy + (n * p.K + g * Kg + k0) * PQ + t0;
            for (i64 kk = 0; kk < kc; ++kk)
              memcpy(bbuf.p + kk * ldb + (n - n0) * seg, dyn + kk * PQ, size_t(seg) * sizeof(T));
          }
          const T* ab = apack.p + (g * nblk + bi) * blk_stride;
          for (i64 j0 = 0; j0 < nt; j0 += NR) {
            const int nn = int(imin(NR, nt - j0));
            for (i64 ib = 0; ib < mb; ++ib) {
              const int mm = int(imin(MR, rows - ib * MR));
              ukernel<T>(kc, ab + (ib * Kg + k0) * MR, bbuf.p + j0, ldb, dcol.p + ib * MR * ldb + j0, ldb, mm, nn,
                         nullptr, k0 > 0);
            }
          }
        }
        for (i64 n = n0; n < n1; ++n)
          col2im_rows(dx + (n * p.C + g * Cg + c0) * HW, p, tab.off, 0, rows, t0, t1, dcol.p + (n - n0) * seg, ldb);
      }
    }
  }
}

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
  tap_offsets(p, CS, Wp, off.p);
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
// ---------------------------------------------------------------- backward-weight, Winograd
// The transpose of forward_winograd: dg = Gᵀ [Σ_tiles (A dy Aᵀ) ⊙ (Bᵀ d B)] G, so per ξ a GEMM
// dU_ξ (Cg × Kg, stored transposed) = Σ_t V_ξ[c][t] · Ŷ_ξ[t][k] over every 2×2 output tile t,
// 16 multiplies per tile where direct needs 36. A job takes a fixed block of images (at most 8
// blocks, whatever the thread count) and, image by image, computes V (as in the forward,
// tile-contiguous per channel) and Ŷ = A dy Aᵀ (16 output channels a vector, gathered down the
// channels, stored tile-major in 32-channel blocks) into L2-sized buffers, then accumulates the
// block's own dU with the outer-product micro-kernel of the direct weight gradient (V
// broadcast, Ŷ as vectors). The blocks' dU are summed in block order at the end: the bits do
// not depend on the thread count.
//   A = [1 0; 1 1; 1 -1; 0 -1]   Gᵀ = [1 ½ ½ 0; 0 ½ -½ 0; 0 ½ ½ 1]
inline i64 winograd_bw_blocks(const pf::Conv2dParams& p) {  // image blocks; 0: not this path
  const i64 Cg = p.C / p.groups, Kg = p.K / p.groups;
  if (p.R != 3 || p.S != 3 || p.stride_h != 1 || p.stride_w != 1 || p.dil_h != 1 || p.dil_w != 1) return 0;
  if (p.Q % 16 != 0 || p.P % 2 != 0 || (p.P / 2 * (p.Q / 16)) % 2 != 0 || Kg % 32 != 0 || Cg < 32) return 0;
  if (p.N < 1 || p.P * p.Q * p.K >= (i64(1) << 31)) return 0;
  const i64 nblk = imin(p.N, 8), per_img = 16 * (p.C + p.K) * (p.P / 2) * (p.Q / 2);
  // one image's transforms and one block's dU about L2-sized; all blocks' dU bounded
  if (per_img > (i64(1) << 19) || 16 * p.C * Kg > (i64(1) << 19) || nblk * 16 * p.C * Kg > (i64(1) << 23)) return 0;
  return nblk;
}

inline void backward_weight_winograd(const float* x, const float* dy, float* dw, const pf::Conv2dParams& p,
                                     i64 nblk) {
  const i64 G = p.groups, Cg = p.C / G, Kg = p.K / G, HW = p.H * p.W, PQ = p.P * p.Q, Q = p.Q;
  const i64 Wp = Q + 2, Hp = p.P + 2, nch = Q / 16, Ti = p.P / 2 * (Q / 2), kb_all = p.K / 32;
  const i64 bsz = cdiv(p.N, nblk), nb = cdiv(p.N, bsz), usz = 16 * p.C * Kg;  // dU: (ξ, G, Cg, Kg)
  Scratch<float> dU(nb * usz);
  const __m512i chan = lane_multiples(PQ);  // 16 channels of dy
#pragma omp parallel if (nb > 1 && p.N * p.K * PQ * Cg * 9 > 32768)
  {
    Scratch<float> xp(Hp * Wp), V(16 * p.C * Ti), Y(16 * p.K * Ti);
#pragma omp for schedule(dynamic, 1)
    for (i64 blk = 0; blk < nb; ++blk) {
      float* du = dU.p + blk * usz;
      for (i64 n = blk * bsz; n < imin(p.N, blk * bsz + bsz); ++n) {
        for (i64 c = 0; c < p.C; ++c) {  // V[ξ][c][t]
          pad_rows(xp.p, x + (n * p.C + c) * HW, p, 0, Hp, Wp);
          winograd_input_tiles(xp.p, Wp, nch, Ti / 16, V.p + c * Ti, p.C * Ti);
        }
        const i64 ys = kb_all * Ti * 32;  // Y[ξ][k / 32][t][k % 32], ξ stride
        for (i64 k0 = 0; k0 < p.K; k0 += 16) {
          const float* src = dy + (n * p.K + k0) * PQ;
          float* yo = Y.p + (k0 / 32) * Ti * 32 + k0 % 32;
          const __m512 zero = _mm512_setzero_ps();
          for (i64 t = 0; t < Ti; ++t, yo += 32) {
            const float* s0 = src + (t / (Q / 2)) * 2 * Q + (t % (Q / 2)) * 2;
            const __m512 a = _mm512_mask_i32gather_ps(zero, 0xFFFF, chan, s0, 4);
            const __m512 b = _mm512_mask_i32gather_ps(zero, 0xFFFF, chan, s0 + 1, 4);
            const __m512 c = _mm512_mask_i32gather_ps(zero, 0xFFFF, chan, s0 + Q, 4);
            const __m512 d = _mm512_mask_i32gather_ps(zero, 0xFFFF, chan, s0 + Q + 1, 4);
            const __m512 r[4][2] = {{a, b}, {_mm512_add_ps(a, c), _mm512_add_ps(b, d)},
                                    {_mm512_sub_ps(a, c), _mm512_sub_ps(b, d)}, {_mm512_sub_ps(zero, c), _mm512_sub_ps(zero, d)}};
            for (int ii = 0; ii < 4; ++ii) {
              _mm512_storeu_ps(yo + (4 * ii + 0) * ys, r[ii][0]);
              _mm512_storeu_ps(yo + (4 * ii + 1) * ys, _mm512_add_ps(r[ii][0], r[ii][1]));
              _mm512_storeu_ps(yo + (4 * ii + 2) * ys, _mm512_sub_ps(r[ii][0], r[ii][1]));
              _mm512_storeu_ps(yo + (4 * ii + 3) * ys, _mm512_sub_ps(zero, r[ii][1]));
            }
          }
        }
        // du_ξ[c][k] (+)= Σ_t V_ξ[c][t] · Ŷ_ξ[t][k]
        const bool acc = n > blk * bsz;
        for (int xi = 0; xi < 16; ++xi)
          for (i64 g = 0; g < G; ++g)
            for (i64 kb = 0; kb < Kg / 32; ++kb) {
              const float* a = Y.p + (xi * kb_all + g * Kg / 32 + kb) * Ti * 32;
              float* cu = du + ((xi * G + g) * Cg) * Kg + kb * 32;
              for (i64 c = 0; c < Cg; c += 8) {
                const int nj = int(imin(8, Cg - c));
                const float* bp[8];
                for (int j = 0; j < nj; ++j) bp[j] = V.p + (xi * p.C + g * Cg + c + j) * Ti;
                ukernel_bw(a, 32, bp, nj, 1, Ti, Ti, cu + c * Kg, Kg, acc);
              }
            }
      }
    }
  }
  for (i64 blk = 1; blk < nb; ++blk) {  // in block order
    const float* src = dU.p + blk * usz;
#pragma omp parallel for schedule(static) if (usz > 65536)
    for (i64 i = 0; i < usz; i += 16)
      _mm512_storeu_ps(dU.p + i, _mm512_add_ps(_mm512_loadu_ps(dU.p + i), _mm512_loadu_ps(src + i)));
  }
  const bool par = p.N * p.K * PQ * Cg * 9 > 32768;
  // dw[g·Kg + k][c] = Gᵀ dU[·][g][c][k] G, 16 output channels a vector
  const __m512i wstride = lane_multiples(Cg * 9);
  const __m512 half = _mm512_set1_ps(0.5f);
#pragma omp parallel for schedule(static) if (par)
  for (i64 gc = 0; gc < p.C; ++gc) {
    const i64 g = gc / Cg, c = gc % Cg;
    for (i64 k0 = 0; k0 < Kg; k0 += 16) {
      __m512 u[16];
      for (int xi = 0; xi < 16; ++xi) u[xi] = _mm512_loadu_ps(dU.p + ((xi * G + g) * Cg + c) * Kg + k0);
      __m512 z[3][4];  // Gᵀ X over the rows
      for (int j = 0; j < 4; ++j) {
        const __m512 s12 = _mm512_mul_ps(half, _mm512_add_ps(u[4 + j], u[8 + j]));
        z[0][j] = _mm512_add_ps(u[j], s12);
        z[1][j] = _mm512_mul_ps(half, _mm512_sub_ps(u[4 + j], u[8 + j]));
        z[2][j] = _mm512_add_ps(s12, u[12 + j]);
      }
      float* d = dw + ((g * Kg + k0) * Cg + c) * 9;
      for (int r = 0; r < 3; ++r) {  // (Z G) over the columns
        const __m512 s12 = _mm512_mul_ps(half, _mm512_add_ps(z[r][1], z[r][2]));
        _mm512_i32scatter_ps(d + 3 * r + 0, wstride, _mm512_add_ps(z[r][0], s12), 4);
        _mm512_i32scatter_ps(d + 3 * r + 1, wstride, _mm512_mul_ps(half, _mm512_sub_ps(z[r][1], z[r][2])), 4);
        _mm512_i32scatter_ps(d + 3 * r + 2, wstride, _mm512_add_ps(s12, z[r][3]), 4);
      }
    }
  }
}

// ---------------------------------------------------------------- backward-weight, few taps
// AVX-512 float, stride 1, fewer than 64 taps per group (a network's first layer: 1 or 3 input
// channels), kernel widths up to 7, where the GEMM path's dW has too few columns for its
// micro-kernel and re-reads dy per column block:
//   dW[k][c, r, s] = Σ_n Σ_(p,q) dy[n, k, p, q] · xpad[n, c, p + r·dh, q + s·dw]
// Per image and input channel the zero-padded plane sits in L1. For one kernel row r, NC output
// channels sweep their dy planes row segment by row segment (16 pixels a vector, the row tail
// masked): the S tap vectors of the segment are loaded once and multiply each channel's dy
// vector, so a load feeds NC or S multiplies (unaligned x loads split cache lines: loads, not
// multiplies, bound a one-channel sweep). The NC·S products stay 16-lane vectors (registers
// over a sweep, the job's slot between sweeps); lanes are summed only at the end. Jobs:
// (fixed image block, output channel block); the blocks' lane vectors are summed in block order,
// so the bits do not depend on the thread count.
inline i64 bw_small_blocks(const pf::Conv2dParams& p) {  // image blocks; 0: not this path
  const i64 Cg = p.C / p.groups, RS = p.R * p.S;
  if (p.stride_h != 1 || p.stride_w != 1 || p.S > 7 || Cg * RS >= 64) return 0;
  if (p.N < 1 || p.Q < 8 || p.P * p.Q < 64) return 0;  // few pixels: lanes idle, the GEMM path is fine
  const i64 Hp = p.P + p.dil_h * (p.R - 1), Wp = p.Q + p.dil_w * (p.S - 1);
  if (Hp * Wp > (i64(1) << 16)) return 0;  // one padded plane in L1 / L2
  i64 nblk = imin(p.N, 8);
  while (nblk > 1 && nblk * p.K * Cg * RS * 16 > (i64(1) << 22)) nblk /= 2;  // slots <= 16 MiB
  return nblk;
}

// For channels c < nc (of NC; the rest repeat the last and are not stored) and taps s < S of
// one kernel row at xp + s·ds: acc[c·cstride + s·16 + lane] += Σ over the plane of
// dy_c · tap_s, dy_c = dyk + c·PQ.
template <int NC, int S>
inline void ukernel_bw_small(const float* dyk, int nc, i64 PQ, const float* xp, i64 ds, i64 P, i64 Q, i64 Wp,
                             float* acc, i64 cstride) {
  __m512 a[NC][S];
  const float* dc[NC];
  for (int c = 0; c < NC; ++c) {
    dc[c] = dyk + imin(c, nc - 1) * PQ;
    for (int s = 0; s < S; ++s) a[c][s] = c < nc ? _mm512_loadu_ps(acc + c * cstride + s * 16) : _mm512_setzero_ps();
  }
  // P, Q >= 1: do-while loops (a loop that may run zero times made GCC keep a stack copy of
  // the accumulators for the zero-trip path and store to it every iteration)
  i64 pp = 0;
  do {
    const float* xr = xp + pp * Wp;
    i64 q0 = 0;
    do {
      // masked both ways in the tail: 0 · (an Inf in the next row) would be NaN
      const __mmask16 m = __mmask16((1u << imin(Q - q0, 16)) - 1u);
      __m512 xv[S];
      for (int s = 0; s < S; ++s) xv[s] = _mm512_maskz_loadu_ps(m, xr + q0 + s * ds);
      for (int c = 0; c < NC; ++c) {
        const __m512 d = _mm512_maskz_loadu_ps(m, dc[c] + pp * Q + q0);
        for (int s = 0; s < S; ++s) a[c][s] = _mm512_fmadd_ps(d, xv[s], a[c][s]);
      }
      q0 += 16;
    } while (q0 < Q);
  } while (++pp < P);
  // constant bounds (a runtime one would make GCC keep a[][] on the stack)
  for (int c = 0; c < NC; ++c)
    if (c < nc)
      for (int s = 0; s < S; ++s) _mm512_storeu_ps(acc + c * cstride + s * 16, a[c][s]);
}

// One input channel's plane against nk output channels, every kernel row.
template <int NC, int S>
inline void bw_small_sweep(const float* dyk, i64 nk, i64 PQ, const float* xp, const pf::Conv2dParams& p, i64 Wp,
                           float* acc, i64 cstride) {
  for (i64 k = 0; k < nk; k += NC)
    for (i64 r = 0; r < p.R; ++r)
      ukernel_bw_small<NC, S>(dyk + k * PQ, int(imin(NC, nk - k)), PQ, xp + r * p.dil_h * Wp, p.dil_w, p.P, p.Q, Wp,
                              acc + k * cstride + r * S * 16, cstride);
}

inline void backward_weight_small(const float* x, const float* dy, float* dw, const pf::Conv2dParams& p, i64 nblk) {
  const i64 G = p.groups, Cg = p.C / G, Kg = p.K / G, RS = p.R * p.S, kred = Cg * RS;
  const i64 PQ = p.P * p.Q, HW = p.H * p.W;
  const i64 Hp = p.P + p.dil_h * (p.R - 1), Wp = p.Q + p.dil_w * (p.S - 1);
  const i64 bsz = cdiv(p.N, nblk), nb = cdiv(p.N, bsz), ssz = p.K * kred * 16;  // a block's slot: (K, kred, 16)
  Scratch<float> slots(nb * ssz, true);
  // output channel blocks: enough jobs for the threads (the split does not change any sum)
  const i64 want = 2 * max_threads();
  i64 ncb = imax(1, imin(cdiv(want, nb * G), cdiv(Kg, 4)));
  const i64 cbw = cdiv(Kg, ncb);
  ncb = cdiv(Kg, cbw);
  const i64 jobs = nb * G * ncb;
  const bool par = p.N * p.K * PQ * kred > 32768;
#pragma omp parallel if (par && jobs > 1)
  {
    Scratch<float> xp(Hp * Wp);
#pragma omp for schedule(dynamic, 1)
    for (i64 job = 0; job < jobs; ++job) {
      const i64 cb = job % ncb, g = (job / ncb) % G, blk = job / (ncb * G);
      const i64 k0 = g * Kg + cb * cbw, nk = imin(g * Kg + Kg, k0 + cbw) - k0;
      float* slot = slots.p + blk * ssz + k0 * kred * 16;
      for (i64 n = blk * bsz; n < imin(p.N, blk * bsz + bsz); ++n)
        for (i64 c = 0; c < Cg; ++c) {
          pad_rows(xp.p, x + (n * p.C + g * Cg + c) * HW, p, 0, Hp, Wp);
          const float* dyk = dy + (n * p.K + k0) * PQ;
          float* acc = slot + c * RS * 16;
          const i64 cs = kred * 16;
          switch (p.S) {  // NC·S accumulators + S tap vectors + 1 dy vector <= 32 registers
            case 1: bw_small_sweep<12, 1>(dyk, nk, PQ, xp.p, p, Wp, acc, cs); break;
            case 2: bw_small_sweep<10, 2>(dyk, nk, PQ, xp.p, p, Wp, acc, cs); break;
            case 3: bw_small_sweep<8, 3>(dyk, nk, PQ, xp.p, p, Wp, acc, cs); break;
            case 4: bw_small_sweep<6, 4>(dyk, nk, PQ, xp.p, p, Wp, acc, cs); break;
            case 5: bw_small_sweep<4, 5>(dyk, nk, PQ, xp.p, p, Wp, acc, cs); break;
            case 6: bw_small_sweep<4, 6>(dyk, nk, PQ, xp.p, p, Wp, acc, cs); break;
            default: bw_small_sweep<3, 7>(dyk, nk, PQ, xp.p, p, Wp, acc, cs); break;
          }
        }
    }
  }
  // dw[k][kk] = Σ_blocks (in order) of the lane sum of slot[blk][k][kk]
#pragma omp parallel for schedule(static) if (par)
  for (i64 k = 0; k < p.K; ++k)
    for (i64 kk = 0; kk < kred; ++kk) {
      float s = 0.f;
      for (i64 blk = 0; blk < nb; ++blk) {
        const float* l = slots.p + blk * ssz + (k * kred + kk) * 16;
        float b = 0.f;
        for (int i = 0; i < 16; ++i) b += l[i];
        s += b;
      }
      dw[k * kred + kk] = s;
    }
}

#endif

// ---------------------------------------------------------------- backward-weight
// Reduction chunk (pixels) and dW column block: every dot_kernel call ends in DM×DN
// horizontal sums, so the chunk must be long for them to stay cheap, while the DM + DN
// rows a call streams (and the abuf/bbuf chunk) stay cache-resident.
#ifndef PF_WKC
#define PF_WKC 1024
#endif
#ifndef PF_WCOLS
#define PF_WCOLS 512
#endif
constexpr i64 kWKC = PF_WKC, kWCols = PF_WCOLS;
template <class T>
void backward_weight(const T* x, const T* dy, T* dw, const pf::Conv2dParams& p) {
  constexpr int L = V<T>::L, DM = V<T>::DM, DN = V<T>::DN;
  const i64 G = p.groups, Cg = p.C / G, Kg = p.K / G, RS = p.R * p.S, kred = Cg * RS;
  const i64 PQ = p.P * p.Q, HW = p.H * p.W;
  if (p.N == 0) {
    for (i64 i = 0; i < p.K * kred; ++i) dw[i] = T(0);
    return;
  }
#if defined(__AVX512F__)
  if (sizeof(T) == 4) {
    if (const i64 nblk = winograd_bw_blocks(p)) {
      backward_weight_winograd(reinterpret_cast<const float*>(x), reinterpret_cast<const float*>(dy),
                               reinterpret_cast<float*>(dw), p, nblk);
      return;
    }
  }
  if (sizeof(T) == 4) {
    if (const i64 nblk = bw_small_blocks(p)) {
      backward_weight_small(reinterpret_cast<const float*>(x), reinterpret_cast<const float*>(dy),
                            reinterpret_cast<float*>(dw), p, nblk);
      return;
    }
  }
  if (sizeof(T) == 4 && bw_direct_ok(p)) {
    backward_weight_direct(reinterpret_cast<const float*>(x), reinterpret_cast<const float*>(dy),
                           reinterpret_cast<float*>(dw), p);
    return;
  }
#endif
  // Jobs tile dW_g (Kg × kred): all rows, column blocks of ≤ 256 taps; rows are split only
  // when groups × column blocks cannot feed the threads.
  const i64 want = 2 * max_threads();
  i64 ncb = cdiv(kred, kWCols);
  if (G * ncb < want) ncb = imin(cdiv(kred, DN), cdiv(want, G));
  const i64 cbw = rup(cdiv(kred, ncb), DN);
  ncb = cdiv(kred, cbw);
  i64 nrb = 1;
  if (G * ncb < want) nrb = imin(cdiv(Kg, DM), cdiv(want, G * ncb));
  const i64 rbh = rup(cdiv(Kg, nrb), DM);
  nrb = cdiv(Kg, rbh);
  const i64 jobs = G * nrb * ncb;
  // Reduction chunks over (image, pixel): pixel ranges of one image, or whole small images
  // side by side, about kKC steps each, zero-padded to the vector length. The order is
  // fixed, so the result has the same bits for any thread count.
  const i64 ipt = PQ >= kWKC ? 1 : imax(1, kWKC / PQ);
  const i64 seg_max = PQ >= kWKC ? kWKC : PQ, KC = rup(ipt * seg_max, L);
  // Row stride one cache line longer than the chunk: with power-of-two strides the DM + DN
  // rows a dot_kernel streams fall into the same L1 sets and evict each other.
  const i64 LDK = KC + 64 / i64(sizeof(T));
  TapTable tab(p, sizeof(T) == 4);
#pragma omp parallel if (jobs > 1 && p.N * p.K * PQ * kred > 32768)
  {
    Scratch<T> cacc(rbh * cbw, true);
    Scratch<T> abuf(rbh * LDK, true);   // dy rows of the chunk, pixel-contiguous
    Scratch<T> bbuf(cbw * LDK, true);   // im2col rows of the chunk
#pragma omp for schedule(dynamic, 1)
    for (i64 job = 0; job < jobs; ++job) {
      const i64 cbi = job % ncb, rest = job / ncb, rbi = rest % nrb, g = rest / nrb;
      const i64 col0 = cbi * cbw, cols = imin(kred, col0 + cbw) - col0;
      const i64 r0 = rbi * rbh, rows = imin(Kg, r0 + rbh) - r0;
      for (i64 i = 0; i < rows * cbw; ++i) cacc.p[i] = T(0);
      for (i64 n0 = 0; n0 < p.N; n0 += ipt) {
        const i64 n1 = imin(p.N, n0 + ipt);
        for (i64 t0 = 0; t0 < PQ; t0 += seg_max) {
          const i64 seg = imin(seg_max, PQ - t0), kc = (n1 - n0) * seg, kv = rup(kc, L);
          for (i64 n = n0; n < n1; ++n) {
            const i64 co = (n - n0) * seg;
            const T* dyr = dy + (n * p.K + g * Kg + r0) * PQ + t0;
            for (i64 i = 0; i < rows; ++i) memcpy(abuf.p + i * LDK + co, dyr + i * PQ, size_t(seg) * sizeof(T));
            if (!(tab.off && seg == PQ && n1 - n0 > 1))
              im2col_rows(x + (n * p.C + g * Cg) * HW, p, tab.off, col0, col0 + cols, t0, t0 + seg, bbuf.p + co, LDK);
          }
          if (tab.off && seg == PQ && n1 - n0 > 1)  // whole small images: rows outer
            im2col_rows_images(x + (n0 * p.C + g * Cg) * HW, p.C * HW, n1 - n0, p, tab.off, col0, col0 + cols,
                               bbuf.p, LDK);
          if (kv > kc) {  // zero the vector tail of every row
            for (i64 i = 0; i < rows; ++i) for (i64 k = kc; k < kv; ++k) abuf.p[i * LDK + k] = T(0);
            for (i64 j = 0; j < cols; ++j) for (i64 k = kc; k < kv; ++k) bbuf.p[j * LDK + k] = T(0);
          }
          for (i64 j0 = 0; j0 < cols; j0 += DN) {
            const int nn = int(imin(DN, cols - j0));
            for (i64 i0 = 0; i0 < rows; i0 += DM) {
              const int mm = int(imin(DM, rows - i0));
              dot_kernel<T>(kv, abuf.p + i0 * LDK, LDK, bbuf.p + j0 * LDK, LDK, cacc.p + i0 * cbw + j0, cbw, mm, nn);
            }
          }
        }
      }
      for (i64 i = 0; i < rows; ++i)
        memcpy(dw + (g * Kg + r0 + i) * kred + col0, cacc.p + i * cbw, size_t(cols) * sizeof(T));
    }
  }
}

template <class T>
void backward_bias(const T* dy, T* db, const pf::Conv2dParams& p) {
  const i64 PQ = p.P * p.Q;
#pragma omp parallel for schedule(static) if (p.N * p.K * PQ > 65536)
  for (i64 k = 0; k < p.K; ++k) {
    T s = T(0);
    for (i64 n = 0; n < p.N; ++n) {
      const T* r = dy + (n * p.K + k) * PQ;
      T part = T(0);
#pragma omp simd reduction(+ : part)
      for (i64 i = 0; i < PQ; ++i) part += r[i];
      s += part;
    }
    db[k] = s;
  }
}
}  // namespace

void conv2d_forward_f32(const float* x, const float* w, const float* b, float* y, const pf::Conv2dParams& p) { forward(x, w, b, y, p); }
void conv2d_forward_f64(const double* x, const double* w, const double* b, double* y, const pf::Conv2dParams& p) { forward(x, w, b, y, p); }
void conv2d_backward_data_f32(const float* dy, const float* w, float* dx, const pf::Conv2dParams& p) { backward_data(dy, w, dx, p); }
void conv2d_backward_data_f64(const double* dy, const double* w, double* dx, const pf::Conv2dParams& p) { backward_data(dy, w, dx, p); }
void conv2d_backward_weight_f32(const float* x, const float* dy, float* dw, const pf::Conv2dParams& p) { backward_weight(x, dy, dw, p); }
void conv2d_backward_weight_f64(const double* x, const double* dy, double* dw, const pf::Conv2dParams& p) { backward_weight(x, dy, dw, p); }
void conv2d_backward_bias_f32(const float* dy, float* db, const pf::Conv2dParams& p) { backward_bias(dy, db, p); }
void conv2d_backward_bias_f64(const double* dy, double* db, const pf::Conv2dParams& p) { backward_bias(dy, db, p); }
}  // namespace PF_ISA_NS
