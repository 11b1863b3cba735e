// kernels/common/bf16_cpu.h: what the bfloat16 CPU kernels share (matmul_bf16_cpu.cpp,
// conv2d_bf16_cpu.cpp, the Winograd products of conv2d_winograd_cpu.h), AVX-512 + avx512_bf16
// only: its functions carry the avx512bf16 target, so a caller either compiles under that target
// or marks itself __attribute__((target("avx512bf16"))), and runs only where the CPU has it.
//   bf16_of(f)        float32 -> bfloat16 bits, nearest even, denormals to signed zero (by
//                     VCVTNEPS2BF16 itself, so scalar and vector packing give the same bits)
//   pair_of(k0, k1)   two floats -> one 32-bit pair word (k0 low)
//   cvt32(lo, hi)     32 floats (two vectors) -> 32 bfloat16 in order
//   pairs(v)          v = 16 bfloat16 of row 0 then 16 of row 1 -> 16 pair words (r0[j], r1[j])
//   tile(...)         the micro-kernel: acc (MR × 32 floats) = Σ over kp of A's pair words
//                     broadcast × B's pair rows, B's row kp at b + off[kp] (32-bit words; a
//                     packed panel has off[kp] = 32·kp, a convolution's shifted windows point
//                     into the image), A packed as a[kp·MR + i] (one base register for all
//                     14 broadcasts: 14 row pointers spilled). VDPBF16PS per (row, half):
//                     acc += a(k)·b(k) + a(k+1)·b(k+1) in float32, k in increasing order
//                     (zero = false: continue from acc's values, a later block of k).
#pragma once
#if defined(__AVX512F__)
#include <immintrin.h>

#include <cstdint>

#include "common/common.h"

#pragma GCC push_options
#pragma GCC target("avx512bf16")

namespace PF_ISA_NS {
namespace {
namespace bf16 {
using u16 = std::uint16_t;
using u32 = std::uint32_t;

constexpr int MR = 14, NR = 32;  // 28 zmm accumulators + 2 B vectors + 1 broadcast

inline u16 bf16_of(float f) {
  return u16(_mm_extract_epi16((__m128i)_mm_cvtneps_pbh(_mm_set_ss(f)), 0));
}

// (k0, k1) -> one pair word (k0 in the low half). Scalar conversions use the vector
// instruction itself, so every packing path rounds alike.
inline u32 pair_of(float k0, float k1) {
  return u32(_mm_cvtsi128_si32((__m128i)_mm_cvtneps_pbh(_mm_set_ps(0.0f, 0.0f, k1, k0))));
}

inline __m512i cvt32(__m512 lo, __m512 hi) { return (__m512i)_mm512_cvtne2ps_pbh(hi, lo); }

inline __m512i pairs(__m512i v) {
  const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                       21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(idx, v);
}

inline __mmask16 first_n16(pf::i64 n) { return n >= 16 ? __mmask16(0xffff) : n > 0 ? __mmask16((1u << n) - 1) : 0; }

inline __attribute__((always_inline)) void tile(pf::i64 KP, const u32* __restrict a, const u32* __restrict b,
                                                const pf::i64* __restrict off, __m512 (&acc)[MR][2],
                                                bool zero = true) {
  if (zero) {
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  }
#pragma GCC unroll 2
  for (pf::i64 kp = 0; kp < KP; ++kp, a += MR) {
    const u32* bk = b + off[kp];
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(bk), b1 = (__m512bh)_mm512_loadu_si512(bk + 16);
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) {
      const __m512bh ai = (__m512bh)_mm512_set1_epi32(int(a[i]));
      acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
      acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
    }
  }
}
}  // namespace bf16
}  // namespace
}  // namespace PF_ISA_NS
#pragma GCC pop_options
#endif
