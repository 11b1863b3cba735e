// kernels/group_norm/group_norm_cpu.cpp: GroupNorm (+ activation) forward and backward on the CPU.
// Compiled three times (generic, AVX2+FMA, AVX-512 flags) into PF_ISA_NS.
//
// x: (rows, cpg, inner), rows = N·groups; one row is one (image, group). OpenMP over rows
// (static; one thread owns a row), so every sum has the same order for any thread count.
// Per row, forward: mean, then the centred sum of squares (float64 totals), then one pass
//   y = act(((x − μ_hi) − μ_lo) · (rstd·w[c]) + b[c])
// with μ split into two floats: x − μ_hi is exact near the mean, so a large offset does not
// cancel away the normalized value (x·scale + shift would lose it in float32).
// Backward, with g = gy · act'(v) (v recomputed as above; gy itself without an activation):
//   pb[r][c] = Σ g,  pw[r][c] = Σ g·xhat  (float64, per channel of the row)
//   dx = rstd · (g·w[c] − m1 − xhat·m2),  m1 = Σ_c w[c]·pb / M,  m2 = Σ_c w[c]·pw / M
// Variants: float32 runs the elementwise passes on kernels/common/simd.h vectors with the
// activations of bias_act_simd.h (one instantiation per activation); float64, the checking
// path, is scalar with libm through bias_act.h's act_forward / act_grad, its sums `omp simd`
// loops in float64; float32 sums run in float32 lanes over 1024-element blocks (block_sum),
// the block sums in float64.
// LayerNorm is the same layout with one group and inner == 1 (the affine per element): its
// rows take ln_forward / ln_backward, with dW / dB partial sums per block of kLayerNormRows rows.
// The readable reference is python/pixelforge/ops/_ref/norm.py.
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12 reports the undefined pass-through operand inside some AVX-512 intrinsics as "may be
// used uninitialized" (roundscale, scalef, maskz loads): a false positive.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <math.h>

#include "bias_act/bias_act_simd.h"
#include "common/simd.h"
#include "group_norm/group_norm.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace PF_ISA_NS {
namespace {
using pf::i64;
using act_simd::Consts;
using V = simd::VF;
using R = V::R;
constexpr int W = V::W;
constexpr i64 kParWork = 1 << 15;  // elements below which one thread does it all
constexpr i64 kLnRows = pf::kLayerNormRows;

struct RowStats {
  double mu, rs;
  float mu_hi, mu_lo;  // μ = μ_hi + μ_lo to float64 precision
};

inline RowStats row_stats_of(double mu, double rs) {
  RowStats r;
  r.mu = mu;
  r.rs = rs;
  r.mu_hi = float(mu);
  r.mu_lo = float(mu - double(r.mu_hi));
  return r;
}

template <class T>
RowStats row_stats(const T* x, i64 M, double eps) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (i64 i = 0; i < M; ++i) s += double(x[i]);
  const double mu = s / double(M);
  double ss = 0;
#pragma omp simd reduction(+ : ss)
  for (i64 i = 0; i < M; ++i) {
    const double d = double(x[i]) - mu;
    ss += d * d;
  }
  return row_stats_of(mu, 1.0 / sqrt(ss / double(M) + eps));
}

// ---------------------------------------------------------------- float32
// Row sums: float32 lanes in four independent chains over blocks of kBlk elements (each lane
// adds ≤ kBlk / 64 terms), each block's sum added in float64. One float64 vector chain was
// latency-bound (a row's two statistics passes cost more than the normalize pass).
constexpr i64 kBlk = 1024;

// Σ f(i) over [0, n) for a vector functor f(i) (full vectors) and f_tail(i, m) (m lanes)
template <class F, class FT>
PF_SIMD_INLINE double block_sum(i64 n, F&& f, FT&& f_tail) {
  double total = 0;
  for (i64 b0 = 0; b0 < n; b0 += kBlk) {
    const i64 b1 = b0 + kBlk < n ? b0 + kBlk : n;
    R a0 = V::zero(), a1 = V::zero(), a2 = V::zero(), a3 = V::zero();
    i64 i = b0;
    for (; i + 4 * W <= b1; i += 4 * W) {
      a0 = V::add(a0, f(i));
      a1 = V::add(a1, f(i + W));
      a2 = V::add(a2, f(i + 2 * W));
      a3 = V::add(a3, f(i + 3 * W));
    }
    for (; i + W <= b1; i += W) a0 = V::add(a0, f(i));
    if (i < b1) a1 = V::add(a1, f_tail(i, int(b1 - i)));
    total += double(V::hsum(V::add(V::add(a0, a1), V::add(a2, a3))));
  }
  return total;
}

RowStats row_stats_f32(const float* x, i64 M, double eps) {
  // shifted by the row's first element: a large common offset would otherwise dominate the
  // float32 partial sums (1000 + N(0, 3) data lost ~1e-5 of the normalized values)
  const R x0 = V::set1(x[0]);
  const double mu = double(x[0]) + block_sum(
                                       M, [&](i64 i) { return V::sub(V::load(x + i), x0); },
                                       [&](i64 i, int m) { return V::select(V::first(m), V::sub(V::load_n(x + i, m), x0), V::zero()); }) /
                                       double(M);
  RowStats r = row_stats_of(mu, 0.0);
  const R hi = V::set1(r.mu_hi), lo = V::set1(r.mu_lo);
  const double ss = block_sum(
      M,
      [&](i64 i) {
        const R d = V::sub(V::sub(V::load(x + i), hi), lo);
        return V::mul(d, d);
      },
      [&](i64 i, int m) {
        const R d = V::select(V::first(m), V::sub(V::sub(V::load_n(x + i, m), hi), lo), V::zero());
        return V::mul(d, d);
      });
  r.rs = 1.0 / sqrt(ss / double(M) + eps);
  return r;
}

// v = ((x − μ_hi) − μ_lo) · scale + shift for one channel's `inner` elements
template <int ACT>
void fwd_channel_f32(const float* x, float* y, i64 n, const RowStats& st, float scale, float shift, const Consts& k) {
  const R hi = V::set1(st.mu_hi), lo = V::set1(st.mu_lo), a = V::set1(scale), b = V::set1(shift);
  i64 i = 0;
  for (; i + W <= n; i += W)
    V::store(y + i, act_simd::act_v<ACT>(V::fma(V::sub(V::sub(V::load(x + i), hi), lo), a, b), k));
  if (i < n) {
    const int m = int(n - i);
    V::store_n(y + i, act_simd::act_v<ACT>(V::fma(V::sub(V::sub(V::load_n(x + i, m), hi), lo), a, b), k), m);
  }
}

// g[i] = gy[i] · act'(v[i])
template <int ACT>
void grad_channel_f32(const float* gy, const float* x, float* g, i64 n, const RowStats& st, float scale, float shift,
                      const Consts& k) {
  const R hi = V::set1(st.mu_hi), lo = V::set1(st.mu_lo), a = V::set1(scale), b = V::set1(shift);
  i64 i = 0;
  for (; i + W <= n; i += W) {
    const R v = V::fma(V::sub(V::sub(V::load(x + i), hi), lo), a, b);
    V::store(g + i, V::mul(V::load(gy + i), act_simd::grad_v<ACT>(v, k)));
  }
  if (i < n) {
    const int m = int(n - i);
    const R v = V::fma(V::sub(V::sub(V::load_n(x + i, m), hi), lo), a, b);
    V::store_n(g + i, V::mul(V::load_n(gy + i, m), act_simd::grad_v<ACT>(v, k)), m);
  }
}

// dx[i] = ca·g[i] − (cm1 + xhat[i]·cm2), xhat = ((x − μ_hi) − μ_lo)·rstd
void dx_channel_f32(const float* g, const float* x, float* dx, i64 n, const RowStats& st, float rs, float ca,
                    float cm1, float cm2) {
  const R hi = V::set1(st.mu_hi), lo = V::set1(st.mu_lo), r = V::set1(rs), a = V::set1(ca), m1 = V::set1(cm1),
          m2 = V::set1(cm2);
  i64 i = 0;
  for (; i + W <= n; i += W) {
    const R xh = V::mul(V::sub(V::sub(V::load(x + i), hi), lo), r);
    V::store(dx + i, V::sub(V::mul(a, V::load(g + i)), V::fma(xh, m2, m1)));
  }
  if (i < n) {
    const int m = int(n - i);
    const R xh = V::mul(V::sub(V::sub(V::load_n(x + i, m), hi), lo), r);
    V::store_n(dx + i, V::sub(V::mul(a, V::load_n(g + i, m)), V::fma(xh, m2, m1)), m);
  }
}

// ---------------------------------------------------------------- float64 (scalar, libm)
template <int ACT>
void fwd_channel_f64(const double* x, double* y, i64 n, const RowStats& st, double scale, double shift, double alpha) {
  for (i64 i = 0; i < n; ++i) y[i] = pf::act_forward<double>(ACT, (x[i] - st.mu) * scale + shift, alpha);
}

template <int ACT>
void grad_channel_f64(const double* gy, const double* x, double* g, i64 n, const RowStats& st, double scale,
                      double shift, double alpha) {
  for (i64 i = 0; i < n; ++i) g[i] = gy[i] * pf::act_grad<double>(ACT, (x[i] - st.mu) * scale + shift, alpha);
}

// ---------------------------------------------------------------- rows
template <class T, int ACT>
void forward_rows(const T* x, const T* w, const T* b, T* y, double* mean, double* rstd, const pf::GroupNormParams& p) {
  const i64 M = p.cpg * p.inner;
  Consts k;
  k.alpha = V::set1(float(p.alpha));
#pragma omp parallel for schedule(static) if (p.rows * M >= kParWork)
  for (i64 r = 0; r < p.rows; ++r) {
    const T* xr = x + r * M;
    T* yr = y + r * M;
    RowStats st;
    if constexpr (sizeof(T) == 4) st = row_stats_f32(reinterpret_cast<const float*>(xr), M, p.eps);
    else st = row_stats(xr, M, p.eps);
    mean[r] = st.mu;
    rstd[r] = st.rs;
    const i64 a0 = (r % p.groups) * p.cpg;
    for (i64 c = 0; c < p.cpg; ++c) {
      const double scale = double(w[a0 + c]) * st.rs, shift = double(b[a0 + c]);
      if constexpr (sizeof(T) == 4)
        fwd_channel_f32<ACT>(reinterpret_cast<const float*>(xr) + c * p.inner, reinterpret_cast<float*>(yr) + c * p.inner,
                             p.inner, st, float(scale), float(shift), k);
      else
        fwd_channel_f64<ACT>(reinterpret_cast<const double*>(xr) + c * p.inner, reinterpret_cast<double*>(yr) + c * p.inner,
                             p.inner, st, scale, shift, p.alpha);
    }
  }
}

template <class T, int ACT>
void backward_rows(const T* gy, const T* x, const T* w, const T* b, const double* mean, const double* rstd, T* gx,
                   bool need_x, double* pw, double* pb, const pf::GroupNormParams& p) {
  const i64 M = p.cpg * p.inner;
  Consts k;
  k.alpha = V::set1(float(p.alpha));
#pragma omp parallel for schedule(static) if (p.rows * M >= kParWork)
  for (i64 r = 0; r < p.rows; ++r) {
    const T* xr = x + r * M;
    const T* gr = gy + r * M;
    T* dr = (need_x || ACT != pf::kLinear) ? gx + r * M : nullptr;
    const RowStats st = row_stats_of(mean[r], rstd[r]);
    const i64 a0 = (r % p.groups) * p.cpg;
    double s1 = 0, s2 = 0;
    for (i64 c = 0; c < p.cpg; ++c) {
      const i64 o = c * p.inner;
      const T* g = gr + o;
      if constexpr (ACT != pf::kLinear) {  // the gradient before the activation, into dx
        const double scale = double(w[a0 + c]) * st.rs, shift = double(b[a0 + c]);
        if constexpr (sizeof(T) == 4)
          grad_channel_f32<ACT>(reinterpret_cast<const float*>(gr) + o, reinterpret_cast<const float*>(xr) + o,
                                reinterpret_cast<float*>(dr) + o, p.inner, st, float(scale), float(shift), k);
        else
          grad_channel_f64<ACT>(reinterpret_cast<const double*>(gr) + o, reinterpret_cast<const double*>(xr) + o,
                                reinterpret_cast<double*>(dr) + o, p.inner, st, scale, shift, p.alpha);
        g = dr + o;
      }
      const T* xs = xr + o;
      const double mu = st.mu, rs = st.rs;
      double ag = 0, agx = 0;
      if constexpr (sizeof(T) == 4) {
        const float* gf = reinterpret_cast<const float*>(g);
        const float* xf = reinterpret_cast<const float*>(xs);
        const R hi = V::set1(st.mu_hi), lo = V::set1(st.mu_lo), rv = V::set1(float(rs));
        ag = block_sum(p.inner, [&](i64 i) { return V::load(gf + i); }, [&](i64 i, int m) { return V::load_n(gf + i, m); });
        agx = block_sum(
            p.inner, [&](i64 i) { return V::mul(V::load(gf + i), V::mul(V::sub(V::sub(V::load(xf + i), hi), lo), rv)); },
            [&](i64 i, int m) {
              return V::mul(V::load_n(gf + i, m), V::mul(V::sub(V::sub(V::load_n(xf + i, m), hi), lo), rv));
            });
      } else {
#pragma omp simd reduction(+ : ag, agx)
        for (i64 i = 0; i < p.inner; ++i) {
          const double gv = double(g[i]);
          ag += gv;
          agx += gv * ((double(xs[i]) - mu) * rs);
        }
      }
      pb[r * p.cpg + c] = ag;
      pw[r * p.cpg + c] = agx;
      s1 += double(w[a0 + c]) * ag;
      s2 += double(w[a0 + c]) * agx;
    }
    if (!need_x) continue;
    const double m1 = s1 / double(M), m2 = s2 / double(M), rs = st.rs;
    for (i64 c = 0; c < p.cpg; ++c) {
      const i64 o = c * p.inner;
      const T* g = ACT != pf::kLinear ? dr + o : gr + o;  // in place when g lives in dx
      const double ca = rs * double(w[a0 + c]);
      if constexpr (sizeof(T) == 4) {
        dx_channel_f32(reinterpret_cast<const float*>(g), reinterpret_cast<const float*>(xr) + o,
                       reinterpret_cast<float*>(dr) + o, p.inner, st, float(rs), float(ca), float(rs * m1),
                       float(rs * m2));
      } else {
        const double* xs = reinterpret_cast<const double*>(xr) + o;
        double* ds = reinterpret_cast<double*>(dr) + o;
        const double* gs = reinterpret_cast<const double*>(g);
        for (i64 i = 0; i < p.inner; ++i) ds[i] = rs * (gs[i] * double(w[a0 + c]) - m1 - (xs[i] - st.mu) * rs * m2);
      }
    }
  }
}

// ---------------------------------------------------------------- LayerNorm rows
// One group, inner == 1, no activation: the affine is per element of the row (w[k], b[k]),
// so the elementwise passes run along the row, and dW / dB get per-block partial sums over
// kLnRows rows (a (rows, M) float64 array of per-row partials would outweigh the pass).
template <class T>
void ln_forward(const T* x, const T* w, const T* b, T* y, double* mean, double* rstd, i64 rows, i64 M, double eps) {
#pragma omp parallel for schedule(static) if (rows * M >= kParWork)
  for (i64 r = 0; r < rows; ++r) {
    const T* xr = x + r * M;
    T* yr = y + r * M;
    if constexpr (sizeof(T) == 4) {
      const float* xf = reinterpret_cast<const float*>(xr);
      float* yf = reinterpret_cast<float*>(yr);
      const float* wf = reinterpret_cast<const float*>(w);
      const float* bf = reinterpret_cast<const float*>(b);
      const RowStats st = row_stats_f32(xf, M, eps);
      mean[r] = st.mu;
      rstd[r] = st.rs;
      const R hi = V::set1(st.mu_hi), lo = V::set1(st.mu_lo), rs = V::set1(float(st.rs));
      i64 k = 0;
      for (; k + W <= M; k += W)
        V::store(yf + k, V::fma(V::sub(V::sub(V::load(xf + k), hi), lo), V::mul(rs, V::load(wf + k)), V::load(bf + k)));
      if (k < M) {
        const int m = int(M - k);
        V::store_n(yf + k, V::fma(V::sub(V::sub(V::load_n(xf + k, m), hi), lo), V::mul(rs, V::load_n(wf + k, m)),
                                  V::load_n(bf + k, m)), m);
      }
    } else {
      const RowStats st = row_stats(xr, M, eps);
      mean[r] = st.mu;
      rstd[r] = st.rs;
      for (i64 k = 0; k < M; ++k) yr[k] = (xr[k] - st.mu) * st.rs * w[k] + b[k];
    }
  }
}

template <class T>
void ln_backward(const T* gy, const T* x, const T* w, const double* mean, const double* rstd, T* gx, bool need_x,
                 double* pw, double* pb, i64 rows, i64 M) {
  const i64 nblk = (rows + kLnRows - 1) / kLnRows;
#pragma omp parallel for schedule(static) if (rows * M >= kParWork)
  for (i64 blk = 0; blk < nblk; ++blk) {
    double* pwb = pw + blk * M;
    double* pbb = pb + blk * M;
    for (i64 r = blk * kLnRows; r < rows && r < (blk + 1) * kLnRows; ++r) {
      const T* xr = x + r * M;
      const T* gr = gy + r * M;
      const RowStats st = row_stats_of(mean[r], rstd[r]);
      const double mu = st.mu, rs = st.rs;
      double s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
      for (i64 k = 0; k < M; ++k) {
        const double gv = double(gr[k]), xh = (double(xr[k]) - mu) * rs;
        pbb[k] += gv;
        pwb[k] += gv * xh;
        s1 += double(w[k]) * gv;
        s2 += double(w[k]) * gv * xh;
      }
      if (!need_x) continue;
      const double m1 = s1 / double(M), m2 = s2 / double(M);
      T* dr = gx + r * M;
      if constexpr (sizeof(T) == 4) {
        const float* xf = reinterpret_cast<const float*>(xr);
        const float* gf = reinterpret_cast<const float*>(gr);
        const float* wf = reinterpret_cast<const float*>(w);
        float* df = reinterpret_cast<float*>(dr);
        const R hi = V::set1(st.mu_hi), lo = V::set1(st.mu_lo), rv = V::set1(float(rs)), c1 = V::set1(float(rs * m1)),
                c2 = V::set1(float(rs * m2));
        i64 k = 0;
        for (; k + W <= M; k += W) {
          const R xh = V::mul(V::sub(V::sub(V::load(xf + k), hi), lo), rv);
          V::store(df + k, V::sub(V::mul(V::mul(rv, V::load(wf + k)), V::load(gf + k)), V::fma(xh, c2, c1)));
        }
        if (k < M) {
          const int m = int(M - k);
          const R xh = V::mul(V::sub(V::sub(V::load_n(xf + k, m), hi), lo), rv);
          V::store_n(df + k, V::sub(V::mul(V::mul(rv, V::load_n(wf + k, m)), V::load_n(gf + k, m)), V::fma(xh, c2, c1)), m);
        }
      } else {
        for (i64 k = 0; k < M; ++k) dr[k] = rs * (gr[k] * w[k] - m1 - (xr[k] - mu) * rs * m2);
      }
    }
  }
}

#define PF_GN_DISPATCH(FN, T, ...)                             \
  switch (p.act) {                                              \
    case pf::kRelu: FN<T, pf::kRelu>(__VA_ARGS__); break;       \
    case pf::kLrelu: FN<T, pf::kLrelu>(__VA_ARGS__); break;     \
    case pf::kTanh: FN<T, pf::kTanh>(__VA_ARGS__); break;       \
    case pf::kSigmoid: FN<T, pf::kSigmoid>(__VA_ARGS__); break; \
    case pf::kSilu: FN<T, pf::kSilu>(__VA_ARGS__); break;       \
    case pf::kGelu: FN<T, pf::kGelu>(__VA_ARGS__); break;       \
    default: FN<T, pf::kLinear>(__VA_ARGS__); break;            \
  }
}  // namespace

void group_norm_forward_f32(const float* x, const float* w, const float* b, float* y, double* mean, double* rstd,
                            const pf::GroupNormParams& p) {
  if (pf::layer_norm_rows(p)) return ln_forward(x, w, b, y, mean, rstd, p.rows, p.cpg, p.eps);
  PF_GN_DISPATCH(forward_rows, float, x, w, b, y, mean, rstd, p)
}
void group_norm_forward_f64(const double* x, const double* w, const double* b, double* y, double* mean, double* rstd,
                            const pf::GroupNormParams& p) {
  if (pf::layer_norm_rows(p)) return ln_forward(x, w, b, y, mean, rstd, p.rows, p.cpg, p.eps);
  PF_GN_DISPATCH(forward_rows, double, x, w, b, y, mean, rstd, p)
}
void group_norm_backward_f32(const float* gy, const float* x, const float* w, const float* b, const double* mean,
                             const double* rstd, float* gx, bool need_x, double* pw, double* pb,
                             const pf::GroupNormParams& p) {
  if (pf::layer_norm_rows(p)) return ln_backward(gy, x, w, mean, rstd, gx, need_x, pw, pb, p.rows, p.cpg);
  PF_GN_DISPATCH(backward_rows, float, gy, x, w, b, mean, rstd, gx, need_x, pw, pb, p)
}
void group_norm_backward_f64(const double* gy, const double* x, const double* w, const double* b, const double* mean,
                             const double* rstd, double* gx, bool need_x, double* pw, double* pb,
                             const pf::GroupNormParams& p) {
  if (pf::layer_norm_rows(p)) return ln_backward(gy, x, w, mean, rstd, gx, need_x, pw, pb, p.rows, p.cpg);
  PF_GN_DISPATCH(backward_rows, double, gy, x, w, b, mean, rstd, gx, need_x, pw, pb, p)
}
#undef PF_GN_DISPATCH
}  // namespace PF_ISA_NS
