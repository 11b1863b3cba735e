// kernels/common/common.h: what every kernel shares.
//   PF_HD            __host__ __device__ under nvcc, plain inline elsewhere
//   PF_CHECK(c, msg) throws std::invalid_argument (a Python ValueError through pybind11)
//   PF_ISA_NS        the namespace a CPU kernel file compiles into (pf::generic/avx2/avx512)
//   PF_DECLARE_ISA   declares one function in every ISA namespace, for the dispatcher
//   pf_isa_call      picks the namespace at run time (kernels/common/cpu_features.cpp)
#pragma once
#include <cstdint>
#include <cstddef>
#include <stdexcept>
#include <string>

#if defined(__CUDACC__)
#define PF_HD __host__ __device__ __forceinline__
#else
#define PF_HD inline
#endif

#define PF_CHECK(cond, msg)                                                  \
  do {                                                                       \
    if (!(cond)) throw std::invalid_argument(std::string(msg));              \
  } while (0)

namespace pf {
using i64 = std::int64_t;

namespace cpu {
enum class Isa : int { generic = 0, avx2 = 1, avx512 = 2 };
// The instruction set the dispatcher uses: the best the CPU supports, lowered by the
// environment variable PIXELFORGE_CPU_ISA=generic|avx2|avx512 (read once).
Isa isa();
const char* isa_name(Isa isa);
// Highest ISA the processor and OS support (CPUID + XGETBV), ignoring the override.
Isa native_isa();
int max_threads();
// The AVX-512 path is chosen and the CPU has avx512_bf16 (VDPBF16PS, VCVTNE2PS2BF16): the
// bfloat16 kernels (*_bf16_cpu.cpp) may run. PIXELFORGE_CPU_BF16=0 turns them off.
bool has_avx512_bf16();
}  // namespace cpu
}  // namespace pf

#ifndef PF_ISA
#define PF_ISA generic
#endif
#define PF_ISA_NS pf::PF_ISA

#if defined(PF_X86)
#define PF_DECLARE_ISA(ret, name, args)  \
  namespace pf {                         \
  namespace generic { ret name args; }   \
  namespace avx2 { ret name args; }      \
  namespace avx512 { ret name args; }    \
  }
// Call pf::<isa>::fn(args...) for the ISA chosen at run time.
#define PF_ISA_CALL(fn, ...)                                              \
  ([&]() {                                                                \
    switch (pf::cpu::isa()) {                                             \
      case pf::cpu::Isa::avx512: return pf::avx512::fn(__VA_ARGS__);      \
      case pf::cpu::Isa::avx2: return pf::avx2::fn(__VA_ARGS__);          \
      default: return pf::generic::fn(__VA_ARGS__);                       \
    }                                                                     \
  }())
#else
#define PF_DECLARE_ISA(ret, name, args) \
  namespace pf {                        \
  namespace generic { ret name args; }  \
  }
#define PF_ISA_CALL(fn, ...) (pf::generic::fn(__VA_ARGS__))
#endif
