// Run-time CPU feature detection: which SIMD path (generic, AVX2+FMA, AVX-512) every CPU
// kernel dispatches to. Compiled for the baseline ISA only.
#include "common/common.h"

#include <cstdlib>
#include <cstring>
#if defined(PF_X86)
#include <cpuid.h>
#endif
#if defined(PF_OPENMP)
#include <omp.h>
#endif

namespace pf {
namespace cpu {

#if defined(PF_X86)
static unsigned long long xgetbv0() {
  unsigned eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return ((unsigned long long)edx << 32) | eax;
}
#endif

Isa native_isa() {
#if defined(PF_X86)
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return Isa::generic;
  const bool osxsave = c & (1u << 27), avx = c & (1u << 28), fma = c & (1u << 12),
             f16c = c & (1u << 29);
  if (!(osxsave && avx)) return Isa::generic;
  const unsigned long long xcr0 = xgetbv0();
  const bool ymm_os = (xcr0 & 0x6) == 0x6, zmm_os = (xcr0 & 0xe6) == 0xe6;
  if (__get_cpuid_max(0, nullptr) < 7) return Isa::generic;
  __cpuid_count(7, 0, a, b, c, d);
  const bool avx2 = b & (1u << 5);
  const bool avx512f = b & (1u << 16), avx512dq = b & (1u << 17), avx512bw = b & (1u << 30),
             avx512vl = b & (1u << 31);
  if (zmm_os && avx512f && avx512dq && avx512bw && avx512vl && fma && avx2 && f16c) return Isa::avx512;
  if (ymm_os && avx2 && fma && f16c) return Isa::avx2;
#endif
  return Isa::generic;
}

static Isa choose() {
  Isa best = native_isa();
  const char* env = std::getenv("PIXELFORGE_CPU_ISA");
  if (env && *env) {
    Isa want = best;
    if (!std::strcmp(env, "generic")) want = Isa::generic;
    else if (!std::strcmp(env, "avx2")) want = Isa::avx2;
    else if (!std::strcmp(env, "avx512")) want = Isa::avx512;
    if ((int)want < (int)best) best = want;  // the override can only lower the ISA
  }
#if !defined(PF_X86)
  best = Isa::generic;
#endif
  return best;
}

Isa isa() {
  static const Isa chosen = choose();
  return chosen;
}

const char* isa_name(Isa i) {
  switch (i) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "generic";
  }
}

static bool detect_bf16() {
#if defined(PF_X86)
  if (isa() != Isa::avx512) return false;
  const char* env = std::getenv("PIXELFORGE_CPU_BF16");
  if (env && !std::strcmp(env, "0")) return false;
  unsigned a, b, c, d;
  if (__get_cpuid_max(0, nullptr) < 7) return false;
  __cpuid_count(7, 1, a, b, c, d);
  return a & (1u << 5);  // CPUID.(EAX=7, ECX=1):EAX[5] AVX512_BF16
#else
  return false;
#endif
}

bool has_avx512_bf16() {
  static const bool yes = detect_bf16();
  return yes;
}

int max_threads() {
#if defined(PF_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace cpu
}  // namespace pf
