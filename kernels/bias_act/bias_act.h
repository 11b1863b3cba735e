// kernels/bias_act/bias_act.h: StyleGAN2's fused bias + activation + gain + clamp.
//   y = clamp(act(x + b[c]) * gain, -clamp, clamp)      (clamp < 0 means no clamp)
// x viewed as (outer, C, inner), C the bias dimension. The scalar math below is shared by
// the CPU (bias_act_cpu.cpp, generic/AVX2/AVX-512 builds) and CUDA (bias_act_cuda.cu) kernels.
#pragma once
#include <math.h>

#include "common/common.h"

namespace pf {
// float and double overloads that resolve the same under nvcc and g++.
PF_HD float pf_exp(float v) { return expf(v); }
PF_HD double pf_exp(double v) { return exp(v); }
PF_HD float pf_tanh(float v) { return tanhf(v); }
PF_HD double pf_tanh(double v) { return tanh(v); }
PF_HD float pf_erf(float v) { return erff(v); }
PF_HD double pf_erf(double v) { return erf(v); }

enum BiasAct : int { kLinear = 0, kRelu = 1, kLrelu = 2, kTanh = 3, kSigmoid = 4, kSilu = 5, kGelu = 6 };

template <class T>
PF_HD T act_forward(int act, T v, T alpha) {
  switch (act) {
    case kRelu: return v < T(0) ? T(0) : v;  // NaN passes through, as torch.relu
    case kLrelu: return v > T(0) ? v : v * alpha;
    case kTanh: return pf_tanh(v);
    case kSigmoid: return T(1) / (T(1) + pf_exp(-v));
    case kSilu: return v / (T(1) + pf_exp(-v));
    case kGelu: return T(0.5) * v * (T(1) + pf_erf(v * T(0.70710678118654752440)));
    default: return v;
  }
}

// d act / d v at v.
template <class T>
PF_HD T act_grad(int act, T v, T alpha) {
  switch (act) {
    case kRelu: return v > T(0) ? T(1) : T(0);
    case kLrelu: return v > T(0) ? T(1) : alpha;
    case kTanh: { T t = pf_tanh(v); return T(1) - t * t; }
    case kSigmoid: { T s = T(1) / (T(1) + pf_exp(-v)); return s * (T(1) - s); }
    case kSilu: { T s = T(1) / (T(1) + pf_exp(-v)); return s * (T(1) + v * (T(1) - s)); }
    case kGelu: {
      T cdf = T(0.5) * (T(1) + pf_erf(v * T(0.70710678118654752440)));
      T pdf = pf_exp(T(-0.5) * v * v) * T(0.39894228040143267794);
      return cdf + v * pdf;
    }
    default: return T(1);
  }
}

struct BiasActParams {
  i64 outer, channels, inner;  // x: (outer, channels, inner)
  int act;
  double alpha, gain, clamp;   // clamp < 0: none
};
}  // namespace pf

// CPU entry points (one per ISA namespace, chosen at run time).
PF_DECLARE_ISA(void, bias_act_forward_f32, (const float* x, const float* b, float* y, const pf::BiasActParams& p))
PF_DECLARE_ISA(void, bias_act_forward_f64, (const double* x, const double* b, double* y, const pf::BiasActParams& p))
// gx = gy * gain * act'(x + b), zero where the clamp was active; gb[c] = sum of gx over
// outer and inner (fixed order: deterministic for any thread count). gb may be null.
PF_DECLARE_ISA(void, bias_act_backward_f32, (const float* gy, const float* x, const float* b, float* gx, float* gb, const pf::BiasActParams& p))
PF_DECLARE_ISA(void, bias_act_backward_f64, (const double* gy, const double* x, const double* b, double* gx, double* gb, const pf::BiasActParams& p))

// CUDA launchers (bias_act_cuda.cu). dtype: 0 float32, 1 float16, 2 bfloat16. Return a
// cudaError_t as int. gb is accumulated in float32 (atomics: not bitwise deterministic).
namespace pf {
namespace cuda {
int bias_act_forward(const void* x, const void* b, void* y, const BiasActParams& p, int dtype, void* stream);
int bias_act_backward(const void* gy, const void* x, const void* b, void* gx, float* gb, const BiasActParams& p, int dtype, void* stream);
}  // namespace cuda
}  // namespace pf
