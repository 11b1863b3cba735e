// kernels/common/gemm_cpu.h: the register-blocked outer-product core of the CPU GEMMs
// (conv2d's implicit GEMMs in kernels/conv2d/conv2d_gemm_cpu.h, and kernels/matmul):
//
//   acc[i][v] = Σ_k A(i, k) · B(k, v·W .. v·W + W)      i < MR, v < NV, k < kc
//
// A read at a[k·lda + i] (AT: column-major; a packed (kc, MR) panel is lda = MR) or at
// a[i·lda + k] (row-major, in place); B's row k at b + k·ldb (a packed (kc, NR) panel is
// ldb = NR). Every output sums its k in order, one FMA at a time: packed or in place, any tile
// size, the same bits. Vt: a vector type of common/simd.h (or a portable stand-in with R, T,
// W, zero, set1, load, fma). The callers keep their tile sizes (AVX-512 float: conv2d 8×32,
// matmul 14×32) and their epilogues (conv2d seeds rows with the bias, matmul adds a column
// bias and may accumulate into C; attention continues from C's values, ZERO = false).
// KUNROLL: unroll of the k loop, 2 or 4 (the loop's scalar bookkeeping otherwise lands on the
// FMA ports: 8×32 in L1 185 -> 224 GFLOP/s at 4 on Golden Cove), or 1: a do-while for callers
// that guarantee kc >= 1 (attention: a loop that may run zero times made GCC keep a stack copy
// of the accumulators, ~5% of a 64-step call). Included from *_cpu.cpp files only (compiled
// once per ISA).
#pragma once
#include "common/common.h"

#if defined(__GNUC__) && !defined(PF_SANITIZE)
#define PF_GEMM_INLINE inline __attribute__((always_inline))
#else
#define PF_GEMM_INLINE inline
#endif

namespace PF_ISA_NS {
namespace {

// One k step: acc += A(:, k) ⊗ B(k, :). ak: A at step k (element i at ak[i] if AT, else
// ak[i·lda]); bk: B's row k.
template <class Vt, int MR, int NV, bool AT>
PF_GEMM_INLINE void gemm_step(const typename Vt::T* __restrict ak, pf::i64 lda, const typename Vt::T* __restrict bk,
                              typename Vt::R (&acc)[MR][NV]) {
  using R = typename Vt::R;
  constexpr int W = Vt::W;
  R bv[NV];
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) bv[v] = Vt::load(bk + v * W);
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    const R ai = Vt::set1(AT ? ak[i] : ak[i * lda]);
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[i][v] = Vt::fma(ai, bv[v], acc[i][v]);
  }
}

template <class Vt, int MR, int NV, bool AT, int KUNROLL, bool ZERO = true>
PF_GEMM_INLINE void gemm_tile(pf::i64 kc, const typename Vt::T* __restrict a, pf::i64 lda,
                              const typename Vt::T* __restrict b, pf::i64 ldb, typename Vt::R (&acc)[MR][NV]) {
  static_assert(KUNROLL == 1 || KUNROLL == 2 || KUNROLL == 4, "gemm_tile: KUNROLL is 1, 2 or 4");
  if constexpr (ZERO) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[i][v] = Vt::zero();
  }
  const pf::i64 astep = AT ? lda : 1;
  if constexpr (KUNROLL == 4) {
#pragma GCC unroll 4
    for (pf::i64 k = 0; k < kc; ++k, a += astep, b += ldb) gemm_step<Vt, MR, NV, AT>(a, lda, b, acc);
  } else if constexpr (KUNROLL == 2) {
#pragma GCC unroll 2
    for (pf::i64 k = 0; k < kc; ++k, a += astep, b += ldb) gemm_step<Vt, MR, NV, AT>(a, lda, b, acc);
  } else {  // indexed addressing here (pointer bumps cost attention's calls ~3%)
    pf::i64 k = 0;
    do {
      gemm_step<Vt, MR, NV, AT>(a + k * astep, lda, b + k * ldb, acc);
    } while (++k < kc);
  }
}

}  // namespace
}  // namespace PF_ISA_NS
