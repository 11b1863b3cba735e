// pixelforge._cpu: the C++ CPU kernels. Op glue lives in csrc/<op>_bind.cpp.
#include "pf_bind.h"

#ifndef PF_BUILT_ISAS
#define PF_BUILT_ISAS "generic"
#endif

PYBIND11_MODULE(_cpu, m) {
  m.doc() = "pixelforge C++ CPU kernels (SIMD paths chosen at run time)";
  m.def("isa", [] { return std::string(pf::cpu::isa_name(pf::cpu::isa())); },
        "SIMD path the kernels use (after PIXELFORGE_CPU_ISA)");
  m.def("native_isa", [] { return std::string(pf::cpu::isa_name(pf::cpu::native_isa())); });
  m.def("built_isas", [] { return std::string(PF_BUILT_ISAS); });
  m.def("max_threads", &pf::cpu::max_threads);
  m.def("has_bf16", &pf::cpu::has_avx512_bf16,
        "True where the bfloat16 kernels run (AVX-512 path with avx512_bf16; PIXELFORGE_CPU_BF16=0 turns them off).");
#if defined(PF_OPENMP)
  m.attr("openmp") = true;
#else
  m.attr("openmp") = false;
#endif
  for (auto b : pfb::binders()) b(m);
}
