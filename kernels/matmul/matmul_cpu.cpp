// kernels/matmul/matmul_cpu.cpp: packed, cache-blocked GEMM on the CPU (BLIS-style loops).
//   C split into one rectangle per thread (no barriers), then on each thread:
//   for jc (NC columns)  for pc (KC of K)  pack B block -> KC×NR panels
//     for ic (MC rows)  pack A block -> MR×KC panels
//       for each NR panel, each MR panel: register-blocked micro-kernel MR×NR over kc
//   C at most kDirectPanels NR-panels wide (a Linear layer's narrow output): A is not packed;
//   the micro-kernel broadcasts it in place from its rows or columns (micro_kernel_a).
//   Small C with K >= 2048 (a weight gradient): K split into blocks fixed by K (k_splits), the
//   blocks' products on the threads, summed in block order (gemm_ksplit).
// Variants (one per ISA build, picked at run time), MR×NR in registers:
//   AVX-512: float 14×32 (28 zmm accumulators), double 14×16
//   AVX2+FMA: float 6×16 (12 ymm), double 6×8
//   generic:  GCC/Clang 16-byte vector extensions (SSE2 on x86), float 6×8, double 6×4
// Edges: packing pads partial panels with zeros; a partial C tile goes through a temporary
// tile and a scalar store using the same operation order as the full-tile store.
// Threads: OpenMP, one C rectangle per thread (or whole products per thread for batches of
// small ones); small problems run on one thread (start-up dominates there). KC depends on
// K only, so each C element sees the same summation order for any thread count and any
// partition (bitwise reproducible).
#include <cstdlib>
#include <cstring>
#include <new>

#include "common/cpu_scratch.h"
#include "common/gemm_cpu.h"
#include "common/simd.h"
#include "matmul/matmul.h"

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif
#if defined(_OPENMP)
#include <omp.h>
#endif

namespace PF_ISA_NS {
namespace {
using pf::i64;
#if defined(__GNUC__)
#define PF_MM_INLINE inline __attribute__((always_inline))
#else
#define PF_MM_INLINE inline
#endif

// Packing buffers, one pair per thread, kept between calls (common/cpu_scratch.h): a fresh
// allocation per call costs page faults, which dominate the small GEMMs of a training loop.
thread_local KeptScratch tls_a, tls_b;  // A block (per thread) / B block (the calling thread's)
thread_local KeptScratch tls_part;      // gemm_ksplit's partial products (the calling thread's)

// ------------------------------------------------------------------ SIMD vector traits
// The vector types of common/simd.h (R register, W lanes, zero/set1/load/store/fma/add); the
// generic build keeps GCC vector extensions here (16-byte vectors, no fused multiply-add).
#if defined(__AVX512F__)
using VecF = simd::F16;
using VecD = simd::D8;
constexpr int kMR = 14;  // 14×2 accumulators + 2 B vectors + 1 broadcast = 31 of 32 zmm
#elif defined(__AVX2__)
using VecF = simd::F8;
using VecD = simd::D4;
constexpr int kMR = 6;  // 6×2 accumulators + 2 B + 1 broadcast = 15 of 16 ymm
#elif defined(__GNUC__)
// Portable: GCC/Clang vector extensions lower to whatever the target has (SSE2 on x86-64).
// No fused multiply-add here: a*b+c is written out, and -ffp-contract is left to the compiler.
template <class TT>
struct VecExt {
  using T = TT;
  static constexpr int W = 16 / sizeof(TT);
  typedef TT R __attribute__((vector_size(16)));
  static R zero() { return R{} ; }
  static R set1(T x) { return R{} + x; }
  static R load(const T* p) { R v; std::memcpy(&v, p, sizeof v); return v; }
  static void store(T* p, R v) { std::memcpy(p, &v, sizeof v); }
  static R fma(R a, R b, R c) { return a * b + c; }
  static R add(R a, R b) { return a + b; }
};
using VecF = VecExt<float>;
using VecD = VecExt<double>;
constexpr int kMR = 6;
#else
template <class TT>
struct VecScalar {
  using T = TT; using R = TT; static constexpr int W = 1;
  static R zero() { return 0; }
  static R set1(T x) { return x; }
  static R load(const T* p) { return *p; }
  static void store(T* p, R v) { *p = v; }
  static R fma(R a, R b, R c) { return a * b + c; }
  static R add(R a, R b) { return a + b; }
};
using VecF = VecScalar<float>;
using VecD = VecScalar<double>;
constexpr int kMR = 4;
#endif

template <class T> struct VecOf;
template <> struct VecOf<float> { using type = VecF; };
template <> struct VecOf<double> { using type = VecD; };

constexpr int kNV = 2;  // vectors per micro-tile row: NR = 2 * lanes

// ------------------------------------------------------------------ micro-kernel
// acc (MR×NR) into the m×n corner of C (row stride ldc): first overwrites C (else adds to it);
// bias: NR-long (n valid) or null. A partial tile goes element by element in the same order.
template <class Vt>
PF_MM_INLINE void store_tile(typename Vt::R (&acc)[kMR][kNV], typename Vt::T* __restrict c, i64 ldc, int m, int n,
                             bool first, const typename Vt::T* __restrict bias) {
  using T = typename Vt::T;
  using V = typename Vt::R;
  constexpr int MR = kMR, L = Vt::W, NR = kNV * L;
  if (m == MR && n == NR) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < kNV; ++v) {
        T* cp = c + i * ldc + v * L;
        V r = acc[i][v];
        if (!first) r = Vt::add(Vt::load(cp), r);
        if (bias) r = Vt::add(r, Vt::load(bias + v * L));
        Vt::store(cp, r);
      }
    return;
  }
  T tmp[MR * NR];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < kNV; ++v) Vt::store(tmp + i * NR + v * L, acc[i][v]);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      T r = tmp[i * NR + j];
      if (!first) r = c[i * ldc + j] + r;
      if (bias) r = r + bias[j];
      c[i * ldc + j] = r;
    }
}

// A read in place, the m×n corner of C (m ≤ MR rows of A are read, padded rows are not):
// row-major a[i*lda + k] (AT false: each row read along k) or column-major a[k*lda + i] (AT
// true: MR neighbours per k; a packed (kc, MR) panel is this with lda = MR). bp: (kc, NR)
// packed B panel. Packed or in place, the same operations in the same order: the same bits.
template <class Vt, bool AT>
void micro_kernel_a(i64 kc, const typename Vt::T* __restrict a, i64 lda, const typename Vt::T* __restrict bp,
                    typename Vt::T* __restrict c, i64 ldc, int m, int n, bool first,
                    const typename Vt::T* __restrict bias) {
  typename Vt::R acc[kMR][kNV];
  gemm_tile<Vt, kMR, kNV, AT, 2>(kc, a, lda, bp, kNV * Vt::W, acc);  // common/gemm_cpu.h
  store_tile<Vt>(acc, c, ldc, m, n, first, bias);
}

// ap: (kc, MR) packed A panel (rows past m zero-padded); bp: (kc, NR) packed B panel.
template <class Vt>
PF_MM_INLINE void micro_kernel(i64 kc, const typename Vt::T* __restrict ap, const typename Vt::T* __restrict bp,
                               typename Vt::T* __restrict c, i64 ldc, int m, int n, bool first,
                               const typename Vt::T* __restrict bias) {
  micro_kernel_a<Vt, true>(kc, ap, kMR, bp, c, ldc, m, n, first, bias);
}

// ------------------------------------------------------------------ packing
// A block rows [0, mc) × k [0, kc) -> panels of MR rows: ap[(panel * kc + k) * MR + i].
template <class T>
void pack_a(const T* a, i64 rs, i64 cs, i64 mc, i64 kc, T* ap) {
  constexpr int MR = kMR;
  for (i64 i0 = 0; i0 < mc; i0 += MR) {
    const int m = int(mc - i0 < MR ? mc - i0 : MR);
    T* dst = ap + i0 * kc;
    const T* src = a + i0 * rs;
    if (cs == 1 && m == MR) {
      // Row-major A: read each row contiguously along k.
      for (int i = 0; i < MR; ++i) {
        const T* row = src + i * rs;
        for (i64 k = 0; k < kc; ++k) dst[k * MR + i] = row[k];
      }
    } else {
      for (i64 k = 0; k < kc; ++k) {
        const T* col = src + k * cs;
        int i = 0;
        for (; i < m; ++i) dst[k * MR + i] = col[i * rs];
        for (; i < MR; ++i) dst[k * MR + i] = T(0);
      }
    }
  }
}

// B block k [0, kc) × columns [0, nc) -> panels of NR columns: bp[(panel * kc + k) * NR + j].
// Packs the panels [p0, p1) only (the caller splits the panels over threads).
template <class T, int NR>
void pack_b(const T* b, i64 rs, i64 cs, i64 kc, i64 nc, i64 p0, i64 p1, T* bp) {
  for (i64 p = p0; p < p1; ++p) {
    const i64 j0 = p * NR;
    const int n = int(nc - j0 < NR ? nc - j0 : NR);
    T* dst = bp + p * kc * NR;
    const T* src = b + j0 * cs;
    if (cs == 1 && n == NR) {
      for (i64 k = 0; k < kc; ++k) std::memcpy(dst + k * NR, src + k * rs, sizeof(T) * NR);
    } else if (rs == 1 && n == NR) {
      // Transposed B (e.g. a weight (out, in) used as in×out): read along k per column.
      for (int j = 0; j < NR; ++j) {
        const T* colp = src + j * cs;
        for (i64 k = 0; k < kc; ++k) dst[k * NR + j] = colp[k];
      }
    } else {
      for (i64 k = 0; k < kc; ++k) {
        int j = 0;
        for (; j < n; ++j) dst[k * NR + j] = src[k * rs + j * cs];
        for (; j < NR; ++j) dst[k * NR + j] = T(0);
      }
    }
  }
}

// ------------------------------------------------------------------ blocking
template <class T> struct Blocking;
// KC·NR·sizeof(T) of B micro-panel stays in L1 while MC×KC of A streams from L2.
template <> struct Blocking<float> { static constexpr i64 KC = 256, MCP = 16, NC = 4096; };
template <> struct Blocking<double> { static constexpr i64 KC = 192, MCP = 12, NC = 2048; };

// C at most this many NR-wide panels wide: A is read in place instead of packed. Packing costs
// about as much per element as kDirectPanels micro-kernel passes over it.
constexpr i64 kDirectPanels = 4;

// Each thread of a team gets at least this many flops (so two threads from 4 MFLOP).
// Measured on 2 shared cores (Zen 4), 1 vs 2 threads in separate processes: 64×128×128
// (2.1 MFLOP) 27 -> 21 us, 100×96×288 (5.5 MFLOP) 68 -> 53 us, 128×64×2048 410 -> 305 us;
// below ~2 MFLOP the gain is a few microseconds, while a fork/join on a machine where
// another process holds the second core can wait a scheduler slice (we saw 54 ms medians
// for 64×128×128 with two threads under load): not worth it.
constexpr double kParallelFlops = 2.0e6;

inline int team_size(double flops, int maxth) {
  const double t = flops / kParallelFlops;
  return t >= double(maxth) ? maxth : (t >= 2.0 ? int(t) : 1);
}

inline i64 cdiv(i64 a, i64 b) { return (a + b - 1) / b; }

template <class T>
void fill_rows(T* c, i64 ldc, i64 M, i64 N, const T* bias) {
  for (i64 i = 0; i < M; ++i)
    for (i64 j = 0; j < N; ++j) c[i * ldc + j] = bias ? bias[j] : T(0);
}

// One GEMM (no batch) on the calling thread: m×n of C from rows of A / columns of B already
// offset by the caller. Returns false when a packing buffer could not be allocated.
template <class T>
bool gemm_serial(const T* a, const T* b, const T* bias, T* c, i64 M, i64 N, const pf::GemmParams& p) {
  using Vt = typename VecOf<T>::type;
  constexpr int MR = kMR, NR = kNV * Vt::W;
  const i64 K = p.K;
  if (M <= 0 || N <= 0) return true;
  if (K == 0) { fill_rows(c, p.c_rs, M, N, bias); return true; }
  // kc from K alone (equal k blocks no larger than KC): the same summation order for every
  // element whatever the partition of C over threads.
  const i64 nkb = cdiv(K, Blocking<T>::KC);
  const i64 kc_max = cdiv(K, nkb);
  const i64 MC = MR * Blocking<T>::MCP;
  const i64 NC = Blocking<T>::NC;  // multiple of NR
  const i64 nc_max = N < NC ? N : NC;
  // A in place (no packing) when C is narrow and A has a unit stride in one direction
  const bool direct = cdiv(nc_max, NR) <= kDirectPanels && (p.a_cs == 1 || p.a_rs == 1);
  T* const bp = tls_b.get<T>(cdiv(nc_max, NR) * NR * kc_max);
  T* const ap = tls_a.get<T>(MC * kc_max);
  if (!bp || !ap) return false;
  for (i64 jc = 0; jc < N; jc += NC) {
    const i64 nc = N - jc < NC ? N - jc : NC;
    const i64 npan = cdiv(nc, NR);
    for (i64 kb = 0; kb < nkb; ++kb) {
      const i64 pc = kb * kc_max;
      const i64 kc = K - pc < kc_max ? K - pc : kc_max;
      const bool first = kb == 0, last = kb == nkb - 1;
      pack_b<T, NR>(b + pc * p.b_rs + jc * p.b_cs, p.b_rs, p.b_cs, kc, nc, 0, npan, bp);
      for (i64 ic = 0; ic < M; ic += MC) {
        const i64 mc = M - ic < MC ? M - ic : MC;
        // Narrow C: packing A would cost a third of the work (npan panels use it), so full
        // MR-row tiles read A in place; the rest (all of A otherwise) is packed.
        const i64 mdir = direct ? mc / MR * MR : 0;
        const T* ablk = a + ic * p.a_rs + pc * p.a_cs;
        if (mdir < mc) pack_a(ablk + mdir * p.a_rs, p.a_rs, p.a_cs, mc - mdir, kc, ap);
        // B micro-panel (kc×NR) stays in L1 across the MC/MR micro-tiles; A block in L2.
        for (i64 q = 0; q < npan; ++q) {
          const i64 j0 = q * NR;
          const int n = int(nc - j0 < NR ? nc - j0 : NR);
          const T* bb = (last && bias) ? bias + jc + j0 : nullptr;
          const T* bq = bp + q * kc * NR;
          T* cq = c + ic * p.c_rs + jc + j0;
          for (i64 i0 = 0; i0 < mc; i0 += MR) {
            const int m = int(mc - i0 < MR ? mc - i0 : MR);
            if (i0 >= mdir)
              micro_kernel<Vt>(kc, ap + (i0 - mdir) * kc, bq, cq + i0 * p.c_rs, p.c_rs, m, n, first, bb);
            else if (p.a_cs == 1)
              micro_kernel_a<Vt, false>(kc, ablk + i0 * p.a_rs, p.a_rs, bq, cq + i0 * p.c_rs, p.c_rs, m, n, first, bb);
            else
              micro_kernel_a<Vt, true>(kc, ablk + i0 * p.a_rs, p.a_cs, bq, cq + i0 * p.c_rs, p.c_rs, m, n, first, bb);
          }
        }
      }
    }
  }
  return true;
}

// Splits C (M×N) into tm × tn rectangles for nth threads, rows at MR and columns at NR
// granularity, choosing the factorization whose rectangles are closest to square (least
// packing: each thread packs its own A rows and B columns, so there is no barrier at all;
// the team only forks and joins, which matters on a busy machine where a barrier can wait
// a whole scheduler slice for a descheduled thread).
struct Split {
  i64 tm, tn;
};
template <class T>
Split split_for(i64 M, i64 N, int nth) {
  using Vt = typename VecOf<T>::type;
  constexpr int MR = kMR, NR = kNV * Vt::W;
  const i64 mt = cdiv(M, MR), nt = cdiv(N, NR);
  Split best{nth, 1};
  double best_cost = -1;
  for (i64 tm = 1; tm <= nth; ++tm) {
    if (nth % tm) continue;
    const i64 tn = nth / tm;
    if (tm > mt || tn > nt) continue;
    const double cost = double(M) / double(tm) + double(N) / double(tn);  // half-perimeter
    if (best_cost < 0 || cost < best_cost) { best_cost = cost; best = Split{tm, tn}; }
  }
  if (best_cost < 0) best = mt >= nt ? Split{mt < nth ? mt : nth, 1} : Split{1, nt < nth ? nt : nth};
  return best;
}

// Small C, long K (a weight gradient, C = gyᵀ·x over a batch): the number of K blocks whose
// products are summed in order; 1 when C has enough tiles to split. Depends on the shape only,
// never on the thread count, so the bits do not either.
template <class T>
i64 k_splits(const pf::GemmParams& p) {
  using Vt = typename VecOf<T>::type;
  constexpr int MR = kMR, NR = kNV * Vt::W;
  if (p.batch != 1 || p.K < 2048 || cdiv(p.M, MR) * cdiv(p.N, NR) > 32) return 1;
  const i64 s = p.K / 1024;
  return s < 8 ? s : 8;
}

// C = Σ over ks equal K blocks (in order) of A_blk · B_blk, each block's product on one thread.
template <class T>
bool gemm_ksplit(const T* a, const T* b, const T* bias, T* c, const pf::GemmParams& p, i64 ks, int nth) {
  const i64 kb = cdiv(p.K, ks), MN = p.M * p.N;
  T* const part = tls_part.get<T>(ks * MN);  // the calling thread's, shared with the team
  if (!part) return false;
  bool ok = true;
  const int team = int(ks < nth ? ks : nth);
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
  for (i64 j = 0; j < ks; ++j) {
    const i64 k0 = j * kb, k1 = p.K < k0 + kb ? p.K : k0 + kb;
    pf::GemmParams q = p;
    q.K = k1 > k0 ? k1 - k0 : 0;
    q.c_rs = p.N;
    if (!gemm_serial<T>(a + k0 * p.a_cs, b + k0 * p.b_rs, nullptr, part + j * MN, p.M, p.N, q)) {
#pragma omp atomic write
      ok = false;
    }
  }
  if (ok) {
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1 && MN >= 4096)
    for (i64 i = 0; i < p.M; ++i)
      for (i64 jn = 0; jn < p.N; ++jn) {
        T s = part[i * p.N + jn];
        for (i64 j = 1; j < ks; ++j) s = s + part[j * MN + i * p.N + jn];
        c[i * p.c_rs + jn] = bias ? s + bias[jn] : s;
      }
  }
  return ok;
}

template <class T>
void gemm(const T* a, const T* b, const T* bias, T* c, const pf::GemmParams& p) {
  if (p.batch <= 0 || p.M <= 0 || p.N <= 0) return;
  bool ok = true;
  int maxth = 1;
#if defined(_OPENMP)
  maxth = omp_get_max_threads();
#endif
  const double flops = 2.0 * double(p.M) * double(p.N) * double(p.K);
  const int nth = team_size(flops, maxth);
  if (const i64 ks = k_splits<T>(p); ks > 1) {
    if (!gemm_ksplit<T>(a, b, bias, c, p, ks, nth)) throw std::bad_alloc();
    return;
  }
  if (p.batch > 1 && nth < maxth) {
    // Many small products: whole products per thread, each serial (same bits as serial).
    const int bth = team_size(flops * double(p.batch), maxth);
#pragma omp parallel for schedule(static) num_threads(bth) if (bth > 1)
    for (i64 bt = 0; bt < p.batch; ++bt)
      if (!gemm_serial<T>(a + bt * p.a_bs, b + bt * p.b_bs, bias, c + bt * p.c_bs, p.M, p.N, p)) {
#pragma omp atomic write
        ok = false;
      }
  } else if (nth == 1) {
    for (i64 bt = 0; bt < p.batch && ok; ++bt)
      ok = gemm_serial<T>(a + bt * p.a_bs, b + bt * p.b_bs, bias, c + bt * p.c_bs, p.M, p.N, p);
  } else {
    using Vt = typename VecOf<T>::type;
    constexpr int MR = kMR, NR = kNV * Vt::W;
    const Split sp = split_for<T>(p.M, p.N, nth);
    const int team = int(sp.tm * sp.tn);
    const i64 mt = cdiv(p.M, MR), nt = cdiv(p.N, NR);
#pragma omp parallel num_threads(team)
    {
      int tid = 0;
#if defined(_OPENMP)
      tid = omp_get_thread_num();
#endif
      const i64 ti = tid / sp.tn, tj = tid % sp.tn;
      // Rectangle of micro-tiles, then of elements (the last one takes the ragged edge).
      const i64 r0 = (mt * ti / sp.tm) * MR, r1 = (mt * (ti + 1) / sp.tm) * MR;
      const i64 c0 = (nt * tj / sp.tn) * NR, c1 = (nt * (tj + 1) / sp.tn) * NR;
      const i64 m = (r1 < p.M ? r1 : p.M) - r0, n = (c1 < p.N ? c1 : p.N) - c0;
      bool mine = true;
      for (i64 bt = 0; bt < p.batch && mine; ++bt)
        mine = gemm_serial<T>(a + bt * p.a_bs + r0 * p.a_rs, b + bt * p.b_bs + c0 * p.b_cs, bias ? bias + c0 : nullptr,
                              c + bt * p.c_bs + r0 * p.c_rs + c0, m, n, p);
      if (!mine) {
#pragma omp atomic write
        ok = false;
      }
    }
  }
  if (!ok) throw std::bad_alloc();  // outside any parallel region: pybind11 makes it MemoryError
}

template <class T>
void colsum(const T* g, i64 rows, i64 cols, i64 rs, i64 cs, T* out) {
  // Parallel over column chunks; every column is summed over rows in increasing order.
  constexpr i64 CH = 256;
  const i64 nch = cdiv(cols, CH);
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
  for (i64 q = 0; q < nch; ++q) {
    const i64 j0 = q * CH, j1 = cols < j0 + CH ? cols : j0 + CH;
    T acc[CH];
    for (i64 j = j0; j < j1; ++j) acc[j - j0] = T(0);
    for (i64 i = 0; i < rows; ++i) {
      const T* row = g + i * rs;
      if (cs == 1) {
#pragma omp simd
        for (i64 j = j0; j < j1; ++j) acc[j - j0] += row[j];
      } else {
        for (i64 j = j0; j < j1; ++j) acc[j - j0] += row[j * cs];
      }
    }
    for (i64 j = j0; j < j1; ++j) out[j] = acc[j - j0];
  }
}
}  // namespace

void gemm_f32(const float* a, const float* b, const float* bias, float* c, const pf::GemmParams& p) { gemm(a, b, bias, c, p); }
void gemm_f64(const double* a, const double* b, const double* bias, double* c, const pf::GemmParams& p) { gemm(a, b, bias, c, p); }
void colsum_f32(const float* g, pf::i64 rows, pf::i64 cols, pf::i64 rs, pf::i64 cs, float* out) { colsum(g, rows, cols, rs, cs, out); }
void colsum_f64(const double* g, pf::i64 rows, pf::i64 cols, pf::i64 rs, pf::i64 cs, double* out) { colsum(g, rows, cols, rs, cs, out); }
}  // namespace PF_ISA_NS
