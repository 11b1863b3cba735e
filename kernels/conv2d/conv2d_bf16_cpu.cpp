// kernels/conv2d/conv2d_bf16_cpu.cpp: conv2d forward (NCHW, torch semantics: conv2d.h) with
// bfloat16 products: float32 x, weight, bias and out; x and weight rounded to bfloat16 (nearest
// even) as they are packed; every product summed in float32 by VDPBF16PS (avx512_bf16).
//
// One GEMM per group, out (K × N·P·Q) = W (K × C·R·S) · col(x), with no im2col:
//   1. x -> src, once per call: the images padded, split into their stride phases and their
//      channels paired, as 32-bit words (x[c], x[c+1]) in bfloat16:
//        src[n·sN + (phase·Cp + cp)·img + u·Wv + v] = pair of xpad[n][2cp .. 2cp+1][u·sh + a][v·sw + b]
//      phase = (a, b) < (sh, sw), Cp = ceil(Cg / 2) pairs (the strides: see geometry()).
//      Tap (r, s) at stride (sh, sw) is then the shift (ra, sb) = (r·dh / sh, s·dw / sw) inside
//      phase (r·dh % sh, s·dw % sw): a stride-1 window.
//   2. Output columns j = (n, p, q), 32 to a tile; col(x)'s pair row k = (cp, r, s) at output
//      (n, p, q) is src[n·sN + base(k) + p·Wv + q], so along q a tile's columns are runs of
//      consecutive words: each run of each pair row is one masked copy into an aligned panel
//      (no im2col arithmetic, no padding columns computed), which the micro-kernel
//      (common/bf16_cpu.h, 14 channels × 32 columns) reads in order for every channel tile.
//   3. W -> pair words per group in tiles of 14 channels, a[kp][i] (the odd channel's partner zero).
// Threads: src by (group, image, phase, pair); then units of (group, block of column tiles),
// a contiguous run each (see the loop). Every output sums its pairs in the order (cp, r, s):
// the same bits for any thread count. The readable reference is ops/_ref/conv2d.py on bfloat16-rounded operands.
// Variants: this shifted-window kernel, and for the 3×3 stride-1 layers Winograd takes, its
// bfloat16 products (conv2d_winograd_cpu.h: the entry point tries that first). AVX-512 +
// avx512_bf16 only (nothing in the other ISA builds; Python computes in float32 where the CPU
// lacks avx512_bf16).
#if defined(__AVX512F__)
#pragma GCC target("avx512bf16")
#include <immintrin.h>

#include <cstdint>
#include <algorithm>
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
  i64 img, sN, group;     // words per (image, phase, pair) plane (Hu·Wv); per image; per group
  i64 J, jt, kt;          // output columns N·P·Q, column tiles, channel tiles
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
  g.sN = g.sh * g.sw * g.Cp * g.img;  // src[n][phase][pair][u][v]
  g.group = p.N * g.sN;
  g.J = p.N * p.P * p.Q;
  g.jt = cdiv(g.J, NR);
  g.kt = cdiv(g.Kg, MR);
  return g;
}

// A column tile: its (up to) 32 outputs (n, p, q) in order as runs along q: run r covers tile
// columns [t[r], t[r] + len[r]), reads the windows at src offset at[r] (+ a pair row's offset)
// and writes out (n, k = 0) plane offset to[r].
struct Runs {
  int n, t[NR], len[NR];
  i64 at[NR], to[NR];
};

inline void tile_runs(const pf::Conv2dParams& p, const Geometry& g, i64 j0, Runs& rs) {
  const i64 PQ = p.P * p.Q, jend = j0 + NR < g.J ? j0 + NR : g.J;
  i64 n = j0 / PQ, pq = j0 - n * PQ, pp = pq / p.Q, q = pq - pp * p.Q;
  rs.n = 0;
  for (i64 j = j0; j < jend;) {
    const i64 len = (p.Q - q) < (jend - j) ? (p.Q - q) : (jend - j);
    rs.t[rs.n] = int(j - j0), rs.len[rs.n] = int(len);
    rs.at[rs.n] = n * g.sN + pp * g.Wv + q;
    rs.to[rs.n] = n * p.K * PQ + pp * p.Q + q;
    ++rs.n;
    j += len, q += len;
    if (q == p.Q) {
      q = 0;
      if (++pp == p.P) pp = 0, ++n;
    }
  }
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

// Weights of group gi, channel tile t -> a[kp][i] (MR channels, zero past Kg), kp = (cp·R + r)·S + s.
// A channel's two input channels' taps (RS floats each, contiguous) convert 16 at a time.
void convert_weight_tile(const float* w, const pf::Conv2dParams& p, const Geometry& g, i64 gi, i64 t, u32* at) {
  const i64 RS = p.R * p.S;
  alignas(64) u32 words[16];
  for (int i = 0; i < MR; ++i) {
    const i64 k = t * MR + i;
    if (k >= g.Kg) {
      for (i64 kp = 0; kp < g.KP; ++kp) at[kp * MR + i] = 0;
      continue;
    }
    const float* wk = w + (gi * g.Kg + k) * g.Cg * RS;
    for (i64 cp = 0; cp < g.Cp; ++cp) {
      const float* r0 = wk + 2 * cp * RS;
      const float* r1 = 2 * cp + 1 < g.Cg ? r0 + RS : nullptr;
      for (i64 r = 0; r < RS; r += 16) {
        const __mmask16 m = first_n16(RS - r);
        _mm512_store_si512(words, pairs(cvt32(_mm512_maskz_loadu_ps(m, r0 + r),
                                              r1 ? _mm512_maskz_loadu_ps(m, r1 + r) : _mm512_setzero_ps())));
        const i64 n = RS - r < 16 ? RS - r : 16;
        for (i64 e = 0; e < n; ++e) at[(cp * RS + r + e) * MR + i] = words[e];
      }
    }
  }
}

// acc (MR channels × the tile's columns) -> out rows k0.. of group gi (+ bias), by the runs.
inline void store(__m512 (&acc)[MR][2], float* out, const float* bias, const pf::Conv2dParams& p, const Geometry& g,
                  i64 gi, i64 k0, const Runs& rs) {
  alignas(64) float tmp[NR];
  const i64 PQ = p.P * p.Q;
  const int m = int(g.Kg - k0 < MR ? g.Kg - k0 : MR);
  for (int i = 0; i < m; ++i) {
    _mm512_store_ps(tmp, acc[i][0]);
    _mm512_store_ps(tmp + 16, acc[i][1]);
    const i64 k = gi * g.Kg + k0 + i;
    const float bv = bias ? bias[k] : 0.0f;
    float* o = out + k * PQ;
    for (int r = 0; r < rs.n; ++r) {
      float* d = o + rs.to[r];
      const float* sv = tmp + rs.t[r];
      for (int t = 0; t < rs.len[r]; ++t) d[t] = sv[t] + bv;
    }
  }
}

thread_local KeptScratch tls_src, tls_a, tls_off, tls_xb, tls_poff;
thread_local KeptScratch tls_panel, tls_runs;  // each thread's
}  // namespace

bool conv2d_forward_bf16(const float* x, const float* w, const float* bias, float* out, const pf::Conv2dParams& p,
                         bool always) {
  if (p.N <= 0) return true;
  // 3×3 stride 1 with >= 32 channels: Winograd's 2.25× fewer products, in bfloat16 too.
  if (conv2d_forward_winograd_bf16(x, w, bias, out, p)) return true;
  const Geometry g = geometry(p);
  // Measured (Zen 5 VM, bench/RESULTS.md "bfloat16"): below 16 input channels per group the
  // pair products are too little work for their packing; float32's direct kernel is faster.
  if (!always && g.Cg < 16) return false;
  const i64 G = p.groups, RS = p.R * p.S, nph = g.sh * g.sw;
  u32* const src = tls_src.get<u32>(G * g.group);
  u32* const a = tls_a.get<u32>(G * g.kt * MR * g.KP);
  i64* const off = tls_off.get<i64>(g.KP);
  i64* const poff = tls_poff.get<i64>(g.KP);
  if (!src || !a || !off || !poff) throw std::bad_alloc();
  for (i64 kp = 0; kp < g.KP; ++kp) poff[kp] = kp * NR;
  // Pair row kp = (cp, r, s) starts in its phase's plane, shifted by (ra, sb).
  for (i64 cp = 0; cp < g.Cp; ++cp)
    for (i64 r = 0; r < p.R; ++r)
      for (i64 s = 0; s < p.S; ++s) {
        const i64 ph = ((r * p.dil_h) % g.sh) * g.sw + (s * p.dil_w) % g.sw;
        const i64 ra = (r * p.dil_h) / g.sh, sb = (s * p.dil_w) / g.sw;
        off[(cp * p.R + r) * p.S + s] = (ph * g.Cp + cp) * g.img + ra * g.Wv + sb;
      }
  const double flops = 2.0 * double(p.N) * double(p.K) * double(g.Cg) * double(RS) * double(p.P) * double(p.Q);
  const int maxth = max_threads();
  const double t = flops / 4.0e6;
  const int nth = t >= maxth ? maxth : (t >= 2 ? int(t) : 1);
  const i64 HW = p.H * p.W;
  // column tiles per unit: their panels about 512 KiB (and at most 64)
  const i64 JB = [&] {  // at most that many, in blocks of equal size (the threads' shares)
    const i64 q = (i64(512) << 10) / (g.KP * NR * 4), most = q < 1 ? i64(1) : q > 64 ? i64(64) : q;
    return cdiv(g.jt, cdiv(g.jt, most));
  }();
  const i64 nblk = cdiv(g.jt, JB);
  // Few column blocks (a 4×4 output: 4 tiles for 8 images) split their channel tiles too, so
  // every thread has work; each such unit gathers its own copy of the block's panels.
  const i64 nkc = G * nblk >= 2 * nth ? 1 : std::min(g.kt, cdiv(2 * nth, G * nblk));
  const i64 units = G * nblk * nkc;
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
    for (i64 q = 0; q < G * g.kt; ++q) convert_weight_tile(w, p, g, q / g.kt, q % g.kt, a + q * MR * g.KP);
#pragma omp for schedule(static)
    for (i64 q = 0; q < G * p.N * nph * g.Cp; ++q) {
      const i64 gi = q / (p.N * nph * g.Cp), n = (q / (nph * g.Cp)) % p.N, ph = (q / g.Cp) % nph, cp = q % g.Cp;
      const i64 c = 2 * cp, xo = (n * p.C + gi * g.Cg + c) * HW;
      u32* plane = src + gi * g.group + n * g.sN + (ph * g.Cp + cp) * g.img;
      if (by_bits)
        convert_plane_bits(xb + xo, c + 1 < g.Cg ? xb + xo + HW : nullptr, p, g, ph / g.sw, ph % g.sw, plane);
      else
        convert_plane(x + xo, c + 1 < g.Cg ? x + xo + HW : nullptr, p, g, ph / g.sw, ph % g.sw, plane);
    }
    // (implicit barrier: every source plane and weight tile is ready)
    // Work units: (group, block of JB column tiles, chunk of channel tiles). A unit gathers its tiles' pair rows into
    // aligned panels (kp, 32 words): each tile's outputs as runs along q, each run one masked
    // copy per pair row (no im2col arithmetic, no padded columns computed) — about 512 KiB
    // of panels (L2) — then runs every channel tile over them: the weights' tile (14 × KP
    // words) stays in L1 while the panels stream in order from L2, as in matmul_bf16 (reading
    // scattered windows directly, or keeping panels in L1 while the weights streamed, ran at
    // ~60-70% of this).
    const int th = thread_id(), nt = team_threads();
    const i64 u0 = units * th / nt, u1 = units * (th + 1) / nt;
    u32* const panels = u0 < u1 ? tls_panel.get<u32>(JB * g.KP * NR) : nullptr;
    Runs* const runs = u0 < u1 ? tls_runs.get<Runs>(JB) : nullptr;
    for (i64 u = u0; u < u1 && panels && runs; ++u) {
      const i64 gi = u / (nblk * nkc), jb = (u / nkc) % nblk, kc = u % nkc;
      const i64 kt0 = g.kt * kc / nkc, kt1 = g.kt * (kc + 1) / nkc;
      const i64 jt0 = jb * JB, jt1 = jt0 + JB < g.jt ? jt0 + JB : g.jt;
      const u32* b = src + gi * g.group;
      for (i64 jt = jt0; jt < jt1; ++jt) {
        Runs& rs = runs[jt - jt0];
        tile_runs(p, g, jt * NR, rs);
        u32* pn = panels + (jt - jt0) * g.KP * NR;
        if (jt * NR + NR > g.J) std::memset(pn, 0, sizeof(u32) * g.KP * NR);  // the last tile's spare columns
        for (int r = 0; r < rs.n; ++r) {
          const u32* br = b + rs.at[r];
          const int len = rs.len[r], t0 = rs.t[r];
          const __mmask16 m0 = first_n16(len), m1 = first_n16(len - 16);
          for (i64 kp = 0; kp < g.KP; ++kp) {
            u32* d = pn + kp * NR + t0;
            const u32* sp = br + off[kp];
            _mm512_mask_storeu_epi32(d, m0, _mm512_maskz_loadu_epi32(m0, sp));
            if (len > 16) _mm512_mask_storeu_epi32(d + 16, m1, _mm512_maskz_loadu_epi32(m1, sp + 16));
          }
        }
      }
      for (i64 kt = kt0; kt < kt1; ++kt)
        for (i64 jt = jt0; jt < jt1; ++jt) {
          __m512 acc[MR][2];
          tile(g.KP, a + (gi * g.kt + kt) * MR * g.KP, panels + (jt - jt0) * g.KP * NR, poff, acc);
          store(acc, out, bias, p, g, gi, kt * MR, runs[jt - jt0]);
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
