// kernels/bias_act/bias_act_cpu.cpp: fused bias + activation on the CPU.
//   y = clamp(act(x + b[c]) * gain, -clamp, clamp), x viewed as (outer, C, inner)
// Compiled three times (generic, AVX2+FMA, AVX-512 flags) into PF_ISA_NS.
//
// Variants:
//  - float32: explicit vectors from kernels/common/simd.h (16 / 8 / 4 lanes), transcendentals
//    through its vexp / vtanh / vsigmoid / verf (a few ulp; the scalar libm calls cost ~6x).
//    One instantiation per (activation, clamp on/off, bias broadcast or bias vector), so the
//    inner loops carry no switch. Work is split into fixed 8192-element chunks of the flat
//    array (balanced for any shape); rows with inner >= 32 take their bias as a broadcast
//    scalar, shorter rows read a bias pattern expanded once into scratch (bias of flat index i
//    = eb[i % L]). Below ~64k cheap / ~11k transcendental elements everything runs on the
//    calling thread: an OpenMP region costs more than the work.
//  - float64: the checking path, scalar libm through the shared act_forward / act_grad of
//    bias_act.h, auto-vectorized where the compiler can; OpenMP over rows.
// dbias is deterministic (same bits for any thread count): float32 rows with inner >= 32 and
// every float64 row are summed by one thread each and combined over `outer` in a fixed order;
// float32 short rows accumulate per (c, i) column over `outer` in order, then over i.
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12 reports the undefined pass-through operand inside some AVX-512 intrinsics as "may be
// used uninitialized" (roundscale, scalef, maskz loads): a false positive.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include "bias_act/bias_act.h"
#include "common/cpu_scratch.h"
#include "common/simd.h"
#include "bias_act/bias_act_simd.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace PF_ISA_NS {
namespace {
template <class T>
void forward_row(const T* x, T bias, T* y, pf::i64 n, int act, T alpha, T gain, T clamp) {
  // One loop per activation so each vectorizes with no switch inside.
  switch (act) {
#define PF_ROW(ACT)                                                         \
  case ACT:                                                                 \
    _Pragma("omp simd") for (pf::i64 i = 0; i < n; ++i) {                   \
      T v = pf::act_forward<T>(ACT, x[i] + bias, alpha) * gain;             \
      if (clamp >= T(0)) v = v > clamp ? clamp : (v < -clamp ? -clamp : v); \
      y[i] = v;                                                             \
    }                                                                       \
    break;
    PF_ROW(pf::kLinear) PF_ROW(pf::kRelu) PF_ROW(pf::kLrelu) PF_ROW(pf::kTanh)
    PF_ROW(pf::kSigmoid) PF_ROW(pf::kSilu) PF_ROW(pf::kGelu)
#undef PF_ROW
  }
}

template <class T>
T backward_row(const T* gy, const T* x, T bias, T* gx, pf::i64 n, int act, T alpha, T gain, T clamp) {
  T sum = 0;
  switch (act) {
#define PF_ROW(ACT)                                                              \
  case ACT:                                                                      \
    _Pragma("omp simd reduction(+ : sum)") for (pf::i64 i = 0; i < n; ++i) {     \
      T v = x[i] + bias;                                                         \
      T g = gy[i] * gain * pf::act_grad<T>(ACT, v, alpha);                       \
      if (clamp >= T(0)) {                                                       \
        T yv = pf::act_forward<T>(ACT, v, alpha) * gain;                         \
        g = (yv > clamp || yv < -clamp) ? T(0) : g;                              \
      }                                                                          \
      gx[i] = g;                                                                 \
      sum += g;                                                                  \
    }                                                                            \
    break;
    PF_ROW(pf::kLinear) PF_ROW(pf::kRelu) PF_ROW(pf::kLrelu) PF_ROW(pf::kTanh)
    PF_ROW(pf::kSigmoid) PF_ROW(pf::kSilu) PF_ROW(pf::kGelu)
#undef PF_ROW
  }
  return sum;
}

template <class T>
void forward(const T* x, const T* b, T* y, const pf::BiasActParams& p) {
  const pf::i64 rows = p.outer * p.channels;
  const T alpha = T(p.alpha), gain = T(p.gain), clamp = T(p.clamp);
  // Short rows (inner small) are grouped so each thread still gets long runs.
#pragma omp parallel for schedule(static) if (rows * p.inner > 32768)
  for (pf::i64 r = 0; r < rows; ++r) {
    const pf::i64 c = r % p.channels;
    forward_row<T>(x + r * p.inner, b ? b[c] : T(0), y + r * p.inner, p.inner, p.act, alpha, gain, clamp);
  }
}

template <class T>
void backward(const T* gy, const T* x, const T* b, T* gx, T* gb, const pf::BiasActParams& p) {
  const pf::i64 rows = p.outer * p.channels;
  const T alpha = T(p.alpha), gain = T(p.gain), clamp = T(p.clamp);
  Scratch<T> row_sum(gb ? rows : 0);
#pragma omp parallel for schedule(static) if (rows * p.inner > 32768)
  for (pf::i64 r = 0; r < rows; ++r) {
    const pf::i64 c = r % p.channels;
    T s = backward_row<T>(gy + r * p.inner, x + r * p.inner, b ? b[c] : T(0), gx + r * p.inner,
                          p.inner, p.act, alpha, gain, clamp);
    if (gb) row_sum.p[r] = s;
  }
  if (gb) {
    // Fixed summation order over the outer index: the same bits for any thread count.
    for (pf::i64 c = 0; c < p.channels; ++c) gb[c] = 0;
    for (pf::i64 o = 0; o < p.outer; ++o)
      for (pf::i64 c = 0; c < p.channels; ++c) gb[c] += row_sum.p[o * p.channels + c];
  }
}

// ------------------------------------------------------------------ float32 on simd.h
using V = simd::VF;
using R = V::R;
constexpr int W = V::W;
constexpr pf::i64 kChunk = 8192;      // elements per parallel work item (a multiple of W)
constexpr pf::i64 kRowMin = 32;       // rows at least this long take a broadcast bias
constexpr pf::i64 kParWork = 1 << 16;  // below this many "cheap-element units": one thread

inline pf::i64 min64(pf::i64 a, pf::i64 b) { return a < b ? a : b; }

using act_simd::Consts;
using act_simd::act_v;
using act_simd::grad_v;

template <int ACT, bool CLAMP>
PF_SIMD_INLINE R fwd_one(R v, const Consts& k) {
  R y = V::mul(act_v<ACT>(v, k), k.gain);
  if constexpr (CLAMP) y = V::min(k.hi, V::max(k.lo, y));  // NaN passes (second operand)
  return y;
}

template <int ACT, bool CLAMP>
PF_SIMD_INLINE R bwd_one(R gy, R v, const Consts& k) {
  R g = V::mul(V::mul(gy, k.gain), grad_v<ACT>(v, k));
  if constexpr (CLAMP) {
    const R y = V::mul(act_v<ACT>(v, k), k.gain);
    g = V::select(V::mask_or(V::gt(y, k.hi), V::lt(y, k.lo)), V::zero(), g);
  }
  return g;
}

// y[i] = f(x[i] + bias), bias bv[i] (BV) or the scalar bs; i in [0, n)
template <int ACT, bool CLAMP, bool BV>
void fwd_piece(const float* x, const float* bv, float bs, float* y, pf::i64 n, const Consts& k) {
  const R b = V::set1(bs);
  pf::i64 i = 0;
  for (; i + W <= n; i += W)
    V::store(y + i, fwd_one<ACT, CLAMP>(V::add(V::load(x + i), BV ? V::load(bv + i) : b), k));
  if (i < n) {
    const int m = int(n - i);
    V::store_n(y + i, fwd_one<ACT, CLAMP>(V::add(V::load_n(x + i, m), BV ? V::load_n(bv + i, m) : b), k), m);
  }
}

// gx[i] = gy[i] * gain * act'(x[i] + bias); returns the sum of gx (lane sums, then a fixed
// pairwise reduction) when SUM, else 0. ACC (short rows): acc[i] += gx[i] instead.
template <int ACT, bool CLAMP, bool BV, bool SUM, bool ACC>
float bwd_piece(const float* gy, const float* x, const float* bv, float bs, float* gx, float* acc, pf::i64 n,
                const Consts& k) {
  const R b = V::set1(bs);
  R s = V::zero();
  pf::i64 i = 0;
  for (; i + W <= n; i += W) {
    const R g = bwd_one<ACT, CLAMP>(V::load(gy + i), V::add(V::load(x + i), BV ? V::load(bv + i) : b), k);
    V::store(gx + i, g);
    if constexpr (SUM) s = V::add(s, g);
    if constexpr (ACC) V::store(acc + i, V::add(V::load(acc + i), g));
  }
  if (i < n) {
    const int m = int(n - i);
    R g = bwd_one<ACT, CLAMP>(V::load_n(gy + i, m), V::add(V::load_n(x + i, m), BV ? V::load_n(bv + i, m) : b), k);
    g = V::select(V::first(m), g, V::zero());  // padding lanes (bias may be inf) add nothing
    V::store_n(gx + i, g, m);
    if constexpr (SUM) s = V::add(s, g);
    if constexpr (ACC) V::store_n(acc + i, V::add(V::load_n(acc + i, m), g), m);
  }
  if constexpr (SUM) return V::hsum(s);
  return 0.f;
}

// How flat indices map to biases: none, one per row of `inner` (rows), or eb[i % L] (pattern).
struct Geo {
  pf::i64 n, C, inner, P, L;  // P = C * inner, L: pattern length (a multiple of P)
  const float* b;
  const float* eb;
  int mode;  // 0 none, 1 rows, 2 pattern
};

// Calls piece(pos, len, bias_vector_or_null, bias_scalar) for the pieces of [beg, end).
template <class F>
inline void for_pieces(const Geo& g, pf::i64 beg, pf::i64 end, F&& piece) {
  pf::i64 pos = beg;
  while (pos < end) {
    if (g.mode == 0) {
      piece(pos, end - pos, nullptr, 0.f);
      return;
    }
    if (g.mode == 1) {
      const pf::i64 r = pos / g.inner, e = min64(end, (r + 1) * g.inner);
      piece(pos, e - pos, nullptr, g.b[r % g.C]);
      pos = e;
    } else {
      const pf::i64 off = pos % g.L, e = min64(end, pos + (g.L - off));
      piece(pos, e - pos, g.eb + off, 0.f);
      pos = e;
    }
  }
}

template <int ACT, bool CLAMP>
void forward_f32(const float* x, float* y, const Geo& g, const Consts& k, bool par) {
  const pf::i64 chunks = (g.n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (par)
  for (pf::i64 j = 0; j < chunks; ++j)
    for_pieces(g, j * kChunk, min64(g.n, (j + 1) * kChunk), [&](pf::i64 pos, pf::i64 len, const float* bv, float bs) {
      if (bv) fwd_piece<ACT, CLAMP, true>(x + pos, bv, 0.f, y + pos, len, k);
      else fwd_piece<ACT, CLAMP, false>(x + pos, nullptr, bs, y + pos, len, k);
    });
}

template <int ACT, bool CLAMP>
void backward_f32(const float* gy, const float* x, float* gx, float* gb, const Geo& g, pf::i64 outer,
                  const Consts& k, bool par) {
  if (!gb) {
    const pf::i64 chunks = (g.n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (par)
    for (pf::i64 j = 0; j < chunks; ++j)
      for_pieces(g, j * kChunk, min64(g.n, (j + 1) * kChunk), [&](pf::i64 pos, pf::i64 len, const float* bv, float bs) {
        if (bv) bwd_piece<ACT, CLAMP, true, false, false>(gy + pos, x + pos, bv, 0.f, gx + pos, nullptr, len, k);
        else bwd_piece<ACT, CLAMP, false, false, false>(gy + pos, x + pos, nullptr, bs, gx + pos, nullptr, len, k);
      });
    return;
  }
  const pf::i64 C = g.C, inner = g.inner, P = g.P;
  if (g.mode != 2) {
    // Rows of >= kRowMin elements (or one row per (o, c) without a bias): one thread sums a row.
    const pf::i64 rows = outer * C;
    Scratch<float> row_sum(rows);
#pragma omp parallel for schedule(static) if (par)
    for (pf::i64 r = 0; r < rows; ++r)
      row_sum.p[r] = bwd_piece<ACT, CLAMP, false, true, false>(gy + r * inner, x + r * inner, nullptr,
                                                               g.b ? g.b[r % C] : 0.f, gx + r * inner, nullptr, inner, k);
    for (pf::i64 c = 0; c < C; ++c) gb[c] = 0;
    for (pf::i64 o = 0; o < outer; ++o)
      for (pf::i64 c = 0; c < C; ++c) gb[c] += row_sum.p[o * C + c];
    return;
  }
  // Short rows: x as an (outer, P) matrix; column blocks of P go to threads, each column's sum
  // runs over `outer` in order (the blocking never changes which terms meet in which order).
  Scratch<float> acc(P);
  for (pf::i64 i = 0; i < P; ++i) acc.p[i] = 0;
  const pf::i64 want = 4 * pf::i64(max_threads());
  pf::i64 bw = ((P + want - 1) / want + W - 1) / W * W;
  if (bw < 64) bw = 64;
  const pf::i64 blocks = (P + bw - 1) / bw;
#pragma omp parallel for schedule(static) if (par && blocks > 1)
  for (pf::i64 blk = 0; blk < blocks; ++blk) {
    const pf::i64 p0 = blk * bw, len = min64(bw, P - p0);
    for (pf::i64 o = 0; o < outer; ++o) {
      const pf::i64 base = o * P + p0;
      bwd_piece<ACT, CLAMP, true, false, true>(gy + base, x + base, g.eb + p0, 0.f, gx + base, acc.p + p0, len, k);
    }
  }
  for (pf::i64 c = 0; c < C; ++c) {
    float s = 0;
    for (pf::i64 i = 0; i < inner; ++i) s += acc.p[c * inner + i];
    gb[c] = s;
  }
}

// Shared set-up: geometry (with the expanded bias pattern for short rows), constants, and
// whether the work is worth a parallel region.
struct Setup {
  Geo g;
  Consts k;
  bool clamp, par;
  Scratch<float> eb;
  Setup(const float* b, const pf::BiasActParams& p, bool backward_sums)
      : eb((b || backward_sums) && p.inner < kRowMin ? pattern_len(p) : 0) {
    g.n = p.outer * p.channels * p.inner;
    g.C = p.channels;
    g.inner = p.inner;
    g.P = p.channels * p.inner;
    g.L = pattern_len(p);
    g.b = b;
    g.eb = eb.p;
    g.mode = eb.p ? 2 : (b ? 1 : 0);
    for (pf::i64 i = 0; eb.p && i < g.L; ++i) eb.p[i] = b ? b[(i % g.P) / p.inner] : 0.f;
    k.alpha = V::set1(float(p.alpha));
    k.gain = V::set1(float(p.gain));
    clamp = p.clamp >= 0;
    k.lo = V::set1(-float(p.clamp));
    k.hi = V::set1(float(p.clamp));
    const bool cheap = p.act == pf::kLinear || p.act == pf::kRelu || p.act == pf::kLrelu;
    par = g.n * (cheap ? 1 : 6) >= kParWork;
  }
  // A multiple of P of at least kChunk elements, so a chunk meets at most two pattern pieces.
  static pf::i64 pattern_len(const pf::BiasActParams& p) {
    const pf::i64 P = p.channels * p.inner;
    return P <= 0 ? 0 : P * ((kChunk + P - 1) / P);
  }
};

#define PF_F32_DISPATCH(FN, ...)                                                                   \
  switch (p.act) {                                                                                 \
    case pf::kRelu: s.clamp ? FN<pf::kRelu, true>(__VA_ARGS__) : FN<pf::kRelu, false>(__VA_ARGS__); break;      \
    case pf::kLrelu: s.clamp ? FN<pf::kLrelu, true>(__VA_ARGS__) : FN<pf::kLrelu, false>(__VA_ARGS__); break;   \
    case pf::kTanh: s.clamp ? FN<pf::kTanh, true>(__VA_ARGS__) : FN<pf::kTanh, false>(__VA_ARGS__); break;      \
    case pf::kSigmoid: s.clamp ? FN<pf::kSigmoid, true>(__VA_ARGS__) : FN<pf::kSigmoid, false>(__VA_ARGS__); break; \
    case pf::kSilu: s.clamp ? FN<pf::kSilu, true>(__VA_ARGS__) : FN<pf::kSilu, false>(__VA_ARGS__); break;      \
    case pf::kGelu: s.clamp ? FN<pf::kGelu, true>(__VA_ARGS__) : FN<pf::kGelu, false>(__VA_ARGS__); break;      \
    default: s.clamp ? FN<pf::kLinear, true>(__VA_ARGS__) : FN<pf::kLinear, false>(__VA_ARGS__); break;        \
  }

void forward_f32_entry(const float* x, const float* b, float* y, const pf::BiasActParams& p) {
  if (p.outer * p.channels * p.inner <= 0) return;
  Setup s(b, p, false);
  PF_F32_DISPATCH(forward_f32, x, y, s.g, s.k, s.par)
}

void backward_f32_entry(const float* gy, const float* x, const float* b, float* gx, float* gb,
                        const pf::BiasActParams& p) {
  if (p.outer * p.channels * p.inner <= 0) {
    for (pf::i64 c = 0; gb && c < p.channels; ++c) gb[c] = 0;
    return;
  }
  Setup s(b, p, gb != nullptr);
  PF_F32_DISPATCH(backward_f32, gy, x, gx, gb, s.g, p.outer, s.k, s.par)
}
#undef PF_F32_DISPATCH
}  // namespace

void bias_act_forward_f32(const float* x, const float* b, float* y, const pf::BiasActParams& p) { forward_f32_entry(x, b, y, p); }
void bias_act_forward_f64(const double* x, const double* b, double* y, const pf::BiasActParams& p) { forward(x, b, y, p); }
void bias_act_backward_f32(const float* gy, const float* x, const float* b, float* gx, float* gb, const pf::BiasActParams& p) { backward_f32_entry(gy, x, b, gx, gb, p); }
void bias_act_backward_f64(const double* gy, const double* x, const double* b, double* gx, double* gb, const pf::BiasActParams& p) { backward(gy, x, b, gx, gb, p); }
}  // namespace PF_ISA_NS
