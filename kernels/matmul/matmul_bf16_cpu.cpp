// kernels/matmul/matmul_bf16_cpu.cpp: C = A @ B (+ bias along columns), batched, with bfloat16
// products: float32 in and out, A and B rounded to bfloat16 (nearest even) as they are packed,
// every product summed in float32 by VDPBF16PS (avx512_bf16: each float32 lane adds
// a(k)·b(k) + a(k+1)·b(k+1), twice the float32 FMA's products per instruction).
//   A -> per row tile, a[kp][i] pair words (MR rows, K padded to even Kp): A's pair (k, k+1) is
//        one 32-bit word, broadcast to the 16 lanes
//   B -> panels of NR = 32 columns: bp[panel][kp][j][2] (kp = k / 2; one pair row = 2 zmm)
//   per product, per block of k (≤ 256 pairs; C holds the partial sums) and block of B's panels
//   (~512 KiB, L2): convert the block (threads split its panels), then the threads split the
//   (row tile, panel) grid in row-major order (a thread converts an A tile when it starts one
//   and keeps it in L1 while the block's panels stream from L2); each tile runs the k block in
//   its registers (14×32: 28 zmm accumulators), continuing from C's partial sums.
// Every C element sums its pairs in increasing k in one accumulator: the same bits for any
// thread count and any partition. Operands' denormals are read as zero (as VCVTNE2PS2BF16
// does; the scalar packing path does the same, so layouts do not change results).
// The readable reference is ops/_ref/matmul.py (operands rounded to bfloat16, float64 sums).
// Variants: AVX-512 + avx512_bf16 only: this file compiles to nothing in the other ISA
// builds, and the Python layer computes in float32 where the CPU lacks avx512_bf16.
#if defined(__AVX512F__)
#pragma GCC target("avx512bf16")
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <new>

#include "common/bf16_cpu.h"
#include "common/cpu_scratch.h"
#include "matmul/matmul.h"

namespace PF_ISA_NS {
namespace {
using pf::i64;

using namespace bf16;  // common/bf16_cpu.h: MR, NR, bf16_of, cvt32, pairs, tile

constexpr double kParallelFlops = 2.0e6;  // per thread, as float32's (two threads from 4 MFLOP)
constexpr i64 kKCP = 256;  // pairs per k block: A's tile (14 × 256 words, 14 KiB) stays in L1

thread_local KeptScratch tls_abf, tls_bbf, tls_off;  // an A row tile (each thread's), B and its row offsets (the caller's)

inline i64 cdiv(i64 a, i64 b) { return (a + b - 1) / b; }

// A's rows [i0, i0 + MR) (M×K, strides rs, cs) -> dst[kp][i] pair words (k past K and rows
// past M zero), through rows (MR × Kp bfloat16). Converted per row tile by the thread that
// uses it, while the tile is hot: a separate pass over all of A costs its bfloat16 copy's
// write and re-read, which a narrow C (N = 96: 3 panels use each A element) cannot hide.
void convert_a_tile(const float* a, i64 rs, i64 cs, i64 M, i64 K, i64 Kp, i64 i0, u16* rows, u32* dst) {
  for (i64 r = 0; r < MR; ++r) {
    const i64 i = i0 + r;
    u16* d = rows + r * Kp;
    if (i >= M) { std::memset(d, 0, sizeof(u16) * Kp); continue; }
    const float* row = a + i * rs;
    if (cs == 1) {
      for (i64 k = 0; k < Kp; k += 32) {
        const i64 left = K - k;
        const __m512i v = cvt32(_mm512_maskz_loadu_ps(first_n16(left), row + k),
                                _mm512_maskz_loadu_ps(first_n16(left - 16), row + k + 16));
        const i64 w = Kp - k < 32 ? Kp - k : 32;
        _mm512_mask_storeu_epi16(d + k, w >= 32 ? __mmask32(~0u) : __mmask32((1u << w) - 1), v);
      }
    } else {
      for (i64 k = 0; k < K; ++k) d[k] = bf16_of(row[k * cs]);
      for (i64 k = K; k < Kp; ++k) d[k] = 0;
    }
  }
  const u32* r32 = reinterpret_cast<const u32*>(rows);
  const i64 KP = Kp / 2;
  for (i64 kp = 0; kp < KP; ++kp)
    for (int r = 0; r < MR; ++r) dst[kp * MR + r] = r32[r * KP + kp];
}

// B (K×N, strides rs, cs) -> panels [kp][j][2], zero-padded columns and the odd k.
// Panel p (columns [32p, 32p + 32)) into dst (KP pair rows of NR words).
void convert_b_panel(const float* b, i64 rs, i64 cs, i64 K, i64 N, i64 KP, i64 p, u16* dst) {
  {
    const i64 j0 = p * NR;
    const int n = int(N - j0 < NR ? N - j0 : NR);
    const float* src = b + j0 * cs;
    if (cs == 1) {
      const __mmask16 m0 = first_n16(n), m1 = first_n16(n - 16);
      for (i64 kp = 0; kp < KP; ++kp) {
        const float* r0 = src + 2 * kp * rs;
        const bool has1 = 2 * kp + 1 < K;
        const float* r1 = has1 ? r0 + rs : r0;
        const __mmask16 h0 = has1 ? m0 : 0, h1 = has1 ? m1 : 0;
        const __m512i lo = cvt32(_mm512_maskz_loadu_ps(m0, r0), _mm512_maskz_loadu_ps(h0, r1));
        const __m512i hi = cvt32(_mm512_maskz_loadu_ps(m1, r0 + 16), _mm512_maskz_loadu_ps(h1, r1 + 16));
        _mm512_storeu_si512(dst + kp * 64, pairs(lo));
        _mm512_storeu_si512(dst + kp * 64 + 32, pairs(hi));
      }
    } else if (rs == 1) {
      // Transposed B (a Linear weight (out, in) read as in×out): each column is contiguous
      // along k, so 32 k convert at once into 16 pair words, then spread over the pair rows.
      u32* d32 = reinterpret_cast<u32*>(dst);
      alignas(64) u32 words[16];
      for (int j = 0; j < NR; ++j) {
        if (j >= n) {
          for (i64 kp = 0; kp < KP; ++kp) d32[kp * NR + j] = 0;
          continue;
        }
        const float* col = src + j * cs;
        for (i64 k = 0; k < 2 * KP; k += 32) {
          const i64 left = K - k;
          const __mmask16 q0 = first_n16(left), q1 = first_n16(left - 16);
          _mm512_store_si512(words, cvt32(_mm512_maskz_loadu_ps(q0, col + k), _mm512_maskz_loadu_ps(q1, col + k + 16)));
          const i64 kp0 = k / 2, w = KP - kp0 < 16 ? KP - kp0 : 16;
          for (i64 t = 0; t < w; ++t) d32[(kp0 + t) * NR + j] = words[t];
        }
      }
    } else {
      for (i64 kp = 0; kp < KP; ++kp)
        for (int j = 0; j < NR; ++j)
          for (int t = 0; t < 2; ++t) {
            const i64 k = 2 * kp + t;
            dst[(kp * NR + j) * 2 + t] = (j < n && k < K) ? bf16_of(src[k * rs + j * cs]) : u16(0);
          }
    }
  }
}

// C's m×n corner -> acc (a later k block continues from it).
inline void load(__m512 (&acc)[MR][2], const float* __restrict c, i64 ldc, int m, int n) {
  if (m == MR && n == NR) {
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) acc[i][0] = _mm512_loadu_ps(c + i * ldc), acc[i][1] = _mm512_loadu_ps(c + i * ldc + 16);
    return;
  }
  const __mmask16 m0 = first_n16(n), m1 = first_n16(n - 16);
  for (int i = 0; i < MR; ++i) {
    acc[i][0] = i < m ? _mm512_maskz_loadu_ps(m0, c + i * ldc) : _mm512_setzero_ps();
    acc[i][1] = i < m ? _mm512_maskz_loadu_ps(m1, c + i * ldc + 16) : _mm512_setzero_ps();
  }
}

inline void store(__m512 (&acc)[MR][2], float* __restrict c, i64 ldc, int m, int n, const float* __restrict bias) {
  if (m == MR && n == NR) {
    const __m512 b0 = bias ? _mm512_loadu_ps(bias) : _mm512_setzero_ps();
    const __m512 b1 = bias ? _mm512_loadu_ps(bias + 16) : _mm512_setzero_ps();
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) {
      _mm512_storeu_ps(c + i * ldc, bias ? _mm512_add_ps(acc[i][0], b0) : acc[i][0]);
      _mm512_storeu_ps(c + i * ldc + 16, bias ? _mm512_add_ps(acc[i][1], b1) : acc[i][1]);
    }
    return;
  }
  alignas(64) float tmp[MR * NR];
  for (int i = 0; i < MR; ++i) {
    _mm512_store_ps(tmp + i * NR, acc[i][0]);
    _mm512_store_ps(tmp + i * NR + 16, acc[i][1]);
  }
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) c[i * ldc + j] = bias ? tmp[i * NR + j] + bias[j] : tmp[i * NR + j];
}

// One product on nth threads (1: the caller's thread), packing into this thread's buffers.
bool product(const float* a, const float* b, const float* bias, float* c, const pf::GemmParams& p, int nth) {
  const i64 M = p.M, N = p.N, K = p.K, KP = (K + 1) / 2;
  const i64 mt = cdiv(M, MR), npan = cdiv(N, NR);
  // k in equal blocks of at most kKCP pairs (fixed by K: the same sums for any partition); C
  // keeps the partial sums between blocks, exactly (float32 stored and reloaded).
  const i64 nkb = cdiv(KP, kKCP), kcp = cdiv(KP, nkb);
  // B in blocks of about 512 KiB of panels (L2), converted just before the row tiles use them
  // (converting all of B first costs its copy's write and re-read: M = 64, N = 50176 ran at a
  // third of the rate).
  const i64 pan_blk = [&] {
    const i64 q = (i64(512) << 10) / (kcp * NR * 4);
    return q < 1 ? i64(1) : q < npan ? q : npan;
  }();
  u16* const bbf = tls_bbf.get<u16>(pan_blk * kcp * NR * 2);
  i64* const off = tls_off.get<i64>(kcp);
  if (!bbf || !off) return false;
  for (i64 kp = 0; kp < kcp; ++kp) off[kp] = kp * NR;  // a packed panel's pair rows
  const u32* B32 = reinterpret_cast<const u32*>(bbf);
  bool ok = true;
#pragma omp parallel num_threads(nth) if (nth > 1)
  {
    const int th = thread_id(), nt = team_threads();
    u16* const at = tls_abf.get<u16>(4 * MR * kcp);  // A's rows, then its tile
    if (!at) {
#pragma omp atomic write
      ok = false;
    }
    for (i64 kb = 0; kb < nkb; ++kb) {
      const i64 kp0 = kb * kcp, kpn = KP - kp0 < kcp ? KP - kp0 : kcp;  // this block's pairs
      const i64 k0 = 2 * kp0, kn = K - k0 < 2 * kpn ? K - k0 : 2 * kpn;  // and its k
      const bool first = kb == 0, last = kb == nkb - 1;
      for (i64 pb = 0; pb < npan; pb += pan_blk) {
        const i64 pe = pb + pan_blk < npan ? pb + pan_blk : npan, np = pe - pb, units = mt * np;
#pragma omp for schedule(static)
        for (i64 q = pb; q < pe; ++q)
          convert_b_panel(b + k0 * p.b_rs, p.b_rs, p.b_cs, kn, N, kpn, q, bbf + (q - pb) * kpn * NR * 2);
        // (barrier) the (row tile, panel) grid in row-major order, one contiguous run per thread
        const i64 u0 = units * th / nt, u1 = units * (th + 1) / nt;
        i64 have = -1;
        for (i64 u = u0; u < u1 && at; ++u) {
          const i64 rt = u / np, q = pb + u % np;
          const i64 i0 = rt * MR, j0 = q * NR;
          u32* const tile_a = reinterpret_cast<u32*>(at + 2 * MR * kcp);
          if (rt != have) {
            convert_a_tile(a + k0 * p.a_cs, p.a_rs, p.a_cs, M, kn, 2 * kpn, i0, at, tile_a);
            have = rt;
          }
          const int m = int(M - i0 < MR ? M - i0 : MR), n = int(N - j0 < NR ? N - j0 : NR);
          float* ct = c + i0 * p.c_rs + j0;
          __m512 acc[MR][2];
          if (!first) load(acc, ct, p.c_rs, m, n);
          tile(kpn, tile_a, B32 + (q - pb) * kpn * NR, off, acc, first);
          store(acc, ct, p.c_rs, m, n, last && bias ? bias + j0 : nullptr);
        }
#pragma omp barrier
      }
    }
  }
  return ok;
}
}  // namespace

void gemm_bf16(const float* a, const float* b, const float* bias, float* c, const pf::GemmParams& p) {
  if (p.batch <= 0 || p.M <= 0 || p.N <= 0) return;
  if (p.K == 0) {
    for (i64 bt = 0; bt < p.batch; ++bt)
      for (i64 i = 0; i < p.M; ++i)
        for (i64 j = 0; j < p.N; ++j) c[bt * p.c_bs + i * p.c_rs + j] = bias ? bias[j] : 0.0f;
    return;
  }
  const int maxth = max_threads();
  const double flops = 2.0 * double(p.M) * double(p.N) * double(p.K);
  const double t = flops / kParallelFlops;
  const int nth = t >= maxth ? maxth : (t >= 2 ? int(t) : 1);
  bool ok = true;
  if (p.batch > 1 && nth < maxth) {
    // Many small products: whole products per thread, each on its own buffers.
    const double tb = flops * double(p.batch) / kParallelFlops;
    const int bth = tb >= maxth ? maxth : (tb >= 2 ? int(tb) : 1);
#pragma omp parallel for schedule(static) num_threads(bth) if (bth > 1)
    for (i64 bt = 0; bt < p.batch; ++bt)
      if (!product(a + bt * p.a_bs, b + bt * p.b_bs, bias, c + bt * p.c_bs, p, 1)) {
#pragma omp atomic write
        ok = false;
      }
  } else {
    for (i64 bt = 0; bt < p.batch && ok; ++bt)
      ok = product(a + bt * p.a_bs, b + bt * p.b_bs, bias, c + bt * p.c_bs, p, nth);
  }
  if (!ok) throw std::bad_alloc();
}
}  // namespace PF_ISA_NS
#endif  // __AVX512F__
