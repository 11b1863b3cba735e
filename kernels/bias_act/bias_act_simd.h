// kernels/bias_act/bias_act_simd.h: the float32 activations on kernels/common/simd.h vectors,
// f(v) and f'(v) per activation code, shared by the CPU kernels that apply an activation in
// their own pass (bias_act_cpu.cpp, group_norm_cpu.cpp). Include inside PF_ISA_NS after
// simd.h; the scalar forms (float64, CUDA) are act_forward / act_grad in bias_act.h.
#pragma once
#include "bias_act/bias_act.h"
#include "common/simd.h"

namespace PF_ISA_NS {
namespace {  // per translation unit, as the simd.h types it uses
namespace act_simd {
using V = simd::VF;
using R = V::R;

struct Consts {
  R alpha, gain, lo, hi;
};

template <int ACT>
PF_SIMD_INLINE R act_v(R v, const Consts& k) {
  const R one = V::set1(1.f);
  if constexpr (ACT == pf::kRelu) return V::max(V::zero(), v);  // max keeps a NaN v
  else if constexpr (ACT == pf::kLrelu) return V::select(V::gt(v, V::zero()), v, V::mul(v, k.alpha));
  else if constexpr (ACT == pf::kTanh) return simd::vtanh<V>(v);
  else if constexpr (ACT == pf::kSigmoid) return simd::vsigmoid<V>(v);
  else if constexpr (ACT == pf::kSilu) return V::div(v, V::add(one, simd::vexp<V>(V::sub(V::zero(), v))));
  else if constexpr (ACT == pf::kGelu)
    return V::mul(V::mul(V::set1(0.5f), v), V::add(one, simd::verf<V>(V::mul(v, V::set1(0.70710678118654752f)))));
  else return v;
}

// d act / d v, as act_grad in bias_act.h
template <int ACT>
PF_SIMD_INLINE R grad_v(R v, const Consts& k) {
  const R one = V::set1(1.f);
  if constexpr (ACT == pf::kRelu) return V::select(V::gt(v, V::zero()), one, V::zero());
  else if constexpr (ACT == pf::kLrelu) return V::select(V::gt(v, V::zero()), one, k.alpha);
  else if constexpr (ACT == pf::kTanh) {
    const R t = simd::vtanh<V>(v);
    return V::fnma(t, t, one);
  } else if constexpr (ACT == pf::kSigmoid) {
    const R s = simd::vsigmoid<V>(v);
    return V::mul(s, V::sub(one, s));
  } else if constexpr (ACT == pf::kSilu) {
    const R s = simd::vsigmoid<V>(v);
    return V::mul(s, V::fma(v, V::sub(one, s), one));
  } else if constexpr (ACT == pf::kGelu) {
    const R cdf = V::mul(V::set1(0.5f), V::add(one, simd::verf<V>(V::mul(v, V::set1(0.70710678118654752f)))));
    const R pdf = V::mul(simd::vexp<V>(V::mul(V::set1(-0.5f), V::mul(v, v))), V::set1(0.39894228040143267794f));
    return V::fma(v, pdf, cdf);
  } else return one;
}

}  // namespace act_simd
}  // namespace
}  // namespace PF_ISA_NS
