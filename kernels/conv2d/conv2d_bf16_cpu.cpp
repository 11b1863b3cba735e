// kernels/conv2d/conv2d_bf16_cpu.cpp: conv2d forward (NCHW, torch semantics: conv2d.h) with
// bfloat16 products: float32 x, weight, bias and out; x and weight rounded to bfloat16 (nearest
// even) as they are packed; every product summed in float32 by VDPBF16PS (avx512_bf16).
//
// One GEMM per group, out (K × N·P·Q) = W (K × C·R·S) · col(x), with no im2col:
//   1. x -> src, once per call: the images padded, split into their stride phases and their
//      channels paired, as 32-bit words (x[c], x[c+1]) in bfloat16:
//        src[n·sN + (phase·Cp + cp)·sC + u·Wv + v] = pair of xpad[n][2cp .. 2cp+1][u·sh + a][v·sw + b]
//      phase = (a, b) < (sh, sw), Cp = ceil(Cg / 2) pairs (the strides: see geometry()).
//      Tap (r, s) at stride (sh, sw) is then the shift (ra, sb) = (r·dh / sh, s·dw / sw) inside
//      phase (r·dh % sh, s·dw % sw): a stride-1 window.
//   2. Output columns are taken over the padded planes, j = n·img + p·Wv + q (q ≥ Q and p ≥ P
//      computed and dropped), so col(x)'s pair row k = (cp, r, s) is the contiguous run
//      src + base(k) + j: a column tile's 32 columns of every pair row are one copy each into
//      an aligned panel (no im2col arithmetic), which the micro-kernel (common/bf16_cpu.h, 14
//      channels × 32 columns) reads in order for every channel tile. Column tiles cover one
//      image's P·Wv columns, or, for small outputs, run across images.
//   3. W -> pair words per group in tiles of 14 channels, a[kp][i] (the odd channel's partner zero).
// Threads: src by (image, group); then the (image, group, column tile, channel tile) grid in
// order, a contiguous run each: a column tile's windows (~(S + 31)·R words per channel pair,
// scattered) stay in L1 across the channel tiles while the weights, read in order, stream from
// L2 (the other order, weights in L1 and windows streaming, ran at half the speed). Every output sums its pairs in the order (cp, r, s): the same bits for any
// thread count. The readable reference is ops/_ref/conv2d.py on bfloat16-rounded operands.
// Variants: this shifted-window kernel, and for the 3×3 stride-1 layers Winograd takes, its
// bfloat16 products (conv2d_winograd_cpu.h: the entry point tries that first). AVX-512 +
// avx512_bf16 only (nothing in the other ISA builds; Python computes in float32 where the CPU
// lacks avx512_bf16).
#if defined(__AVX512F__)
#pragma GCC target("avx512bf16")
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <new>

#include "common/bf16_cpu.h"
#include "common/cpu_scratch.h"
#include "conv2d/conv2d.h"

namespace PF_ISA_NS {
namespace {
using pf::i64;
using namespace bf16;  // MR, NR, bf16_of, pair_of, cvt32, pairs, tile

inline i64 cdiv(i64 a, i64 b) { return (a + b - 1) / b; }

struct Geometry {
  i64 Cg, Kg, Cp, KP;     // channels per group in/out, channel pairs, pair rows (Cp·R·S)
  i64 sh, sw, Hu, Wv;     // phases; phase plane rows and row length (words)
  i64 img, sN, sC, group; // words per image's plane (Hu·Wv); src strides of an image, of a
                          // (phase, pair) plane set; words per group
  bool batched;           // column tiles run across images (small outputs) or stay in one
  i64 J, jt, kt;          // columns per tile run (P·Wv per image, or N·img), column tiles, channel tiles
};

Geometry geometry(const pf::Conv2dParams& p) {
  Geometry g{};
  g.Cg = p.C / p.groups;
  g.Kg = p.K / p.groups;
  g.Cp = cdiv(g.Cg, 2);
  g.KP = g.Cp * p.R * p.S;
  g.sh = p.stride_h;
  g.sw = p.stride_w;
  const i64 ra_max = (p.R - 1) * p.dil_h / g.sh, sb_max = (p.S - 1) * p.dil_w / g.sw;
  g.Hu = p.P + ra_max;
  g.Wv = p.Q + sb_max;
  g.img = g.Hu * g.Wv;
  // An image's P·Wv columns in whole tiles waste at most NR - 1 of them; across images,
  // ra_max rows per image. Small outputs (a 4×4 output would fill 20 of 32 columns) go across.
  g.batched = p.P * g.Wv < 8 * NR;
  // Per image: src[n][phase][pair][img + slack] (an image's windows together: a column tile
  // reads one image's ~150 KB); across images: src[phase][pair][n][img] + slack (the images
  // of one plane consecutive, so columns run on from one image into the next). Slack: a
  // column tile may run up to NR words past the last column.
  const i64 planes = g.sh * g.sw * g.Cp;
  if (g.batched) {
    g.sN = g.img;
    g.sC = p.N * g.img + NR;
    g.group = planes * g.sC;
  } else {
    g.sC = g.img + NR;
    g.sN = planes * g.sC;
    g.group = p.N * g.sN;
  }
  g.J = g.batched ? p.N * g.img : p.P * g.Wv;
  g.jt = cdiv(g.J, NR);
  g.kt = cdiv(g.Kg, MR);
  return g;
}

// One image's phase plane of channels (c0, c0 + 1) (c1 null: the partner is zero):
// dst[u·Wv + v] = pair of x[c][u·sh + a - pad_top][v·sw + b - pad_left], zero outside x.
void convert_plane(const float* c0, const float* c1, const pf::Conv2dParams& p, const Geometry& g, i64 a, i64 b,
                   u32* dst) {
  for (i64 u = 0; u < g.Hu; ++u) {
    u32* d = dst + u * g.Wv;
    const i64 h = u * g.sh + a - p.pad_top;
    if (h < 0 || h >= p.H) {
      std::memset(d, 0, sizeof(u32) * g.Wv);
      continue;
    }
    const float* r0 = c0 + h * p.W;
    const float* r1 = c1 ? c1 + h * p.W : nullptr;
    // v whose w = v·sw + b - pad_left lies in [0, W): [v_lo, v_hi)
    const i64 first = p.pad_left - b;  // w >= 0  <=>  v·sw >= first
    i64 v_lo = first <= 0 ? 0 : cdiv(first, g.sw);
    i64 v_hi = (p.W - 1 + p.pad_left - b) >= 0 ? (p.W - 1 + p.pad_left - b) / g.sw + 1 : 0;
    if (v_hi > g.Wv) v_hi = g.Wv;
    if (v_lo > v_hi) v_lo = v_hi;
    for (i64 v = 0; v < v_lo; ++v) d[v] = 0;
    i64 v = v_lo;
    if (g.sw == 1) {
      for (; v + 16 <= v_hi; v += 16) {
        const i64 w = v + b - p.pad_left;
        const __m512 x0 = _mm512_loadu_ps(r0 + w), x1 = r1 ? _mm512_loadu_ps(r1 + w) : _mm512_setzero_ps();
        _mm512_storeu_si512(d + v, pairs(cvt32(x0, x1)));
      }
    } else if (g.sw == 2) {
      const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
      for (; v + 16 <= v_hi; v += 16) {
        const i64 w = 2 * v + b - p.pad_left;  // 31 floats from w: w + 30 <= W - 1 (v + 15 < v_hi)
        const __m512 x0 = _mm512_permutex2var_ps(_mm512_loadu_ps(r0 + w), even,
                                                 _mm512_maskz_loadu_ps(0x7fff, r0 + w + 16));
        const __m512 x1 = r1 ? _mm512_permutex2var_ps(_mm512_loadu_ps(r1 + w), even,
                                                      _mm512_maskz_loadu_ps(0x7fff, r1 + w + 16))
                             : _mm512_setzero_ps();
        _mm512_storeu_si512(d + v, pairs(cvt32(x0, x1)));
      }
    }
    for (; v < v_hi; ++v) {
      const i64 w = v * g.sw + b - p.pad_left;
      d[v] = pair_of(r0[w], r1 ? r1[w] : 0.0f);
    }
    for (; v < g.Wv; ++v) d[v] = 0;
  }
}

// The same from x already rounded (xb, bfloat16 bits): for short rows (a small image or a
// stride-2 phase of one), where the vector path above never fills a vector and pair_of per
// word would cost more than the products; here a word is two 16-bit loads and an OR.
void convert_plane_bits(const u16* c0, const u16* c1, const pf::Conv2dParams& p, const Geometry& g, i64 a, i64 b,
                        u32* dst) {
  for (i64 u = 0; u < g.Hu; ++u) {
    u32* d = dst + u * g.Wv;
    const i64 h = u * g.sh + a - p.pad_top;
    if (h < 0 || h >= p.H) {
      for (i64 v = 0; v < g.Wv; ++v) d[v] = 0;
      continue;
    }
    const u16* r0 = c0 + h * p.W;
    const u16* r1 = c1 ? c1 + h * p.W : nullptr;
    for (i64 v = 0; v < g.Wv; ++v) {
      const i64 w = v * g.sw + b - p.pad_left;
      d[v] = (w < 0 || w >= p.W) ? 0u : (u32(r0[w]) | (r1 ? u32(r1[w]) << 16 : 0u));
    }
  }
}

// n floats -> bfloat16 bits (the x of convert_plane_bits).
void round_all(const float* x, i64 n, u16* xb) {
  i64 i = 0;
  for (; i + 32 <= n; i += 32)
    _mm512_storeu_si512(xb + i, cvt32(_mm512_loadu_ps(x + i), _mm512_loadu_ps(x + i + 16)));
  for (; i < n; ++i) xb[i] = bf16_of(x[i]);
}

// Weights of group gi -> kt tiles of a[kp][i] (MR channels each, zero past Kg), kp = (cp·R + r)·S + s.
void convert_weight(const float* w, const pf::Conv2dParams& p, const Geometry& g, i64 gi, u32* a) {
  const i64 RS = p.R * p.S;
  for (i64 t = 0; t < g.kt; ++t) {
    u32* at = a + t * g.KP * MR;
    for (int i = 0; i < MR; ++i) {
      const i64 k = t * MR + i;
      if (k >= g.Kg) {
        for (i64 kp = 0; kp < g.KP; ++kp) at[kp * MR + i] = 0;
        continue;
      }
      const float* wk = w + (gi * g.Kg + k) * g.Cg * RS;
      for (i64 cp = 0; cp < g.Cp; ++cp)
        for (i64 r = 0; r < RS; ++r) {
          const i64 c = 2 * cp;
          at[(cp * RS + r) * MR + i] = pair_of(wk[c * RS + r], c + 1 < g.Cg ? wk[(c + 1) * RS + r] : 0.0f);
        }
    }
  }
}

// acc (MR channels × NR columns from column j0 of the group's image-major column space,
// j = n·img + u·Wv + v; columns in [j0, jend)) -> out (N, K, P, Q) rows k0.. of group gi,
// + bias; only u < P, v < Q are real outputs.
inline void store(__m512 (&acc)[MR][2], float* out, const float* bias, const pf::Conv2dParams& p, const Geometry& g,
                  i64 gi, i64 k0, i64 j0, i64 jend) {
  // The tile's columns as runs of consecutive outputs in out's (n, k = 0) plane: (n, u, v) of
  // the first column by division, the rest by counting; then each row copies its runs.
  alignas(64) float tmp[NR];
  int run_t[NR], run_len[NR], nruns = 0;
  i64 run_dst[NR];
  const i64 PQ = p.P * p.Q;
  i64 n = j0 / g.img, u = (j0 - n * g.img) / g.Wv, v = j0 - n * g.img - u * g.Wv;
  for (int t = 0; t < NR && j0 + t < jend; ++t) {
    if (u < p.P && v < p.Q) {
      const i64 d = n * p.K * PQ + u * p.Q + v;
      if (nruns && run_t[nruns - 1] + run_len[nruns - 1] == t && run_dst[nruns - 1] + run_len[nruns - 1] == d) {
        ++run_len[nruns - 1];
      } else {
        run_t[nruns] = t, run_len[nruns] = 1, run_dst[nruns] = d, ++nruns;
      }
    }
    if (++v == g.Wv) {
      v = 0;
      if (++u == g.Hu) { u = 0; ++n; }
    }
  }
  const int m = int(g.Kg - k0 < MR ? g.Kg - k0 : MR);
  for (int i = 0; i < m; ++i) {
    _mm512_store_ps(tmp, acc[i][0]);
    _mm512_store_ps(tmp + 16, acc[i][1]);
    const i64 k = gi * g.Kg + k0 + i;
    const float bv = bias ? bias[k] : 0.0f;
    float* o = out + k * PQ;
    for (int r = 0; r < nruns; ++r) {
      float* d = o + run_dst[r];
      const float* sv = tmp + run_t[r];
      for (int t = 0; t < run_len[r]; ++t) d[t] = sv[t] + bv;
    }
  }
}

thread_local KeptScratch tls_src, tls_a, tls_off, tls_xb, tls_poff;
thread_local KeptScratch tls_panel;  // each thread's
}  // namespace

bool conv2d_forward_bf16(const float* x, const float* w, const float* bias, float* out, const pf::Conv2dParams& p,
                         bool always) {
  if (p.N <= 0) return true;
  // 3×3 stride 1 with >= 32 channels: Winograd's 2.25× fewer products, in bfloat16 too.
  if (conv2d_forward_winograd_bf16(x, w, bias, out, p)) return true;
  const Geometry g = geometry(p);
  if (!always) {
    // Measured (Zen 5 VM, bench/RESULTS.md "bfloat16"): below 16 input channels per group the
    // pair products are too little work for their packing, and below 3/4 useful columns (a 4×4
    // output of a stride-2 4×4 layer computes 25 for 16) float32's direct kernel is faster.
    const double cols = g.batched ? double(p.N) * double(g.img) : double(p.N) * double(g.jt * NR);
    if (g.Cg < 16 || double(p.N) * double(p.P) * double(p.Q) < 0.75 * cols) return false;
  }
  const i64 G = p.groups, RS = p.R * p.S, nph = g.sh * g.sw;
  u32* const src = tls_src.get<u32>(G * g.group);
  u32* const a = tls_a.get<u32>(G * g.kt * MR * g.KP);
  i64* const off = tls_off.get<i64>(g.KP);
  i64* const poff = tls_poff.get<i64>(g.KP);
  if (!src || !a || !off || !poff) throw std::bad_alloc();
  for (i64 kp = 0; kp < g.KP; ++kp) poff[kp] = kp * NR;
  // Pair row kp = (cp, r, s) starts in its phase's block, shifted by (ra, sb).
  for (i64 cp = 0; cp < g.Cp; ++cp)
    for (i64 r = 0; r < p.R; ++r)
      for (i64 s = 0; s < p.S; ++s) {
        const i64 ph = ((r * p.dil_h) % g.sh) * g.sw + (s * p.dil_w) % g.sw;
        const i64 ra = (r * p.dil_h) / g.sh, sb = (s * p.dil_w) / g.sw;
        off[(cp * p.R + r) * p.S + s] = (ph * g.Cp + cp) * g.sC + ra * g.Wv + sb;
      }
  const double flops = 2.0 * double(p.N) * double(p.K) * double(g.Cg) * double(RS) * double(p.P) * double(p.Q);
  const int maxth = max_threads();
  const double t = flops / 4.0e6;
  const int nth = t >= maxth ? maxth : (t >= 2 ? int(t) : 1);
  const i64 HW = p.H * p.W, runs = g.batched ? 1 : p.N;  // column-tile runs per group
  // column tiles per unit: their panels about 512 KiB
  const i64 JB = [&] { const i64 q = (i64(512) << 10) / (g.KP * NR * 4); return q < 1 ? i64(1) : q; }();
  const i64 nblk = cdiv(g.jt, JB), units = G * runs * nblk;
  // Short rows: round all of x first (one vector pass), then assemble words from the bits.
  const bool by_bits = g.Wv < 32;
  u16* const xb = by_bits ? tls_xb.get<u16>(p.N * p.C * HW) : nullptr;
  if (by_bits && !xb) throw std::bad_alloc();
#pragma omp parallel num_threads(nth) if (nth > 1)
  {
    if (by_bits) {
      const i64 total = p.N * p.C * HW, chunk = cdiv(cdiv(total, team_threads()), 32) * 32;
      const i64 c0 = chunk * thread_id(), c1 = c0 + chunk < total ? c0 + chunk : total;
      if (c0 < c1) round_all(x + c0, c1 - c0, xb + c0);
#pragma omp barrier
    }
#pragma omp for schedule(static) nowait
    for (i64 gi = 0; gi < G; ++gi) convert_weight(w, p, g, gi, a + gi * g.kt * MR * g.KP);
#pragma omp for schedule(static)
    for (i64 q = 0; q < G * nph * g.Cp; ++q) {
      const i64 gi = q / (nph * g.Cp), ph = (q / g.Cp) % nph, cp = q % g.Cp, c = 2 * cp;
      u32* blk = src + gi * g.group + (ph * g.Cp + cp) * g.sC;
      for (i64 n = 0; n < p.N; ++n) {
        const i64 xo = (n * p.C + gi * g.Cg + c) * HW;
        u32* plane = blk + n * g.sN;
        if (by_bits)
          convert_plane_bits(xb + xo, c + 1 < g.Cg ? xb + xo + HW : nullptr, p, g, ph / g.sw, ph % g.sw, plane);
        else
          convert_plane(x + xo, c + 1 < g.Cg ? x + xo + HW : nullptr, p, g, ph / g.sw, ph % g.sw, plane);
        if (!g.batched) std::memset(plane + g.img, 0, sizeof(u32) * NR);
      }
      if (g.batched) std::memset(blk + p.N * g.img, 0, sizeof(u32) * NR);
    }
    // (implicit barrier: every source block and weight tile is ready)
    // Work units: (group, run, block of JB column tiles). A unit gathers its tiles' pair rows
    // into aligned panels (kp, 32 words) — one copy per pair row and tile, no im2col
    // arithmetic — about 512 KiB of them (L2), then runs every channel tile over them: the
    // weights' tile (14 × KP words) stays in L1 while the panels stream in order from L2, as
    // in matmul_bf16 (reading scattered windows directly, or keeping panels in L1 while the
    // weights streamed, ran at ~60-70% of this).
    const int th = thread_id(), nt = team_threads();
    const i64 u0 = units * th / nt, u1 = units * (th + 1) / nt;
    u32* const panels = u0 < u1 ? tls_panel.get<u32>(JB * g.KP * NR) : nullptr;
    for (i64 u = u0; u < u1 && panels; ++u) {
      const i64 gi = u / (runs * nblk), run = (u / nblk) % runs, jb = u % nblk;
      const i64 jt0 = jb * JB, jt1 = jt0 + JB < g.jt ? jt0 + JB : g.jt, base = run * g.img;
      const u32* b = src + gi * g.group + run * g.sN;
      for (i64 jt = jt0; jt < jt1; ++jt) {
        u32* pn = panels + (jt - jt0) * g.KP * NR;
        const u32* bj = b + jt * NR;
        for (i64 kp = 0; kp < g.KP; ++kp) {
          _mm512_store_si512(pn + kp * NR, _mm512_loadu_si512(bj + off[kp]));
          _mm512_store_si512(pn + kp * NR + 16, _mm512_loadu_si512(bj + off[kp] + 16));
        }
      }
      for (i64 kt = 0; kt < g.kt; ++kt)
        for (i64 jt = jt0; jt < jt1; ++jt) {
          __m512 acc[MR][2];
          tile(g.KP, a + (gi * g.kt + kt) * MR * g.KP, panels + (jt - jt0) * g.KP * NR, poff, acc);
          store(acc, out, bias, p, g, gi, kt * MR, base + jt * NR, base + g.J);
        }
    }
  }
  return true;
}

bool conv2d_backward_data_bf16(const float* dy, const float* w, float* dx, const pf::Conv2dParams& p) {
  if (p.stride_h != 1 || p.stride_w != 1) return false;
  const pf::Conv2dParams q = pf::conv2d_as_forward(p);
  if (q.pad_top < 0 || q.pad_left < 0) return false;
  const i64 RS = p.R * p.S, Kg = p.K / p.groups;
  Scratch<float> wq(p.C * Kg * RS);
#pragma omp parallel for schedule(static) if (p.C * Kg * RS > 65536)
  for (i64 gc = 0; gc < p.C; ++gc) pf::conv2d_flip_channel(w, p, gc, wq.p);
  return conv2d_forward_bf16(dy, wq.p, nullptr, dx, q, false);
}
}  // namespace PF_ISA_NS
#endif  // __AVX512F__
