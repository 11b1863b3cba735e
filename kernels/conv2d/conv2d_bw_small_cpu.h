// kernels/conv2d/conv2d_bw_small_cpu.h: the AVX-512 weight gradient for few taps per group (a
// network's first layers).
// A part of conv2d_cpu.cpp's translation unit (compiled once per ISA into PF_ISA_NS, after
// the includes and helpers there): include it only from there, in that file's order.
#pragma once

namespace PF_ISA_NS {
namespace {
#if defined(__AVX512F__)
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
}  // namespace
}  // namespace PF_ISA_NS
