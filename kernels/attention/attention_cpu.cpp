// kernels/attention/attention_cpu.cpp: flash-style attention forward and backward on the CPU.
// Compiled three times (generic, AVX2+FMA, AVX-512) into PF_ISA_NS; float32 and float64.
//
// Variants: the vector type V picks the SIMD width of the micro-kernels. AVX-512 uses 16
// floats (8 doubles) when D is a multiple of it and 8 floats (4 doubles) otherwise; AVX2 uses
// 8 floats / 4 doubles; the generic build a 4-wide struct. A head dim that is not a multiple of
// the narrowest width is zero-padded into scratch copies (the correct-for-any-D path).
//
// Layout trick: scores are computed transposed, St = K_tile . Qt_tile (keys x queries), so
//  - K and V rows are used straight from the input as broadcast operands (no packing),
//  - the online softmax runs vertically, W query rows per vector, no horizontal reductions,
//  - P.V reads St with strides and V rows directly.
// Only Q (and dO in the backward) is transposed, once per query tile / per head.
//
// Forward: OpenMP over (batch, head, query tile), heaviest causal tiles first; key tiles
// stream through an online softmax (base-2 exponent with scale*log2(e) folded into Q).
// Causal: key tiles entirely above the diagonal are never visited; keys every row of a query
// tile sees go in one piece, the diagonal ones in 16-key slices that start at the first query
// row seeing them (so the hidden triangle costs ~1/8 of a tile, not 1/2) and are masked.
// Backward (FlashAttention-2 recompute): OpenMP over (batch, head); per key tile, dK/dV tiles
// accumulate over query tiles in order, dQ accumulates in place in the head's own rows, so no
// atomics and the same bits for any thread count. With GQA (H > Hkv) each query head writes
// its dK/dV contribution to a scratch copy, summed afterwards over the group in head order.
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12 reports the deliberately undefined pass-through operand inside some AVX-512 intrinsics
// (_mm512_roundscale_ps, _mm512_max_pd) as "may be used uninitialized": a false positive.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <math.h>
#include <string.h>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "attention/attention.h"
#include "common/cpu_scratch.h"
#include "common/gemm_cpu.h"
#include "common/simd.h"

namespace PF_ISA_NS {
namespace {
using pf::i64;


constexpr double kLog2e = 1.4426950408889634074;
constexpr double kLn2 = 0.69314718055994530942;

// ------------------------------------------------------------------ vector types
// The vector layer is kernels/common/simd.h; here each type only gains the micro-kernel's
// register blocking: MR rows x NV vectors of accumulators.
#if defined(__AVX512F__)
struct F16 : simd::F16 { static constexpr int MR = 6, NV = 4; };
struct D8 : simd::D8 { static constexpr int MR = 6, NV = 4; };
#endif
#if defined(__AVX2__)
#if defined(__AVX512F__)
struct F8 : simd::F8 { static constexpr int MR = 6, NV = 4; };  // 32 vector registers
struct D4 : simd::D4 { static constexpr int MR = 6, NV = 4; };
#else
struct F8 : simd::F8 { static constexpr int MR = 6, NV = 2; };  // 16 vector registers: 12 accumulators
struct D4 : simd::D4 { static constexpr int MR = 6, NV = 2; };
#endif
#endif
template <class TT>
struct G4 : simd::G4<TT> { static constexpr int MR = 4, NV = 2; };

// ------------------------------------------------------------------ GEMM micro-kernels
// C (M x N) = or += A (M x K) . B (K x N), B[k*ldb + n], C[r*ldc + n], N % W == 0.
// A is either row-major, A[r*lda + k] (a block of K or V rows; AT = false), or column-major,
// A[k*lda + r] (a transposed score tile; AT = true): two loops with fixed addressing keep the
// MR x NV accumulators in registers over the whole K loop.
template <class V, int MR, int NV, bool AT, bool ACC>
inline void micro(i64 K, const typename V::T* A, i64 lda, const typename V::T* B, i64 ldb, typename V::T* C,
                  i64 ldc) {
  typename V::R c[MR][NV];
  if constexpr (ACC) {
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) c[r][v] = V::load(C + r * ldc + v * V::W);
  }
  // common/gemm_cpu.h's core; K >= 1 at every call site (its do-while form, KUNROLL = 1)
  gemm_tile<V, MR, NV, AT, 1, !ACC>(K, A, lda, B, ldb, c);
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) V::store(C + r * ldc + v * V::W, c[r][v]);
}

template <class V, int MR, bool AT, bool ACC>
inline void micro_nv(int nv, i64 K, const typename V::T* A, i64 lda, const typename V::T* B, i64 ldb,
                     typename V::T* C, i64 ldc) {
  switch (nv) {
    case 1: micro<V, MR, 1, AT, ACC>(K, A, lda, B, ldb, C, ldc); break;
    case 2: micro<V, MR, 2, AT, ACC>(K, A, lda, B, ldb, C, ldc); break;
    case 3: if constexpr (V::NV >= 3) micro<V, MR, 3, AT, ACC>(K, A, lda, B, ldb, C, ldc); break;
    default: if constexpr (V::NV >= 4) micro<V, MR, 4, AT, ACC>(K, A, lda, B, ldb, C, ldc); break;
  }
}

template <class V, bool AT, bool ACC>
void gemm_t(i64 M, i64 N, i64 K, const typename V::T* A, i64 lda, const typename V::T* B, i64 ldb,
            typename V::T* C, i64 ldc) {
  constexpr int W = V::W, MR = V::MR, NV = V::NV;
  const i64 ar = AT ? 1 : lda;  // distance between rows of A
  for (i64 n0 = 0; n0 < N; n0 += NV * W) {
    const int nv = int((N - n0) / W < NV ? (N - n0) / W : NV);
    i64 m0 = 0;
    if (nv == NV) {
      for (; m0 + MR <= M; m0 += MR) micro<V, MR, NV, AT, ACC>(K, A + m0 * ar, lda, B + n0, ldb, C + m0 * ldc + n0, ldc);
    } else {  // narrower last column chunk
      for (; m0 + MR <= M; m0 += MR)
        micro_nv<V, MR, AT, ACC>(nv, K, A + m0 * ar, lda, B + n0, ldb, C + m0 * ldc + n0, ldc);
    }
    const typename V::T* Ar = A + m0 * ar;
    typename V::T* Cr = C + m0 * ldc + n0;
    switch (M - m0) {
      case 0: break;
      case 1: micro_nv<V, 1, AT, ACC>(nv, K, Ar, lda, B + n0, ldb, Cr, ldc); break;
      case 2: micro_nv<V, 2, AT, ACC>(nv, K, Ar, lda, B + n0, ldb, Cr, ldc); break;
      case 3: micro_nv<V, 3, AT, ACC>(nv, K, Ar, lda, B + n0, ldb, Cr, ldc); break;
      case 4: if constexpr (MR > 4) micro_nv<V, 4, AT, ACC>(nv, K, Ar, lda, B + n0, ldb, Cr, ldc); break;
      default: if constexpr (MR > 5) micro_nv<V, 5, AT, ACC>(nv, K, Ar, lda, B + n0, ldb, Cr, ldc); break;
    }
  }
}

// A[r*sr + k*sk] with sk == 1 (row-major) or sr == 1 (column-major); every call here is one of them.
template <class V>
inline void gemm(i64 M, i64 N, i64 K, const typename V::T* A, i64 sr, i64 sk, const typename V::T* B, i64 ldb,
                 typename V::T* C, i64 ldc, bool acc) {
  if (sk == 1) {
    if (acc) gemm_t<V, false, true>(M, N, K, A, sr, B, ldb, C, ldc);
    else gemm_t<V, false, false>(M, N, K, A, sr, B, ldb, C, ldc);
  } else {
    if (acc) gemm_t<V, true, true>(M, N, K, A, sk, B, ldb, C, ldc);
    else gemm_t<V, true, false>(M, N, K, A, sk, B, ldb, C, ldc);
  }
}

inline i64 round_up(i64 x, i64 m) { return (x + m - 1) / m * m; }

constexpr i64 kBM = 64;  // query rows per tile (a multiple of every W)
constexpr i64 kBN = 64;  // keys per tile
constexpr i64 kBD = 16;  // keys per slice on the causal diagonal (a multiple of every W)

// ------------------------------------------------------------------ forward
// Core: D % V::W == 0. q (B,H,Lq,D), k/v (B,Hkv,Lk,D), out (B,H,Lq,D), lse (B,H,Lq).
template <class V>
void forward_core(const typename V::T* q, const typename V::T* k, const typename V::T* v, typename V::T* out,
                  typename V::T* lse, const pf::AttnParams& p) {
  using T = typename V::T;
  constexpr int W = V::W;
  const i64 D = p.D, G = p.H / p.Hkv, off = p.Lk - p.Lq;
  const i64 nqt = (p.Lq + kBM - 1) / kBM;
  const i64 ntasks = p.B * p.H * nqt;
  if (ntasks == 0) return;
  const T c2 = T(p.scale * kLog2e);
  // per thread: Qt (D x BM), St (BN x BM), O (BM x D), m, l, alpha (BM each)
  const i64 per = D * kBM + kBN * kBM + kBM * D + 3 * kBM;
  const int nth = max_threads();
  Scratch<T> scratch(per * nth);
#pragma omp parallel
  {
    T* const base = scratch.p + per * thread_id();
    T* const Qt = base;
    T* const St = Qt + D * kBM;
    T* const O = St + kBN * kBM;
    T* const m = O + kBM * D;
    T* const l = m + kBM;
    T* const alpha = l + kBM;
#pragma omp for schedule(dynamic, 1)
    for (i64 t = 0; t < ntasks; ++t) {
      // Last query tiles first: under a causal mask they are the longest.
      const i64 it = nqt - 1 - t % nqt, bh = t / nqt, b = bh / p.H, h = bh % p.H;
      const i64 i0 = it * kBM, rows = (p.Lq - i0) < kBM ? (p.Lq - i0) : kBM, Np = round_up(rows, W);
      const T* Q = q + (bh * p.Lq + i0) * D;
      const i64 kvs = p.kv_bs ? p.kv_bs : p.Lk * D;  // a (b, kv head) block of k and v
      const T* K = k + (b * p.Hkv + h / G) * kvs;
      const T* Vv = v + (b * p.Hkv + h / G) * kvs;
      // Qt (D x BM): transposed, pre-multiplied by scale*log2(e); padding columns zero.
      for (i64 d = 0; d < D; ++d) {
        for (i64 r = 0; r < rows; ++r) Qt[d * kBM + r] = Q[r * D + d] * c2;
        for (i64 r = rows; r < Np; ++r) Qt[d * kBM + r] = T(0);
      }
      for (i64 i = 0; i < rows * D; ++i) O[i] = T(0);
      for (i64 r = 0; r < Np; ++r) m[r] = -INFINITY, l[r] = T(0);
      const i64 kend = p.causal ? ((i0 + rows + off) < p.Lk ? (i0 + rows + off) : p.Lk) : p.Lk;
      for (i64 j0 = 0; j0 < kend;) {
        // Near the diagonal, keys go in slices of kBD so each slice skips the query rows
        // (rs and above are the only ones that see any of its keys).
        i64 step = kBN;
        if (p.causal) {  // keys every row of the tile sees go in one piece, the rest in kBD slices
          const i64 vis = i0 + off + 1 - j0;
          if (vis < kBN) step = vis >= kBD ? vis / kBD * kBD : kBD;
        }
        const i64 n = (kend - j0) < step ? (kend - j0) : step;
        i64 rs = p.causal ? j0 - off - i0 : 0;
        rs = rs < 0 ? 0 : rs / W * W;
        // St (n x [rs, Np)) = K[j0:j0+n] . Qt
        gemm<V>(n, Np - rs, D, K + j0 * D, D, 1, Qt + rs, kBM, St + rs, kBM, false);
        if (p.causal && j0 + n - 1 > i0 + off) {
          // key j is hidden from rows r < j - off - i0
          for (i64 c = 0; c < n; ++c) {
            i64 hide = j0 + c - off - i0;
            if (hide > Np) hide = Np;
            for (i64 r = rs; r < hide; ++r) St[c * kBM + r] = -INFINITY;
          }
        }
        for (i64 r0 = rs; r0 < Np; r0 += W) {
          const typename V::R mold = V::load(m + r0);
          // four independent chains: one max per key would wait on the previous (latency 4)
          typename V::R mx0 = mold, mx1 = mold, mx2 = mold, mx3 = mold;
          i64 c = 0;
          for (; c + 4 <= n; c += 4) {
            mx0 = V::max(V::load(St + c * kBM + r0), mx0);
            mx1 = V::max(V::load(St + (c + 1) * kBM + r0), mx1);
            mx2 = V::max(V::load(St + (c + 2) * kBM + r0), mx2);
            mx3 = V::max(V::load(St + (c + 3) * kBM + r0), mx3);
          }
          for (; c < n; ++c) mx0 = V::max(V::load(St + c * kBM + r0), mx0);
          // (a NaN score never enters a chain: max(x, m) keeps m when x is NaN, as before)
          const typename V::R mx = V::max(V::max(mx0, mx1), V::max(mx2, mx3));
          typename V::R s = V::zero();
          for (i64 c = 0; c < n; ++c) {
            const typename V::R e = V::exp2(V::sub(V::load(St + c * kBM + r0), mx));
            V::store(St + c * kBM + r0, e);
            s = V::add(s, e);
          }
          const typename V::R a = V::exp2(V::sub(mold, mx));
          V::store(alpha + r0, a);
          V::store(m + r0, mx);
          V::store(l + r0, V::fma(V::load(l + r0), a, s));
        }
        if (j0 > 0) {  // (the first slice always has rs = 0)
          for (i64 r = rs; r < rows; ++r) {
            const typename V::R a = V::set1(alpha[r]);
            for (i64 d = 0; d < D; d += W) V::store(O + r * D + d, V::mul(V::load(O + r * D + d), a));
          }
        }
        // O (rows x D) += P (rows x n, read from St transposed) . V[j0:j0+n]
        if (p.causal && j0 + n - 1 > i0 + off) {
          // On the diagonal each row multiplies only the keys it sees: a hidden key's weight
          // is an exact 0, but 0 * (Inf or NaN in its v row) would still be NaN.
          for (i64 r0 = rs; r0 < rows; r0 += V::MR) {
            const i64 r1 = (r0 + V::MR) < rows ? (r0 + V::MR) : rows;
            i64 all = r0 + off + i0 - j0 + 1;  // keys every row of [r0, r1) sees
            all = all < 0 ? 0 : (all > n ? n : all);
            if (all > 0) gemm<V>(r1 - r0, D, all, St + r0, 1, kBM, Vv + j0 * D, D, O + r0 * D, D, true);
            for (i64 r = r0 + 1; r < r1; ++r) {
              i64 seen = r + off + i0 - j0 + 1;
              seen = seen > n ? n : seen;
              if (seen > all)
                gemm<V>(1, D, seen - all, St + all * kBM + r, 1, kBM, Vv + (j0 + all) * D, D, O + r * D, D, true);
            }
          }
        } else {
          gemm<V>(rows - rs, D, n, St + rs, 1, kBM, Vv + j0 * D, D, O + rs * D, D, true);
        }
        j0 += n;
      }
      T* outp = out + (bh * p.Lq + i0) * D;
      T* lsep = lse + bh * p.Lq + i0;
      for (i64 r = 0; r < rows; ++r) {
        const typename V::R inv = V::set1(T(1) / l[r]);
        for (i64 d = 0; d < D; d += W) V::store(outp + r * D + d, V::mul(V::load(O + r * D + d), inv));
        lsep[r] = T((double(m[r]) + ::log2(double(l[r]))) * kLn2);
      }
    }
  }
}

// ------------------------------------------------------------------ backward
template <class V>
void backward_core(const typename V::T* dout, const typename V::T* q, const typename V::T* k,
                   const typename V::T* v, const typename V::T* out, const typename V::T* lse, typename V::T* dq,
                   typename V::T* dk, typename V::T* dv, const pf::AttnParams& p) {
  using T = typename V::T;
  constexpr int W = V::W;
  const i64 D = p.D, G = p.H / p.Hkv, off = p.Lk - p.Lq;
  const i64 ntasks = p.B * p.H;
  const i64 kv_size = p.B * p.Hkv * p.Lk * D;
  if (ntasks == 0 || p.Lq == 0) {
    for (i64 i = 0; i < kv_size; ++i) dk[i] = T(0), dv[i] = T(0);
    return;
  }
  const T c2 = T(p.scale * kLog2e), scale = T(p.scale);
  const i64 Lqp = round_up(p.Lq, W);
  // per thread: Qt, dOt (D x Lqp), lse2, Di (Lqp), St, dSt (BN x BM), dKa, dVa (BN x D)
  const i64 per = 2 * D * Lqp + 2 * Lqp + 2 * kBN * kBM + 2 * kBN * D;
  const int nth = max_threads();
  Scratch<T> scratch(per * nth);
  // GQA: per-query-head dK/dV contributions, summed over the group in head order below.
  Scratch<T> part(G > 1 ? 2 * p.B * p.H * p.Lk * D : 0);
#pragma omp parallel
  {
    T* const base = scratch.p + per * thread_id();
    T* const Qt = base;
    T* const dOt = Qt + D * Lqp;
    T* const lse2 = dOt + D * Lqp;
    T* const Di = lse2 + Lqp;
    T* const St = Di + Lqp;
    T* const dSt = St + kBN * kBM;
    T* const dKa = dSt + kBN * kBM;
    T* const dVa = dKa + kBN * D;
#pragma omp for schedule(dynamic, 1)
    for (i64 bh = 0; bh < ntasks; ++bh) {
      const i64 b = bh / p.H, h = bh % p.H, hk = h / G;
      const T* Q = q + bh * p.Lq * D;
      const T* dO = dout + bh * p.Lq * D;
      const T* Oo = out + bh * p.Lq * D;
      const T* K = k + (b * p.Hkv + hk) * p.Lk * D;
      const T* Vv = v + (b * p.Hkv + hk) * p.Lk * D;
      T* dQ = dq + bh * p.Lq * D;
      T* dK = G > 1 ? part.p + bh * p.Lk * D : dk + (b * p.Hkv + hk) * p.Lk * D;
      T* dV = G > 1 ? part.p + (p.B * p.H + bh) * p.Lk * D : dv + (b * p.Hkv + hk) * p.Lk * D;
      for (i64 d = 0; d < D; ++d) {
        for (i64 i = 0; i < p.Lq; ++i) Qt[d * Lqp + i] = Q[i * D + d] * c2, dOt[d * Lqp + i] = dO[i * D + d];
        for (i64 i = p.Lq; i < Lqp; ++i) Qt[d * Lqp + i] = T(0), dOt[d * Lqp + i] = T(0);
      }
      for (i64 i = 0; i < p.Lq; ++i) {
        T s = 0;
        for (i64 d = 0; d < D; ++d) s += dO[i * D + d] * Oo[i * D + d];
        Di[i] = s;
        lse2[i] = T(double(lse[bh * p.Lq + i]) * kLog2e);
      }
      for (i64 i = p.Lq; i < Lqp; ++i) Di[i] = T(0), lse2[i] = INFINITY;  // padding rows: P = 0
      for (i64 i = 0; i < p.Lq * D; ++i) dQ[i] = T(0);
      for (i64 j0 = 0; j0 < p.Lk; j0 += kBN) {
        const i64 n = (p.Lk - j0) < kBN ? (p.Lk - j0) : kBN;
        for (i64 i = 0; i < n * D; ++i) dKa[i] = T(0), dVa[i] = T(0);
        // first query row that sees key j0, rounded down to a vector boundary so tiles of Qt stay in range
        i64 istart = p.causal ? (j0 - off > 0 ? j0 - off : 0) : 0;
        istart = istart / W * W;
        for (i64 i0 = istart; i0 < p.Lq; i0 += kBM) {
          const i64 rows = (p.Lq - i0) < kBM ? (p.Lq - i0) : kBM, Np = round_up(rows, W);
          // On the causal diagonal, 16-key slices skip the query rows that see none of their keys.
          const bool diag = p.causal && j0 + n - 1 > i0 + off;
          const i64 slice = diag ? kBD : n;
          for (i64 c0 = 0; c0 < n; c0 += slice) {
            const i64 nc = (n - c0) < slice ? (n - c0) : slice;
            i64 rs = p.causal ? j0 + c0 - off - i0 : 0;
            rs = rs < 0 ? 0 : rs / W * W;
            if (rs >= rows) continue;  // seen only by later query tiles
            const T* Kc = K + (j0 + c0) * D;
            const T* Vc = Vv + (j0 + c0) * D;
            gemm<V>(nc, Np - rs, D, Kc, D, 1, Qt + i0 + rs, Lqp, St + rs, kBM, false);   // St = S^T (log2 units)
            gemm<V>(nc, Np - rs, D, Vc, D, 1, dOt + i0 + rs, Lqp, dSt + rs, kBM, false);  // dSt = dP^T
            for (i64 c = 0; c < nc; ++c) {
              const i64 hv = j0 + c0 + c - off - i0;
              const i64 hide = diag ? (hv < Np ? hv : Np) : 0;
              for (i64 r0 = rs; r0 < Np; r0 += W) {
                typename V::R pr = V::exp2(V::sub(V::load(St + c * kBM + r0), V::load(lse2 + i0 + r0)));
                V::store(St + c * kBM + r0, pr);
              }
              for (i64 r = rs; r < hide; ++r) St[c * kBM + r] = T(0);
              for (i64 r0 = rs; r0 < Np; r0 += W) {
                const typename V::R ds =
                    V::mul(V::load(St + c * kBM + r0), V::sub(V::load(dSt + c * kBM + r0), V::load(Di + i0 + r0)));
                V::store(dSt + c * kBM + r0, ds);
              }
            }
            // dV (nc x D) += P^T . dO ; dK += dS^T . Q ; dQ (rows x D) += dS . K
            gemm<V>(nc, D, rows - rs, St + rs, kBM, 1, dO + (i0 + rs) * D, D, dVa + c0 * D, D, true);
            gemm<V>(nc, D, rows - rs, dSt + rs, kBM, 1, Q + (i0 + rs) * D, D, dKa + c0 * D, D, true);
            gemm<V>(rows - rs, D, nc, dSt + rs, 1, kBM, Kc, D, dQ + (i0 + rs) * D, D, true);
          }
        }
        for (i64 i = 0; i < n * D; ++i) dK[j0 * D + i] = dKa[i] * scale, dV[j0 * D + i] = dVa[i];
      }
      for (i64 i = 0; i < p.Lq * D; ++i) dQ[i] *= scale;
    }
    if (G > 1) {
      // Sum the G query heads of each kv head in head order: deterministic.
      const i64 rowsz = p.Lk * D;
#pragma omp for schedule(static)
      for (i64 bk = 0; bk < p.B * p.Hkv; ++bk) {
        const i64 b = bk / p.Hkv, hk = bk % p.Hkv;
        T* dKo = dk + bk * rowsz;
        T* dVo = dv + bk * rowsz;
        for (i64 i = 0; i < rowsz; ++i) dKo[i] = T(0), dVo[i] = T(0);
        for (i64 g = 0; g < G; ++g) {
          const i64 bh = b * p.H + hk * G + g;
          const T* pk = part.p + bh * rowsz;
          const T* pv = part.p + (p.B * p.H + bh) * rowsz;
          for (i64 i = 0; i < rowsz; ++i) dKo[i] += pk[i], dVo[i] += pv[i];
        }
      }
    }
  }
}

// ------------------------------------------------------------------ any D: zero padding
// Copies (n rows of D) into (n rows of Dp) with zeros; the padded lanes add nothing to q.k
// and produce zero output lanes that are dropped on the way back.
template <class T>
void pad_rows(const T* src, T* dst, i64 n, i64 D, i64 Dp) {
#pragma omp parallel for schedule(static) if (n * Dp > 65536)
  for (i64 i = 0; i < n; ++i) {
    for (i64 d = 0; d < D; ++d) dst[i * Dp + d] = src[i * D + d];
    for (i64 d = D; d < Dp; ++d) dst[i * Dp + d] = T(0);
  }
}
template <class T>
void unpad_rows(const T* src, T* dst, i64 n, i64 D, i64 Dp) {
#pragma omp parallel for schedule(static) if (n * Dp > 65536)
  for (i64 i = 0; i < n; ++i)
    for (i64 d = 0; d < D; ++d) dst[i * D + d] = src[i * Dp + d];
}

template <class V>
void forward_padded(const typename V::T* q, const typename V::T* k, const typename V::T* v, typename V::T* out,
                    typename V::T* lse, const pf::AttnParams& p) {
  using T = typename V::T;
  const i64 D = p.D, Dp = round_up(D, V::W);
  if (Dp == D) return forward_core<V>(q, k, v, out, lse, p);
  const i64 nq = p.B * p.H * p.Lq, nk = p.B * p.Hkv * p.Lk;
  Scratch<T> qp(nq * Dp), kp(nk * Dp), vp(nk * Dp), op(nq * Dp);
  pad_rows(q, qp.p, nq, D, Dp);
  const i64 kvs = p.kv_bs ? p.kv_bs : p.Lk * D;  // k, v blocks may be spaced (a KV cache's views)
  for (i64 blk = 0; blk < p.B * p.Hkv; ++blk) {
    pad_rows(k + blk * kvs, kp.p + blk * p.Lk * Dp, p.Lk, D, Dp);
    pad_rows(v + blk * kvs, vp.p + blk * p.Lk * Dp, p.Lk, D, Dp);
  }
  pf::AttnParams pp = p;
  pp.D = Dp;
  pp.kv_bs = 0;
  forward_core<V>(qp.p, kp.p, vp.p, op.p, lse, pp);
  unpad_rows(op.p, out, nq, D, Dp);
}

template <class V>
void backward_padded(const typename V::T* dout, const typename V::T* q, const typename V::T* k,
                     const typename V::T* v, const typename V::T* out, const typename V::T* lse, typename V::T* dq,
                     typename V::T* dk, typename V::T* dv, const pf::AttnParams& p) {
  using T = typename V::T;
  const i64 D = p.D, Dp = round_up(D, V::W);
  if (Dp == D) return backward_core<V>(dout, q, k, v, out, lse, dq, dk, dv, p);
  const i64 nq = p.B * p.H * p.Lq, nk = p.B * p.Hkv * p.Lk;
  Scratch<T> dop(nq * Dp), qp(nq * Dp), kp(nk * Dp), vp(nk * Dp), op(nq * Dp), dqp(nq * Dp), dkp(nk * Dp),
      dvp(nk * Dp);
  pad_rows(dout, dop.p, nq, D, Dp);
  pad_rows(q, qp.p, nq, D, Dp);
  pad_rows(k, kp.p, nk, D, Dp);
  pad_rows(v, vp.p, nk, D, Dp);
  pad_rows(out, op.p, nq, D, Dp);
  pf::AttnParams pp = p;
  pp.D = Dp;
  backward_core<V>(dop.p, qp.p, kp.p, vp.p, op.p, lse, dqp.p, dkp.p, dvp.p, pp);
  unpad_rows(dqp.p, dq, nq, D, Dp);
  unpad_rows(dkp.p, dk, nk, D, Dp);
  unpad_rows(dvp.p, dv, nk, D, Dp);
}

// The widest vector whose width divides D; otherwise pad D to the narrowest.
#if defined(__AVX512F__)
#define PF_ATTN_DISPATCH_F(fn, ...) (p.D % 16 == 0 ? fn<F16>(__VA_ARGS__) : fn<F8>(__VA_ARGS__))
#define PF_ATTN_DISPATCH_D(fn, ...) (p.D % 8 == 0 ? fn<D8>(__VA_ARGS__) : fn<D4>(__VA_ARGS__))
#elif defined(__AVX2__)
#define PF_ATTN_DISPATCH_F(fn, ...) fn<F8>(__VA_ARGS__)
#define PF_ATTN_DISPATCH_D(fn, ...) fn<D4>(__VA_ARGS__)
#else
#define PF_ATTN_DISPATCH_F(fn, ...) fn<G4<float>>(__VA_ARGS__)
#define PF_ATTN_DISPATCH_D(fn, ...) fn<G4<double>>(__VA_ARGS__)
#endif
}  // namespace

void attention_forward_f32(const float* q, const float* k, const float* v, float* out, float* lse,
                           const pf::AttnParams& p) {
  PF_ATTN_DISPATCH_F(forward_padded, q, k, v, out, lse, p);
}
void attention_forward_f64(const double* q, const double* k, const double* v, double* out, double* lse,
                           const pf::AttnParams& p) {
  PF_ATTN_DISPATCH_D(forward_padded, q, k, v, out, lse, p);
}
void attention_backward_f32(const float* dout, const float* q, const float* k, const float* v, const float* out,
                            const float* lse, float* dq, float* dk, float* dv, const pf::AttnParams& p) {
  PF_ATTN_DISPATCH_F(backward_padded, dout, q, k, v, out, lse, dq, dk, dv, p);
}
void attention_backward_f64(const double* dout, const double* q, const double* k, const double* v,
                            const double* out, const double* lse, double* dq, double* dk, double* dv,
                            const pf::AttnParams& p) {
  PF_ATTN_DISPATCH_D(backward_padded, dout, q, k, v, out, lse, dq, dk, dv, p);
}
}  // namespace PF_ISA_NS
