// kernels/conv2d/conv2d_phases_cpu.h: backward-data for stride > 1 by phases: each phase of dx is
// a stride-1 forward GEMM of dy with a flipped sub-kernel (conv_transpose2d's forward).
// A part of conv2d_cpu.cpp's translation unit (compiled once per ISA into PF_ISA_NS, after
// the includes and helpers there): include it only from there, in that file's order.
#pragma once

namespace PF_ISA_NS {
namespace {
// ---------------------------------------------------------------- backward-data, by phases
// Stride s > 1, dilation 1: dx rows h = s·i + a (phase a) only receive taps r ≡ a + pad (mod s),
// so each of the s_h·s_w phases of dx is a stride-1 forward convolution of dy with a sub-kernel
// of the flipped, transposed weights (k4 s2: four 2×2 kernels). A job runs every phase's GEMM
// for a few whole images into L2-resident tiles, then writes the images' dx channels
// interleaved, once, in order: the multiply-adds of the GEMM + col2im path without its
// scatter-add (and small phase images, 8×8 → 4×4, take the forward's register gather).
//   taps r = r0 + s·t (t < taps); dx row s·i + a and tap t read dy row i + e − t, which as a
//   forward over dy with t' = taps − 1 − t is row i − pad + t' with pad = taps − 1 − e.
struct Phase {
  i64 r0, taps, pad, out;  // first tap, taps, the forward's leading pad, dx rows of the phase
};
inline Phase phase_of(i64 a, i64 stride, i64 pad, i64 R, i64 H) {
  Phase f;
  f.r0 = (a + pad) % stride;
  f.taps = f.r0 < R ? cdiv(R - f.r0, stride) : 0;
  f.pad = f.taps - 1 - (a + pad - f.r0) / stride;
  f.out = a < H ? cdiv(H - a, stride) : 0;
  return f;
}

// Returns false (nothing written) where the general path is used instead: dilation, a pad
// beyond the kernel's reach (a phase would need a negative pad), or per-job tiles over ~1 MiB.
template <class T>
bool backward_data_phases(const T* dy, const T* w, T* dx, const pf::Conv2dParams& p) {
  constexpr int MR = MR_of<T>(), NR = NR_of<T>();
  if (p.dil_h != 1 || p.dil_w != 1 || p.N == 0) return false;
  const i64 G = p.groups, Cg = p.C / G, Kg = p.K / G, RS = p.R * p.S, HW = p.H * p.W, PQ = p.P * p.Q;
  const i64 sh = p.stride_h, sw = p.stride_w, nph = sh * sw, mb = cdiv(Cg, MR);
  // phase ph = a·sw + b: its forward's parameters (taps == 0: no tap reaches it, dx is 0 there)
  Scratch<pf::Conv2dParams> qs(nph);
  Scratch<i64> aofs(nph + 1);  // offsets of the phases' packed weights
  i64 opq_max = 1, kred_max = 1;
  aofs.p[0] = 0;
  for (i64 ph = 0; ph < nph; ++ph) {
    const Phase fa = phase_of(ph / sw, sh, p.pad_top, p.R, p.H), fb = phase_of(ph % sw, sw, p.pad_left, p.S, p.W);
    if (fa.out == 0 || fb.out == 0) return false;  // (an input narrower than the stride)
    const bool live = fa.taps > 0 && fb.taps > 0;
    if (live && (fa.pad < 0 || fb.pad < 0)) return false;
    pf::Conv2dParams& q = qs.p[ph];
    q = p;
    q.C = p.K; q.H = p.P; q.W = p.Q; q.K = p.C;
    q.R = live ? fa.taps : 0; q.S = live ? fb.taps : 0; q.P = fa.out; q.Q = fb.out;
    q.stride_h = q.stride_w = 1;
    q.pad_top = fa.pad; q.pad_left = fb.pad;
    q.pad_bottom = imax(0, fa.out + fa.taps - 2 - fa.pad - (p.P - 1));  // informative
    q.pad_right = imax(0, fb.out + fb.taps - 2 - fb.pad - (p.Q - 1));
    opq_max = imax(opq_max, q.P * q.Q);
    kred_max = imax(kred_max, Kg * q.R * q.S);
    aofs.p[ph + 1] = aofs.p[ph] + G * mb * Kg * q.R * q.S * MR;
  }
  // whole images per job, ~256 phase pixels, at least ~2 jobs per thread
  const i64 want = 2 * max_threads();
  i64 ipt = imax(1, 256 / opq_max);
  if (G * cdiv(p.N, ipt) < want) ipt = imax(1, cdiv(p.N, cdiv(want, G)));
  const i64 ldb = padded_ld<T>(rup(ipt * opq_max, NR)), kc_max = imin(kred_max, kKC);
  if (nph * mb * MR * ldb * i64(sizeof(T)) > (i64(1) << 20)) return false;
  // packed weights per phase, (G, mb, Kg·taps_a·taps_b, MR): row c, step (k, t', u') =
  // w[g·Kg + k][c][r0_a + s_h·(taps_a − 1 − t')][r0_b + s_w·(taps_b − 1 − u')]
  Scratch<T> apack(aofs.p[nph]);
#pragma omp parallel for schedule(static) if (p.K * Cg * RS > 65536)
  for (i64 pgb = 0; pgb < nph * G * mb; ++pgb) {
    const i64 ph = pgb / (G * mb), g = pgb / mb % G, ib = pgb % mb;
    const pf::Conv2dParams& q = qs.p[ph];
    const i64 kq = Kg * q.R * q.S, ra = (q.R - 1) * sh + (p.pad_top + ph / sw) % sh, sb = (q.S - 1) * sw + (p.pad_left + ph % sw) % sw;
    T* d = apack.p + aofs.p[ph] + (g * mb + ib) * kq * MR;
    for (i64 kk = 0; kk < kq; ++kk) {
      const i64 k = kk / (q.R * q.S), t = kk / q.S % q.R, u = kk % q.S;
      const T* wk = w + (g * Kg + k) * Cg * RS + (ra - sh * t) * p.S + (sb - sw * u);
      for (int i = 0; i < MR; ++i) {
        const i64 c = ib * MR + i;
        d[kk * MR + i] = c < Cg ? wk[c * RS] : T(0);
      }
    }
  }
  TapTable** tabs = new TapTable*[nph];
  for (i64 ph = 0; ph < nph; ++ph) tabs[ph] = qs.p[ph].R > 0 ? new TapTable(qs.p[ph], sizeof(T) == 4) : nullptr;
  const i64 tiles = cdiv(p.N, ipt), jobs = G * tiles;
#pragma omp parallel if (jobs > 1 && p.N * p.K * PQ * Cg * RS > 32768)
  {
    Scratch<T> bbuf(kc_max * ldb, true);
    Scratch<T> ctile(nph * mb * MR * ldb, true);
#pragma omp for schedule(dynamic, 1)
    for (i64 job = 0; job < jobs; ++job) {
      const i64 g = job % G, n0 = job / G * ipt, n1 = imin(p.N, n0 + ipt);
      for (i64 ph = 0; ph < nph; ++ph) {
        const pf::Conv2dParams& q = qs.p[ph];
        if (q.R == 0) continue;
        const i64 opq = q.P * q.Q, nt = (n1 - n0) * opq, kq = Kg * q.R * q.S;
        const int* tab = tabs[ph]->off;
        T* ct = ctile.p + ph * mb * MR * ldb;
        const T* ag = apack.p + aofs.p[ph] + g * mb * kq * MR;
        for (i64 k0 = 0; k0 < kq; k0 += kc_max) {
          const i64 kc = imin(kc_max, kq - k0);
          if (tab && n1 - n0 > 1)
            im2col_rows_images(dy + (n0 * p.K + g * Kg) * PQ, p.K * PQ, n1 - n0, q, tab, k0, k0 + kc, bbuf.p, ldb);
          else
            for (i64 n = n0; n < n1; ++n)
              im2col_rows(dy + (n * p.K + g * Kg) * PQ, q, tab, k0, k0 + kc, 0, opq, bbuf.p + (n - n0) * opq, ldb);
          for (i64 j0 = 0; j0 < nt; j0 += NR) {
            const int nn = int(imin(NR, nt - j0));
            for (i64 ib = 0; ib < mb; ++ib)
              ukernel<T>(kc, ag + (ib * kq + k0) * MR, bbuf.p + j0, ldb, ct + ib * MR * ldb + j0, ldb,
                         int(imin(MR, Cg - ib * MR)), nn, nullptr, k0 > 0);
          }
        }
      }
      // dx channel by channel, all phases interleaved: each dx line is written once
      for (i64 n = n0; n < n1; ++n)
        for (i64 c = 0; c < Cg; ++c) {
          T* d = dx + (n * p.C + g * Cg + c) * HW;
#if defined(__AVX512F__)
          if (sizeof(T) == 4 && sw == 2 && p.W <= 16) {  // a dx row is one vector: two phase rows, zipped
            const __m512i zip = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
            const __mmask16 mrow = __mmask16((1u << p.W) - 1u);
            for (i64 a = 0; a < sh; ++a) {
              const pf::Conv2dParams &q0 = qs.p[a * 2], &q1 = qs.p[a * 2 + 1];
              const __mmask16 m0 = __mmask16((1u << q0.Q) - 1u), m1 = __mmask16((1u << q1.Q) - 1u);
              const float* s0 = reinterpret_cast<const float*>(ctile.p + (a * 2) * mb * MR * ldb + c * ldb) + (n - n0) * q0.P * q0.Q;
              const float* s1 = reinterpret_cast<const float*>(ctile.p + (a * 2 + 1) * mb * MR * ldb + c * ldb) + (n - n0) * q1.P * q1.Q;
              for (i64 i = 0; i < q0.P; ++i) {
                const __m512 u = q0.R ? _mm512_maskz_loadu_ps(m0, s0 + i * q0.Q) : _mm512_setzero_ps();
                const __m512 v = q1.R ? _mm512_maskz_loadu_ps(m1, s1 + i * q1.Q) : _mm512_setzero_ps();
                _mm512_mask_storeu_ps(reinterpret_cast<float*>(d) + (sh * i + a) * p.W, mrow, _mm512_permutex2var_ps(u, zip, v));
              }
            }
            continue;
          }
#endif
          for (i64 ph = 0; ph < nph; ++ph) {
            const pf::Conv2dParams& q = qs.p[ph];
            const i64 a = ph / sw, b = ph % sw, opq = q.P * q.Q;
            const T* src = ctile.p + ph * mb * MR * ldb + c * ldb + (n - n0) * opq;
            for (i64 i = 0; i < q.P; ++i) {
              T* drow = d + (sh * i + a) * p.W + b;
              if (q.R == 0)
                for (i64 j = 0; j < q.Q; ++j) drow[j * sw] = T(0);
              else
                for (i64 j = 0; j < q.Q; ++j) drow[j * sw] = src[i * q.Q + j];
            }
          }
        }
    }
  }
  for (i64 ph = 0; ph < nph; ++ph) delete tabs[ph];
  delete[] tabs;
  return true;
}
}  // namespace
}  // namespace PF_ISA_NS
