// kernels/conv2d/conv2d_cpu.cpp: 2-D convolution on the CPU, all three passes.
// Compiled three times (generic, AVX2+FMA, AVX-512 flags) into PF_ISA_NS.
//
// Every pass is a GEMM fed by a packed, bounded panel (never a whole-batch im2col):
//   forward          out_g (Kg × PQ)   = W_g (Kg × CgRS) · col (CgRS × PQ)
//                    OpenMP over (image, group, pixel tile); col packed per tile.
//   backward-data    dcol (CgRS × PQ)  = W_gᵀ · dy_g, then col2im (scatter-add) into dx.
//                    OpenMP over (image, group, channel block): each job owns its dx rows.
//   backward-weight  dW_g (Kg × CgRS)  = Σ_n dy_g · colᵀ, OpenMP over (group, row block,
//                    column block) of dW; every element is reduced in the same order
//                    (image, pixel) whatever the thread count, so results are deterministic.
// One register-blocked micro-kernel (MR rows × NR columns of accumulators, B rows read with
// a leading dimension) serves all three:
//   AVX-512: float 12×32, double 12×16   AVX2+FMA: float 6×16, double 6×8
//   generic: 4×8 scalars (the compiler vectorizes what it can)
// Nothing here instantiates an std:: template (see kernels/common/common.h).

#include <string.h>

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif
#if defined(_OPENMP)
#include <omp.h>
#endif

#include "conv2d/conv2d.h"

namespace PF_ISA_NS {
namespace {
using pf::i64;

template <class T>
struct Scratch {  // zero-initialized, internal linkage
  T* p;
  explicit Scratch(i64 n) : p(n > 0 ? new T[n]() : nullptr) {}
  ~Scratch() { delete[] p; }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

inline i64 imin(i64 a, i64 b) { return a < b ? a : b; }
inline i64 imax(i64 a, i64 b) { return a > b ? a : b; }
inline i64 cdiv(i64 a, i64 b) { return (a + b - 1) / b; }
inline i64 rup(i64 a, i64 b) { return cdiv(a, b) * b; }

inline int n_threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// ---------------------------------------------------------------- SIMD vector traits
template <class T> struct V;
#if defined(__AVX512F__)
template <> struct V<float> {
  using R = __m512;
  static constexpr int L = 16, MR = 12, NV = 2;
  static R zero() { return _mm512_setzero_ps(); }
  static R load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, R v) { _mm512_storeu_ps(p, v); }
  static R set1(float v) { return _mm512_set1_ps(v); }
  static R fma(R a, R b, R c) { return _mm512_fmadd_ps(a, b, c); }
  static R add(R a, R b) { return _mm512_add_ps(a, b); }
};
template <> struct V<double> {
  using R = __m512d;
  static constexpr int L = 8, MR = 12, NV = 2;
  static R zero() { return _mm512_setzero_pd(); }
  static R load(const double* p) { return _mm512_loadu_pd(p); }
  static void store(double* p, R v) { _mm512_storeu_pd(p, v); }
  static R set1(double v) { return _mm512_set1_pd(v); }
  static R fma(R a, R b, R c) { return _mm512_fmadd_pd(a, b, c); }
  static R add(R a, R b) { return _mm512_add_pd(a, b); }
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
};
template <> struct V<float> : VScalar<float> {};
template <> struct V<double> : VScalar<double> {};
#endif

template <class T> constexpr int MR_of() { return V<T>::MR; }
template <class T> constexpr int NR_of() { return V<T>::NV * V<T>::L; }

// C[m×n] (=|+=) A·B over kc. a: packed kc × MR (row i of step kk at a[kk*MR + i]);
// b: kc rows of NR values at stride ldb; c: row stride ldc. m ≤ MR, n ≤ NR are the valid
// part; only it is written. When not accumulating, row_init (if given) seeds row i.
template <class T>
void ukernel(i64 kc, const T* __restrict a, const T* __restrict b, i64 ldb, T* __restrict c, i64 ldc, int m,
             int n, const T* row_init, bool accumulate) {
  using VT = V<T>;
  using R = typename VT::R;
  constexpr int MR = VT::MR, NV = VT::NV, L = VT::L, NR = NV * L;
  R acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[i][v] = VT::zero();
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

// ---------------------------------------------------------------- im2col / col2im rows
// Row `row` of a group's column matrix is (c, r, s) = (row / RS, (row % RS) / S, row % S);
// its entry for output pixel t = p*Q + q is x_c[p*sh - pt + r*dh, q*sw - pl + s*dw] (0 out
// of bounds). The pixel range [t0, t1) is walked one output row at a time so that each
// segment is a contiguous (stride 1) or strided run of one input row, clipped analytically.
template <class T, bool kScatter>
void rows_map(T* xg /*channel 0 of the block*/, const pf::Conv2dParams& p, i64 row0, i64 row1, i64 t0, i64 t1,
              T* buf, i64 ldb) {
  const i64 RS = p.R * p.S, HW = p.H * p.W;
  for (i64 row = row0; row < row1; ++row) {
    const i64 c = row / RS, rs = row % RS, r = rs / p.S, s = rs % p.S;
    T* xc = xg + c * HW;
    T* d = buf + (row - row0) * ldb;
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
          for (i64 qq = q; qq < qlo; ++qq) d[qq - q] = T(0);
          if (p.stride_w == 1) {
#pragma omp simd
            for (i64 qq = qlo; qq < qhi; ++qq) d[qq - q] = xr[qq];
          } else {
            for (i64 qq = qlo; qq < qhi; ++qq) d[qq - q] = xr[qq * p.stride_w];
          }
          for (i64 qq = qhi; qq < qend; ++qq) d[qq - q] = T(0);
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
void im2col_rows(const T* xg, const pf::Conv2dParams& p, i64 row0, i64 row1, i64 t0, i64 t1, T* buf, i64 ldb) {
  rows_map<T, false>(const_cast<T*>(xg), p, row0, row1, t0, t1, buf, ldb);
}
template <class T>
void col2im_rows(T* xg, const pf::Conv2dParams& p, i64 row0, i64 row1, i64 t0, i64 t1, const T* buf, i64 ldb) {
  rows_map<T, true>(xg, p, row0, row1, t0, t1, const_cast<T*>(buf), ldb);
}

// Pack rows [r0, r0+rows) × reduction [0, kred) of a row-major matrix (src(i, k) =
// src[i*ld_i + k*ld_k]) into MR-row panels: panel ib holds kred steps of MR values.
template <class T>
void pack_a(const T* src, i64 ld_i, i64 ld_k, i64 rows, i64 kred, T* dst) {
  constexpr int MR = MR_of<T>();
  const i64 mb = cdiv(rows, MR);
  for (i64 ib = 0; ib < mb; ++ib) {
    T* d = dst + ib * kred * MR;
    for (int m = 0; m < MR; ++m) {
      const i64 i = ib * MR + m;
      if (i < rows) {
        const T* s = src + i * ld_i;
        for (i64 k = 0; k < kred; ++k) d[k * MR + m] = s[k * ld_k];
      } else {
        for (i64 k = 0; k < kred; ++k) d[k * MR + m] = T(0);
      }
    }
  }
}

// Pixel tile width: the packed B block (kc × nc) stays around 256 KiB (L2), at least one
// NR-wide column, and small enough that every thread gets a couple of jobs.
template <class T>
i64 pick_nc(i64 kc, i64 npix, i64 outer_jobs) {
  constexpr i64 NR = NR_of<T>();
  i64 nc = (i64(256) * 1024 / i64(sizeof(T))) / imax(kc, 1);
  nc = imax(NR, nc / NR * NR);
  nc = imin(nc, rup(npix, NR));
  const i64 want = 2 * n_threads();
  if (outer_jobs * cdiv(npix, nc) < want && npix > NR) {
    const i64 tiles = cdiv(want, imax(outer_jobs, 1));
    nc = imax(NR, rup(cdiv(npix, tiles), NR));
  }
  return nc;
}

constexpr i64 kKC = 256;  // reduction block: one NR-wide B column panel fits L1

// ---------------------------------------------------------------- forward
template <class T>
void forward(const T* x, const T* w, const T* bias, T* out, const pf::Conv2dParams& p) {
  constexpr int MR = MR_of<T>(), NR = NR_of<T>();
  const i64 G = p.groups, Cg = p.C / G, Kg = p.K / G, RS = p.R * p.S, kred = Cg * RS;
  const i64 PQ = p.P * p.Q, HW = p.H * p.W;
  if (p.N == 0) return;
  const i64 mb = cdiv(Kg, MR);
  // weights packed once: (G, mb, kred, MR)
  Scratch<T> apack(G * mb * kred * MR);
#pragma omp parallel for schedule(static) if (G * Kg * kred > 65536)
  for (i64 g = 0; g < G; ++g) pack_a(w + g * Kg * kred, kred, 1, Kg, kred, apack.p + g * mb * kred * MR);

  const i64 kc_max = imin(kred, kKC);
  const i64 nc = pick_nc<T>(kc_max, PQ, p.N * G);
  const i64 ntiles = cdiv(PQ, nc), ldb = rup(nc, NR);
  const i64 jobs = p.N * G * ntiles;
#pragma omp parallel if (jobs > 1 && p.N * p.K * PQ * kred > 32768)
  {
    Scratch<T> bbuf(kc_max * ldb);
#pragma omp for schedule(dynamic, 1)
    for (i64 job = 0; job < jobs; ++job) {
      const i64 tile = job % ntiles, ng = job / ntiles, g = ng % G, n = ng / G;
      const i64 t0 = tile * nc, t1 = imin(PQ, t0 + nc), nt = t1 - t0;
      const T* xg = x + (n * p.C + g * Cg) * HW;
      T* og = out + (n * p.K + g * Kg) * PQ + t0;
      const T* bg = bias ? bias + g * Kg : nullptr;
      const T* ag = apack.p + g * mb * kred * MR;
      for (i64 k0 = 0; k0 < kred; k0 += kc_max) {
        const i64 kc = imin(kc_max, kred - k0);
        im2col_rows(xg, p, k0, k0 + kc, t0, t1, bbuf.p, ldb);
        for (i64 j0 = 0; j0 < nt; j0 += NR) {
          const int nn = int(imin(NR, nt - j0));
          for (i64 ib = 0; ib < mb; ++ib) {
            const int mm = int(imin(MR, Kg - ib * MR));
            ukernel<T>(kc, ag + (ib * kred + k0) * MR, bbuf.p + j0, ldb, og + ib * MR * PQ + j0, PQ, mm, nn,
                       bg ? bg + ib * MR : nullptr, k0 > 0);
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------- backward-data
template <class T>
void backward_data(const T* dy, const T* w, T* dx, const pf::Conv2dParams& p) {
  constexpr int MR = MR_of<T>(), NR = NR_of<T>();
  const i64 G = p.groups, Cg = p.C / G, Kg = p.K / G, RS = p.R * p.S, kred = Cg * RS;
  const i64 PQ = p.P * p.Q, HW = p.H * p.W;
  if (p.N == 0) return;
  // Channel blocks: a job owns dx[n, block] (no races, no atomics). Split channels only
  // when images × groups cannot feed the threads; bound the dcol rows of a block.
  i64 cb = Cg;
  const i64 want = 2 * n_threads();
  if (p.N * G < want) cb = cdiv(Cg, cdiv(want, p.N * G));
  cb = imax(1, imin(cb, imax(1, 4096 / RS)));
  const i64 nblk = cdiv(Cg, cb);
  const i64 rows_max = cb * RS, mb_max = cdiv(rows_max, MR);
  // Wᵀ packed per (group, channel block): rows (c, r, s) of the block, reduction k.
  const i64 blk_stride = mb_max * Kg * MR;
  Scratch<T> apack(G * nblk * blk_stride);
#pragma omp parallel for schedule(static) if (G * Kg * kred > 65536)
  for (i64 gb = 0; gb < G * nblk; ++gb) {
    const i64 g = gb / nblk, bi = gb % nblk, c0 = bi * cb, rows = (imin(Cg, c0 + cb) - c0) * RS;
    pack_a(w + g * Kg * kred + c0 * RS, 1, kred, rows, Kg, apack.p + gb * blk_stride);
  }
  const i64 kc_max = imin(Kg, kKC);
  // dcol tile (rows × nc) around 512 KiB.
  i64 nc = (i64(512) * 1024 / i64(sizeof(T))) / imax(rows_max, 1);
  nc = imax(NR, imin(nc / NR * NR, rup(PQ, NR)));
  const i64 ntiles = cdiv(PQ, nc), ldb = rup(nc, NR);
  const i64 jobs = p.N * G * nblk;
#pragma omp parallel if (jobs > 1 && p.N * p.K * PQ * kred > 32768)
  {
    Scratch<T> bbuf(kc_max * ldb);
    Scratch<T> dcol(mb_max * MR * ldb);
#pragma omp for schedule(dynamic, 1)
    for (i64 job = 0; job < jobs; ++job) {
      const i64 bi = job % nblk, ng = job / nblk, g = ng % G, n = ng / G;
      const i64 c0 = bi * cb, c1 = imin(Cg, c0 + cb), rows = (c1 - c0) * RS, mb = cdiv(rows, MR);
      T* dxb = dx + (n * p.C + g * Cg + c0) * HW;
      for (i64 i = 0; i < (c1 - c0) * HW; ++i) dxb[i] = T(0);
      const T* dyg = dy + (n * p.K + g * Kg) * PQ;
      const T* ab = apack.p + (g * nblk + bi) * blk_stride;
      for (i64 tile = 0; tile < ntiles; ++tile) {
        const i64 t0 = tile * nc, t1 = imin(PQ, t0 + nc), nt = t1 - t0;
        for (i64 k0 = 0; k0 < Kg; k0 += kc_max) {
          const i64 kc = imin(kc_max, Kg - k0);
          for (i64 kk = 0; kk < kc; ++kk) memcpy(bbuf.p + kk * ldb, dyg + (k0 + kk) * PQ + t0, size_t(nt) * sizeof(T));
          for (i64 j0 = 0; j0 < nt; j0 += NR) {
            const int nn = int(imin(NR, nt - j0));
            for (i64 ib = 0; ib < mb; ++ib) {
              const int mm = int(imin(MR, rows - ib * MR));
              ukernel<T>(kc, ab + (ib * Kg + k0) * MR, bbuf.p + j0, ldb, dcol.p + ib * MR * ldb + j0, ldb, mm, nn,
                         nullptr, k0 > 0);
            }
          }
        }
        col2im_rows(dxb, p, 0, rows, t0, t1, dcol.p, ldb);
      }
    }
  }
}

// ---------------------------------------------------------------- backward-weight
template <class T>
void backward_weight(const T* x, const T* dy, T* dw, const pf::Conv2dParams& p) {
  constexpr int MR = MR_of<T>(), NR = NR_of<T>();
  const i64 G = p.groups, Cg = p.C / G, Kg = p.K / G, RS = p.R * p.S, kred = Cg * RS;
  const i64 PQ = p.P * p.Q, HW = p.H * p.W;
  if (p.N == 0) {
    for (i64 i = 0; i < p.K * kred; ++i) dw[i] = T(0);
    return;
  }
  // Jobs tile dW_g (Kg × kred); aim for a few jobs per thread, column blocks ≤ 256.
  const i64 want = 2 * n_threads();
  i64 ncb = cdiv(kred, 256);
  if (G * ncb < want) ncb = imin(cdiv(kred, NR), cdiv(want, G));
  const i64 cbw = rup(cdiv(kred, ncb), NR);
  ncb = cdiv(kred, cbw);
  i64 nrb = 1;
  if (G * ncb < want) nrb = imin(cdiv(Kg, MR), cdiv(want, G * ncb));
  const i64 rbh = rup(cdiv(Kg, nrb), MR);
  nrb = cdiv(Kg, rbh);
  const i64 jobs = G * nrb * ncb;
  const i64 KC = kKC;
  const i64 ldc = cbw;
#pragma omp parallel if (jobs > 1 && p.N * p.K * PQ * kred > 32768)
  {
    Scratch<T> cacc(rbh * ldc);
    Scratch<T> apk(rbh * KC);
    Scratch<T> tmp(cbw * KC);
    Scratch<T> bbuf(KC * cbw);
#pragma omp for schedule(dynamic, 1)
    for (i64 job = 0; job < jobs; ++job) {
      const i64 cbi = job % ncb, rest = job / ncb, rbi = rest % nrb, g = rest / nrb;
      const i64 col0 = cbi * cbw, cols = imin(kred, col0 + cbw) - col0;
      const i64 r0 = rbi * rbh, rows = imin(Kg, r0 + rbh) - r0, mb = cdiv(rows, MR);
      bool first = true;
      for (i64 n = 0; n < p.N; ++n) {
        const T* xg = x + (n * p.C + g * Cg) * HW;
        const T* dyr = dy + (n * p.K + g * Kg + r0) * PQ;
        for (i64 t0 = 0; t0 < PQ; t0 += KC) {
          const i64 kc = imin(KC, PQ - t0);
          // A: dy rows (k) with the pixel index as reduction.
          pack_a(dyr + t0, PQ, 1, rows, kc, apk.p);
          // B: colᵀ — im2col rows for this column block, then transposed to [pixel][col].
          im2col_rows(xg, p, col0, col0 + cols, t0, t0 + kc, tmp.p, KC);
          for (i64 j = 0; j < cols; ++j) {
            const T* s = tmp.p + j * KC;
            T* d = bbuf.p + j;
            for (i64 kk = 0; kk < kc; ++kk) d[kk * cbw] = s[kk];
          }
          for (i64 j0 = 0; j0 < cols; j0 += NR) {
            const int nn = int(imin(NR, cols - j0));
            for (i64 ib = 0; ib < mb; ++ib) {
              const int mm = int(imin(MR, rows - ib * MR));
              ukernel<T>(kc, apk.p + ib * kc * MR, bbuf.p + j0, cbw, cacc.p + ib * MR * ldc + j0, ldc, mm, nn, nullptr,
                         !first);
            }
          }
          first = false;
        }
      }
      if (PQ == 0) {
        for (i64 i = 0; i < rows * ldc; ++i) cacc.p[i] = T(0);
      }
      for (i64 i = 0; i < rows; ++i)
        memcpy(dw + (g * Kg + r0 + i) * kred + col0, cacc.p + i * ldc, size_t(cols) * sizeof(T));
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
