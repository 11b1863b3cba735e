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
//   direct           stride 1, output rows of whole vectors (Q % 16 == 0), or any width kept
//                    from the input (W == Q, ≥ 16 taps: 28×28, 14×14, 7×7, 8×8; lane masks per
//                    tap over unpadded rows): no im2col; B rows are loads at per-tap offsets
//                    from a copy of the tile's input rows (forward_direct, ukernel_taps).
//                    Stride-1 backward-data runs the forward on dy with the flipped, transposed
//                    weights (no col2im) where that is faster (see backward_data).
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

#include "common/bf16_cpu.h"
#include "common/cpu_scratch.h"
#include "common/gemm_cpu.h"
#include "common/simd.h"
#include "conv2d/conv2d.h"
// The paths live in headers of this translation unit, one story each:
#include "conv2d/conv2d_gemm_cpu.h"      // vector traits, micro-kernels, im2col / col2im, packing
#include "conv2d/conv2d_direct_cpu.h"    // AVX-512 direct forward and weight gradient
#include "conv2d/conv2d_winograd_cpu.h"  // AVX-512 Winograd forward and weight gradient
#include "conv2d/conv2d_bw_small_cpu.h"  // AVX-512 weight gradient for few taps
#include "conv2d/conv2d_phases_cpu.h"    // strided backward-data by phases

// Below: the entry points, and the one place per pass that chooses a path.
namespace PF_ISA_NS {
namespace {
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
  // Winograd or direct path, with no col2im, when the pads are inside the kernel extent and
  // dx's rows are whole vectors or keep dy's width; its im2col GEMM on small images (≤ 256
  // pixels: col2im's scatter dominates there, 4×4 256-channel dx 0.92 -> 0.49 ms) and when
  // the GEMM below would reduce over fewer than 16 taps (a 1-channel output layer's dx on
  // 28×28: 2.0 -> 0.3 ms). Not for fewer than 8 input channels unless rows are whole vectors
  // (dx's 8-row micro-tiles would run mostly empty: 1-channel 28×28 dx 0.29 ms the GEMM way,
  // 0.60 ms through the forward).
  if (sizeof(T) == 4 && p.stride_h == 1 && p.stride_w == 1) {
    const pf::Conv2dParams q = pf::conv2d_as_forward(p);
    const bool via_forward = winograd_band(q) || (direct_ok(q) && (!direct_narrow(q) || p.C >= 8)) ||
                             (p.C >= 8 && (p.H * p.W <= 256 || p.K * RS < 16));
    if (q.pad_top >= 0 && q.pad_left >= 0 && via_forward) {
      Scratch<T> wq(p.C * Kg * RS);  // flipped, transposed weights (conv2d.h)
#pragma omp parallel for schedule(static) if (G * Kg * kred > 65536)
      for (i64 gc = 0; gc < p.C; ++gc) pf::conv2d_flip_channel(w, p, gc, wq.p);
      forward(dy, wq.p, static_cast<const T*>(nullptr), dx, q);
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
  constexpr int L = V<T>::W, DM = V<T>::DM, DN = V<T>::DN;
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
#if defined(__AVX512F__) && defined(PF_X86)
bool conv2d_forward_winograd_bf16(const float* x, const float* w, const float* b, float* y, const pf::Conv2dParams& p) {
  const i64 bt = winograd_band(p);
  if (bt) forward_winograd<true>(x, w, b, y, p, bt);
  return bt != 0;
}
#endif
}  // namespace PF_ISA_NS
