// kernels/conv2d/conv2d_winograd_cpu.h: Winograd F(2×2, 3×3) on AVX-512: the forward (also
// stride-1 backward-data with flipped weights) and the transposed algorithm for the weight gradient.
// A part of conv2d_cpu.cpp's translation unit (compiled once per ISA into PF_ISA_NS, after
// the includes and helpers there): include it only from there, in that file's order.
#pragma once

namespace PF_ISA_NS {
namespace {
#if defined(__AVX512F__)
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

#if defined(PF_X86)
// The products M_ξ = U_ξ · V_ξ of one job in bfloat16 (the forward under pf.autocast("bfloat16")):
// V (16, Cg, ld) float32 -> Vb (16, Cp, ldw) pair words of channels (2cp, 2cp + 1), then per
// ξ, 32 tiles and 14 output channels at a time, VDPBF16PS over the Cp pairs (common/bf16_cpu.h).
// Ub: this group's (kt, Cp, 14) pair words of ξ = 0, ξ planes us words apart. M rows: kt·14 per ξ.
// off: Cp entries of scratch.
__attribute__((target("avx512bf16"))) inline void winograd_products_bf16(const float* V, i64 Cg, i64 ld,
                                                                          const std::uint32_t* Ub, i64 us, i64 kt,
                                                                          std::uint32_t* Vb, i64 ldw, i64 cols,
                                                                          float* M, i64* off) {
  using namespace bf16;
  const i64 Cp = cdiv(Cg, 2);
  for (i64 cp = 0; cp < Cp; ++cp) off[cp] = cp * ldw;  // pair row cp of Vb
  for (int xi = 0; xi < 16; ++xi) {
    const float* vx = V + xi * Cg * ld;
    std::uint32_t* vb = Vb + xi * Cp * ldw;
    for (i64 cp = 0; cp < Cp; ++cp) {
      const float* r0 = vx + 2 * cp * ld;
      const float* r1 = 2 * cp + 1 < Cg ? r0 + ld : nullptr;
      for (i64 j = 0; j < cols; j += 16)
        _mm512_storeu_si512(vb + cp * ldw + j,
                            pairs(cvt32(_mm512_loadu_ps(r0 + j), r1 ? _mm512_loadu_ps(r1 + j) : _mm512_setzero_ps())));
    }
    const std::uint32_t* ux = Ub + xi * us;
    float* mx = M + xi * kt * MR * ld;
    for (i64 j0 = 0; j0 < cols; j0 += NR)
      for (i64 t = 0; t < kt; ++t) {
        __m512 acc[MR][2];
        tile(Cp, ux + t * Cp * MR, vb + j0, off, acc);
        for (int i = 0; i < MR; ++i) {
          _mm512_storeu_ps(mx + (t * MR + i) * ld + j0, acc[i][0]);
          _mm512_storeu_ps(mx + (t * MR + i) * ld + j0 + 16, acc[i][1]);
        }
      }
  }
}
#endif

// U's (Cg, 14) block -> (Cp, 14) pair words of channels (2cp, 2cp + 1), vector by vector.
__attribute__((target("avx512bf16"))) inline void winograd_pairs_bf16(const float* u, i64 Cg, std::uint32_t* ub) {
  using namespace bf16;
  static_assert(MR == 14, "winograd_pairs_bf16: rows of 14");
  for (i64 cp = 0; cp < cdiv(Cg, 2); ++cp) {
    const __m512 r0 = _mm512_maskz_loadu_ps(0x3fff, u + 2 * cp * MR);
    const __m512 r1 = 2 * cp + 1 < Cg ? _mm512_maskz_loadu_ps(0x3fff, u + (2 * cp + 1) * MR) : _mm512_setzero_ps();
    _mm512_mask_storeu_epi32(ub + cp * MR, 0x3fff, pairs(cvt32(r0, r1)));
  }
}

// BF16: the products in bfloat16 (winograd_products_bf16; callers check pf::cpu::has_avx512_bf16()).
template <bool BF16 = false>
inline void forward_winograd(const float* x, const float* w, const float* bias, float* out,
                             const pf::Conv2dParams& p, i64 bt) {
  constexpr int MR = BF16 ? 14 : 8, NR = 32;
  const i64 G = p.groups, Cg = p.C / G, Kg = p.K / G, mb = cdiv(Kg, MR), HW = p.H * p.W, PQ = p.P * p.Q;
  const i64 Q = p.Q, nch = Q / 16, bands = p.P / 2 / bt, cols = bt * nch * 8, ld = padded_ld<float>(cols);
  const i64 Wp = Q + 2, Hr = 2 * bt + 2, CS = Hr * Wp, Cp = cdiv(Cg, 2), ldw = cols + 32;
  // U packed (16, G, mb, Cg, MR): U_ξ[k][c] at ((ξ·G + g)·mb + k / MR)·Cg·MR + c·MR + k % MR
  // (BF16: then as pair words (16, G, mb, Cp, MR) in Ub)
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
  Scratch<std::uint32_t> Ub(BF16 ? 16 * G * mb * Cp * MR : 0);
#if defined(PF_X86)
  if constexpr (BF16) {
#pragma omp parallel for schedule(static) if (16 * G * mb * Cp > 4096)
    for (i64 q = 0; q < 16 * G * mb; ++q) winograd_pairs_bf16(U.p + q * Cg * MR, Cg, Ub.p + q * Cp * MR);
  }
#endif
  const i64 jobs = p.N * G * bands;
  const __m512i zip_lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512i zip_hi = _mm512_add_epi32(zip_lo, _mm512_set1_epi32(8));
#pragma omp parallel if (jobs > 1)
  {
    Scratch<float> xp(Cg * CS), V(16 * Cg * ld), M(16 * mb * MR * ld);
    Scratch<std::uint32_t> Vb(BF16 ? 16 * Cp * ldw : 0);
    Scratch<i64> offs(BF16 ? Cp : 0);
#pragma omp for schedule(dynamic, 1)
    for (i64 job = 0; job < jobs; ++job) {
      const i64 g = job % G, rest = job / G, n = rest / bands, p0 = rest % bands * bt * 2;
      for (i64 c = 0; c < Cg; ++c) pad_rows(xp.p + c * CS, x + (n * p.C + g * Cg + c) * HW, p, p0, Hr, Wp);
      // V_ξ (Cg × cols) = Bᵀ d B
      for (i64 c = 0; c < Cg; ++c) winograd_input_tiles(xp.p + c * CS, Wp, nch, cols / 16, V.p + c * ld, Cg * ld);
      // M_ξ = U_ξ · V_ξ
#if defined(PF_X86)
      if constexpr (BF16) {
        winograd_products_bf16(V.p, Cg, ld, Ub.p + g * mb * Cp * MR, G * mb * Cp * MR, mb, Vb.p, ldw, cols, M.p, offs.p);
      } else
#endif
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

#if defined(__AVX512F__)
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
#endif  // __AVX512F__
}  // namespace
}  // namespace PF_ISA_NS
