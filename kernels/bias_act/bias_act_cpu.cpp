// kernels/bias_act/bias_act_cpu.cpp: fused bias + activation on the CPU.
// Compiled three times (generic, AVX2+FMA, AVX-512 flags) into PF_ISA_NS; the inner loops
// are written so the compiler vectorizes them for the ISA at hand (`omp simd`, no branches
// that depend on data other than selects; transcendentals through glibc's vector libm).
// OpenMP parallelizes over the (outer, channel) rows.

#include "bias_act/bias_act.h"

namespace PF_ISA_NS {
namespace {
// Internal-linkage scratch buffer: no std:: template is instantiated with this TU's ISA flags
// (a shared weak symbol compiled for AVX-512 could be picked for the generic path).
template <class T>
struct Scratch {
  T* p;
  explicit Scratch(pf::i64 n) : p(n > 0 ? new T[n] : nullptr) {}
  ~Scratch() { delete[] p; }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

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
}  // namespace

void bias_act_forward_f32(const float* x, const float* b, float* y, const pf::BiasActParams& p) { forward(x, b, y, p); }
void bias_act_forward_f64(const double* x, const double* b, double* y, const pf::BiasActParams& p) { forward(x, b, y, p); }
void bias_act_backward_f32(const float* gy, const float* x, const float* b, float* gx, float* gb, const pf::BiasActParams& p) { backward(gy, x, b, gx, gb, p); }
void bias_act_backward_f64(const double* gy, const double* x, const double* b, double* gx, double* gb, const pf::BiasActParams& p) { backward(gy, x, b, gx, gb, p); }
}  // namespace PF_ISA_NS
