// kernels/common/simd.h: the CPU kernels' small vector layer, one copy per ISA build.
//
// Included only from *_cpu.cpp files (compiled three times: generic, AVX2+FMA, AVX-512 flags).
// Everything lives in PF_ISA_NS::simd inside an anonymous namespace: internal linkage, so no
// AVX-512 copy of an inline function can be picked by the linker for the generic build, and no
// std:: template is instantiated here.
//
// Vector types (W lanes; R the register, M a lane mask where the float math needs one):
//   F16  16 x float  AVX-512        D8  8 x double  AVX-512
//   F8    8 x float  AVX2 (also in AVX-512 builds: attention's 8-wide variant)   D4  4 x double  AVX2
//   G4<T> 4 x T      portable structs of plain loops (the generic build; SSE2 may vectorize them)
//   VF   the widest float type of this build (F16 / F8 / G4<float>)
// Every type has load/store/set1/zero/add/sub/mul/fma/max, a fixed-order horizontal sum and
// exp2 (the attention kernel's fast base-2 exponent; libm for double). The GEMM micro-kernels
// of conv2d and matmul use these same types (their tile sizes are their own). The float types add what the transcendental math
// below needs: div, rcp (estimate + one Newton step), min, abs, round, scale2 (p * 2^n),
// compare-to-mask, select, copysign, partial loads/stores for row tails and a fixed-order
// horizontal sum.
//
// float32 math, each a template over a float vector type V (all lanes independent):
//   vexp(x)      e^x: Cephes' reduction x = n ln2 + r (two-constant ln2) and its degree-6
//                polynomial for e^r; <= 2 ulp measured; overflow to +inf above ~88.72, 0 below ~-103.9
//                (denormals in between, as libm), NaN in -> NaN out
//   vtanh(x)     |x| < 0.625: x + x^3 P(x^2) (degree 4 in x^2, fitted here, rel. err 2e-8);
//                else sign(x) (1 - 2 / (e^{2|x|} + 1)); tanh(+-inf) = +-1
//   vsigmoid(x)  1 / (1 + e^{-x}): exactly 0 for x < -88.8 and 1 for x > 17
//   verf(x)      |x| < 0.875: x P(x^2) (degree 5 in x^2, rel. err 9e-9 fitted);
//                else 1 - e^{-x^2} Q(t), t = 1 / (1 + x/2), Q degree 6 (fit abs. err 6e-11);
//                |x| >= 4: +-1 (erf(4) rounds to 1 in float32). Max abs error ~1.5e-7 in float32.
// The fitted coefficients are weighted least-squares (Lawson iterations toward minimax) fits to
// SciPy's float64 tanh/erfc on Chebyshev nodes, rounded to float32.
#pragma once
#include <math.h>
#include <string.h>

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "common/common.h"

// The math below is small enough to inline in every loop; GCC otherwise outlines verf / vtanh and
// pays a call plus reloaded constants per vector (measured 4x slower gelu).
// Sanitizer builds (PF_SANITIZE) let the compiler decide: forced inlining of every variant at -O1
// with ASan instrumentation took over 13 minutes for bias_act_cpu.cpp.
#if defined(__GNUC__) && !defined(PF_SANITIZE)
#define PF_SIMD_INLINE inline __attribute__((always_inline))
#else
#define PF_SIMD_INLINE inline
#endif

namespace PF_ISA_NS {
namespace simd {
namespace {

// 2^f on |f| <= 0.5: a degree-5 minimax polynomial (fitted for relative error, 7.5e-8 in exact
// arithmetic, 2.3e-7 evaluated in float32), so exp2 costs 5 FMAs and an exponent scaling.
#define PF_EXP2_POLY(FMA, SET1, f)                                                                    \
  FMA(FMA(FMA(FMA(FMA(SET1(1.327647129e-03f), f, SET1(9.675540961e-03f)), f, SET1(5.550713092e-02f)), f, \
              SET1(2.402212024e-01f)), f, SET1(6.931469440e-01f)), f, SET1(1.000000119e+00f))

#if defined(__AVX512F__)
struct F16 {
  using T = float;
  using R = __m512;
  using M = __mmask16;
  static constexpr int W = 16;
  static R load(const T* p) { return _mm512_loadu_ps(p); }
  static void store(T* p, R v) { _mm512_storeu_ps(p, v); }
  static R set1(T x) { return _mm512_set1_ps(x); }
  static R zero() { return _mm512_setzero_ps(); }
  static R fma(R a, R b, R c) { return _mm512_fmadd_ps(a, b, c); }
  static R fnma(R a, R b, R c) { return _mm512_fnmadd_ps(a, b, c); }  // c - a*b
  static R add(R a, R b) { return _mm512_add_ps(a, b); }
  static R sub(R a, R b) { return _mm512_sub_ps(a, b); }
  static R mul(R a, R b) { return _mm512_mul_ps(a, b); }
  static R div(R a, R b) { return _mm512_div_ps(a, b); }
  // 1/a to ~1 ulp for normal a: rcp14 + one Newton step (a division costs ~3x as much)
  static R rcp(R a) {
    const R r = _mm512_rcp14_ps(a);
    return _mm512_fmadd_ps(r, _mm512_fnmadd_ps(a, r, _mm512_set1_ps(1.f)), r);
  }
  // max/min: the x86 rule, b is returned when either is NaN (so max(set1(c), x) keeps a NaN x).
  static R max(R a, R b) { return _mm512_max_ps(a, b); }
  static R min(R a, R b) { return _mm512_min_ps(a, b); }
  static R abs(R a) { return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a), _mm512_set1_epi32(0x7fffffff))); }
  // magnitude of a with the sign of s
  static R copysign(R a, R s) {
    const __m512i m = _mm512_set1_epi32(0x7fffffff);
    return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(m, _mm512_castps_si512(a), _mm512_castps_si512(s), 0xca));  // m ? a : s
  }
  static R round(R a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // p * 2^n for integral n; scalef rounds like a multiply, overflowing to inf / flushing to 0.
  static R scale2(R p, R n) { return _mm512_scalef_ps(p, n); }
  static M lt(R a, R b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static M gt(R a, R b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static M mask_or(M a, M b) { return M(a | b); }
  static R select(M m, R a, R b) { return _mm512_mask_blend_ps(m, b, a); }  // m ? a : b
  static M first(int n) { return M((1u << n) - 1u); }                       // lanes [0, n), n < W
  static R load_n(const T* p, int n) { return _mm512_maskz_loadu_ps(first(n), p); }
  static void store_n(T* p, R v, int n) { _mm512_mask_storeu_ps(p, first(n), v); }
  // fixed pairwise order: lanes i + 8, then i + 4, i + 2, i + 1 (register shuffles; the maskz
  // extracts because the plain ones trip a GCC 12 -Wmaybe-uninitialized)
  static T hsum(R a) {
    const __m256 h = _mm256_add_ps(_mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xFF, _mm512_castps_pd(a), 0)),
                                   _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xFF, _mm512_castps_pd(a), 1)));
    __m128 v = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    v = _mm_add_ps(v, _mm_movehl_ps(v, v));
    v = _mm_add_ss(v, _mm_movehdup_ps(v));
    return _mm_cvtss_f32(v);
  }
  // 2^x for x <= 127. x < -126 gives exactly 0 (NaN stays NaN), so no denormal (slow) values reach the
  // attention kernel's P.V products; scalef applies 2^n in one instruction.
  static R exp2(R x) {
    const __mmask16 keep = _mm512_cmp_ps_mask(x, set1(-126.f), _CMP_GE_OQ);
    const R n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const R f = _mm512_sub_ps(x, n);
    const R r = _mm512_maskz_scalef_ps(keep, PF_EXP2_POLY(_mm512_fmadd_ps, _mm512_set1_ps, f), n);
    return _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);  // NaN stays NaN
  }
};
struct D8 {
  using T = double;
  using R = __m512d;
  static constexpr int W = 8;
  static R load(const T* p) { return _mm512_loadu_pd(p); }
  static void store(T* p, R v) { _mm512_storeu_pd(p, v); }
  static R set1(T x) { return _mm512_set1_pd(x); }
  static R zero() { return _mm512_setzero_pd(); }
  static R fma(R a, R b, R c) { return _mm512_fmadd_pd(a, b, c); }
  static R add(R a, R b) { return _mm512_add_pd(a, b); }
  static R sub(R a, R b) { return _mm512_sub_pd(a, b); }
  static R mul(R a, R b) { return _mm512_mul_pd(a, b); }
  static R max(R a, R b) { return _mm512_max_pd(a, b); }
  static T hsum(R a) {  // pairwise: lanes i + 4, then i + 2, i + 1
    const __m256d h = _mm256_add_pd(_mm512_maskz_extractf64x4_pd(0xFF, a, 0), _mm512_maskz_extractf64x4_pd(0xFF, a, 1));
    const __m128d v = _mm_add_pd(_mm256_castpd256_pd128(h), _mm256_extractf128_pd(h, 1));
    return _mm_cvtsd_f64(_mm_add_sd(v, _mm_unpackhi_pd(v, v)));
  }
  static R exp2(R x) {  // float64 is the checking path: libm accuracy over speed
    alignas(64) T t[W];
    store(t, x);
    for (int i = 0; i < W; ++i) t[i] = ::exp2(t[i]);  // NaN stays NaN, -inf gives 0
    return load(t);
  }
};
#endif

#if defined(__AVX2__)
struct F8 {
  using T = float;
  using R = __m256;
  using M = __m256;  // all-ones / all-zeros lanes
  static constexpr int W = 8;
  static R load(const T* p) { return _mm256_loadu_ps(p); }
  static void store(T* p, R v) { _mm256_storeu_ps(p, v); }
  static R set1(T x) { return _mm256_set1_ps(x); }
  static R zero() { return _mm256_setzero_ps(); }
  static R fma(R a, R b, R c) { return _mm256_fmadd_ps(a, b, c); }
  static R fnma(R a, R b, R c) { return _mm256_fnmadd_ps(a, b, c); }
  static R add(R a, R b) { return _mm256_add_ps(a, b); }
  static R sub(R a, R b) { return _mm256_sub_ps(a, b); }
  static R mul(R a, R b) { return _mm256_mul_ps(a, b); }
  static R div(R a, R b) { return _mm256_div_ps(a, b); }
  static R rcp(R a) {  // 12-bit estimate + one Newton step: ~2^-22 relative
    const R r = _mm256_rcp_ps(a);
    return _mm256_fmadd_ps(r, _mm256_fnmadd_ps(a, r, _mm256_set1_ps(1.f)), r);
  }
  static R max(R a, R b) { return _mm256_max_ps(a, b); }
  static R min(R a, R b) { return _mm256_min_ps(a, b); }
  static R abs(R a) { return _mm256_and_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff))); }
  static R copysign(R a, R s) {
    const R sign = _mm256_castsi256_ps(_mm256_set1_epi32(int(0x80000000u)));
    return _mm256_or_ps(_mm256_andnot_ps(sign, a), _mm256_and_ps(sign, s));
  }
  static R round(R a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // p * 2^n for integral n in [-150, 129]: two exponent-field multiplies (each factor stays a
  // normal float), so overflow gives inf and underflow rounds through the denormals like libm.
  static R scale2(R p, R n) {
    const __m256i ni = _mm256_cvtps_epi32(n);
    const __m256i n1 = _mm256_srai_epi32(ni, 1);
    const __m256i n2 = _mm256_sub_epi32(ni, n1);
    const __m256i bias = _mm256_set1_epi32(127);
    const R f1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    const R f2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, f1), f2);
  }
  static M lt(R a, R b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static M gt(R a, R b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  static M mask_or(M a, M b) { return _mm256_or_ps(a, b); }
  static R select(M m, R a, R b) { return _mm256_blendv_ps(b, a, m); }
  static M first(int n) {
    return _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
  }
  static R load_n(const T* p, int n) { return _mm256_maskload_ps(p, _mm256_castps_si256(first(n))); }
  static void store_n(T* p, R v, int n) { _mm256_maskstore_ps(p, _mm256_castps_si256(first(n)), v); }
  static T hsum(R a) {  // pairwise: lanes i + 4, then i + 2, i + 1
    __m128 v = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    v = _mm_add_ps(v, _mm_movehl_ps(v, v));
    v = _mm_add_ss(v, _mm_movehdup_ps(v));
    return _mm_cvtss_f32(v);
  }
  static R exp2(R x) {
    const R in = x;
    x = _mm256_min_ps(_mm256_max_ps(x, set1(-127.f)), set1(127.f));
    const R n = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const R f = _mm256_sub_ps(x, n);
    const R p = PF_EXP2_POLY(_mm256_fmadd_ps, _mm256_set1_ps, f);
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    const R r = _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(e)),
                              _mm256_cmp_ps(in, set1(-126.f), _CMP_GE_OQ));  // below -126 (and NaN): 0
    return _mm256_blendv_ps(r, in, _mm256_cmp_ps(in, in, _CMP_UNORD_Q));  // NaN stays NaN
  }
};
struct D4 {
  using T = double;
  using R = __m256d;
  static constexpr int W = 4;
  static R load(const T* p) { return _mm256_loadu_pd(p); }
  static void store(T* p, R v) { _mm256_storeu_pd(p, v); }
  static R set1(T x) { return _mm256_set1_pd(x); }
  static R zero() { return _mm256_setzero_pd(); }
  static R fma(R a, R b, R c) { return _mm256_fmadd_pd(a, b, c); }
  static R add(R a, R b) { return _mm256_add_pd(a, b); }
  static R sub(R a, R b) { return _mm256_sub_pd(a, b); }
  static R mul(R a, R b) { return _mm256_mul_pd(a, b); }
  static R max(R a, R b) { return _mm256_max_pd(a, b); }
  static T hsum(R a) {  // pairwise: lanes i + 2, then i + 1
    __m128d v = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    return _mm_cvtsd_f64(_mm_add_sd(v, _mm_unpackhi_pd(v, v)));
  }
  static R exp2(R x) {
    alignas(32) T t[W];
    store(t, x);
    for (int i = 0; i < W; ++i) t[i] = ::exp2(t[i]);  // NaN stays NaN, -inf gives 0
    return load(t);
  }
};
#endif

// Portable 4-wide fallback: plain loops the compiler may vectorize with SSE2. Lane semantics
// match the intrinsics above (max/min return b on NaN; masks are per-lane booleans).
template <class TT>
struct G4 {
  using T = TT;
  struct R {
    T x[4];
  };
  struct M {
    bool x[4];
  };
  static constexpr int W = 4;
  static R load(const T* p) { R r; for (int i = 0; i < 4; ++i) r.x[i] = p[i]; return r; }
  static void store(T* p, R v) { for (int i = 0; i < 4; ++i) p[i] = v.x[i]; }
  static R set1(T a) { R r; for (int i = 0; i < 4; ++i) r.x[i] = a; return r; }
  static R zero() { return set1(T(0)); }
  static R fma(R a, R b, R c) { R r; for (int i = 0; i < 4; ++i) r.x[i] = a.x[i] * b.x[i] + c.x[i]; return r; }
  static R fnma(R a, R b, R c) { R r; for (int i = 0; i < 4; ++i) r.x[i] = c.x[i] - a.x[i] * b.x[i]; return r; }
  static R add(R a, R b) { R r; for (int i = 0; i < 4; ++i) r.x[i] = a.x[i] + b.x[i]; return r; }
  static R sub(R a, R b) { R r; for (int i = 0; i < 4; ++i) r.x[i] = a.x[i] - b.x[i]; return r; }
  static R mul(R a, R b) { R r; for (int i = 0; i < 4; ++i) r.x[i] = a.x[i] * b.x[i]; return r; }
  static R div(R a, R b) { R r; for (int i = 0; i < 4; ++i) r.x[i] = a.x[i] / b.x[i]; return r; }
  static R rcp(R a) { R r; for (int i = 0; i < 4; ++i) r.x[i] = T(1) / a.x[i]; return r; }
  static R max(R a, R b) { R r; for (int i = 0; i < 4; ++i) r.x[i] = a.x[i] > b.x[i] ? a.x[i] : b.x[i]; return r; }
  static R min(R a, R b) { R r; for (int i = 0; i < 4; ++i) r.x[i] = a.x[i] < b.x[i] ? a.x[i] : b.x[i]; return r; }
  static R abs(R a) { R r; for (int i = 0; i < 4; ++i) r.x[i] = fabs(a.x[i]); return r; }
  static R copysign(R a, R s) { R r; for (int i = 0; i < 4; ++i) r.x[i] = ::copysign(a.x[i], s.x[i]); return r; }
  // Round to nearest even by the 1.5 * 2^23 trick (exact for |a| < 2^22; SSE2 has no roundps):
  // the project builds without -ffast-math, so the add/sub pair is not folded away.
  static R round(R a) {
    R r;
    for (int i = 0; i < 4; ++i) r.x[i] = T((float(a.x[i]) + 12582912.f) - 12582912.f);
    return r;
  }
  static R scale2(R p, R n) {  // as F8::scale2, on the bits
    R r;
    for (int i = 0; i < 4; ++i) {
      const int ni = int(n.x[i]);
      const int n1 = ni >> 1, n2 = ni - n1;
      const unsigned u1 = unsigned(n1 + 127) << 23, u2 = unsigned(n2 + 127) << 23;
      float f1, f2;
      memcpy(&f1, &u1, 4);
      memcpy(&f2, &u2, 4);
      r.x[i] = T(float(p.x[i]) * f1 * f2);
    }
    return r;
  }
  static M lt(R a, R b) { M m; for (int i = 0; i < 4; ++i) m.x[i] = a.x[i] < b.x[i]; return m; }
  static M gt(R a, R b) { M m; for (int i = 0; i < 4; ++i) m.x[i] = a.x[i] > b.x[i]; return m; }
  static M mask_or(M a, M b) { M m; for (int i = 0; i < 4; ++i) m.x[i] = a.x[i] || b.x[i]; return m; }
  static R select(M m, R a, R b) { R r; for (int i = 0; i < 4; ++i) r.x[i] = m.x[i] ? a.x[i] : b.x[i]; return r; }
  static M first(int n) { M m; for (int i = 0; i < 4; ++i) m.x[i] = i < n; return m; }
  static R load_n(const T* p, int n) { R r; for (int i = 0; i < 4; ++i) r.x[i] = i < n ? p[i] : T(0); return r; }
  static void store_n(T* p, R v, int n) { for (int i = 0; i < n; ++i) p[i] = v.x[i]; }
  static T hsum(R v) { return (v.x[0] + v.x[2]) + (v.x[1] + v.x[3]); }  // the pairwise order of F8/F16
  static R exp2(R a) {
    R r;
    for (int i = 0; i < 4; ++i) r.x[i] = T(::exp2(double(a.x[i])));  // NaN stays NaN
    return r;
  }
};

#if defined(__AVX512F__)
using VF = F16;
#elif defined(__AVX2__)
using VF = F8;
#else
using VF = G4<float>;
#endif

// ------------------------------------------------------------------ float32 math
template <class V>
PF_SIMD_INLINE typename V::R poly(typename V::R x, const float* c, int n) {  // c[0] + c[1] x + ... (Horner)
  typename V::R p = V::set1(c[n - 1]);
  for (int i = n - 2; i >= 0; --i) p = V::fma(p, x, V::set1(c[i]));
  return p;
}

template <class V>
PF_SIMD_INLINE typename V::R vexp(typename V::R x) {
  using R = typename V::R;
  // Clamp first so n stays in scale2's range; max/min keep NaN (x is the second operand).
  x = V::min(V::set1(88.8f), V::max(V::set1(-104.f), x));
  const R n = V::round(V::mul(x, V::set1(1.44269504088896341f)));
  R r = V::fnma(n, V::set1(0.693359375f), x);  // ln2 = 0.693359375 - 2.12194440e-4 (Cephes)
  r = V::fnma(n, V::set1(-2.12194440e-4f), r);
  static const float c[] = {5.0000001201e-1f, 1.6666665459e-1f, 4.1665795894e-2f,
                            8.3334519073e-3f, 1.3981999507e-3f, 1.9875691500e-4f};
  const R p = V::fma(V::mul(poly<V>(r, c, 6), r), r, V::add(r, V::set1(1.f)));  // 1 + r + r^2 P(r)
  return V::scale2(p, n);
}

template <class V>
PF_SIMD_INLINE typename V::R vsigmoid(typename V::R x) {
  const typename V::R one = V::set1(1.f);
  return V::div(one, V::add(one, vexp<V>(V::sub(V::zero(), x))));
}

template <class V>
PF_SIMD_INLINE typename V::R vtanh(typename V::R x) {
  using R = typename V::R;
  const R a = V::abs(x);
  const R x2 = V::mul(x, x);
  static const float c[] = {-3.33333284e-1f, 1.33327633e-1f, -5.38503751e-2f, 2.09953897e-2f, -6.09471183e-3f};
  const R small = V::fma(V::mul(poly<V>(x2, c, 5), x2), x, x);
  // 1 - 2 / (e^{2a} + 1): e^{2a} = inf gives exactly 1; NaN stays NaN.
  const R e = vexp<V>(V::add(a, a));
  const R large = V::copysign(V::sub(V::set1(1.f), V::div(V::set1(2.f), V::add(e, V::set1(1.f)))), x);
  return V::select(V::lt(a, V::set1(0.625f)), small, large);
}

template <class V>
PF_SIMD_INLINE typename V::R verf(typename V::R x) {
  using R = typename V::R;
  const R one = V::set1(1.f);
  const R a = V::min(V::set1(4.f), V::abs(x));  // NaN passes
  const R a2 = V::mul(a, a);
  static const float cs[] = {1.12837911e+0f, -3.76125515e-1f, 1.12824567e-1f,
                             -2.67915092e-2f, 5.03223995e-3f, -6.20353094e-4f};
  const R small = V::mul(poly<V>(V::mul(x, x), cs, 6), x);
  static const float cl[] = {2.59504258e-3f, 2.51547366e-1f, 4.32525963e-1f, -1.47650927e-1f,
                             7.45282948e-1f, -3.06169450e-1f, 2.17239615e-2f};
  // t in [1/3, 1] only feeds the polynomial: an approximate reciprocal's last-bit error moves Q
  // by < 1e-7 relative, so rcp replaces the division here (a division costs
  // several times an FMA on AVX-512)
  const R t = V::rcp(V::fma(a, V::set1(0.5f), one));
  const R q = poly<V>(t, cl, 7);
  const R large = V::copysign(V::fnma(vexp<V>(V::sub(V::zero(), a2)), q, one), x);
  return V::select(V::lt(V::abs(x), V::set1(0.875f)), small, large);
}

}  // namespace
}  // namespace simd
}  // namespace PF_ISA_NS
