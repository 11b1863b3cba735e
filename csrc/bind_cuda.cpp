// pixelforge._cuda: CUDA C++ kernels. Arrays arrive as device pointers (ints) plus shapes and
// CuPy's current stream; op glue lives in csrc/<op>_bind_cuda.cpp. The CUDA runtime is
// linked statically, so importing works without a GPU; calls report the CUDA error.
#include "common/cuda_info.h"
#include "pf_bind.h"

#ifndef PF_CUDA_ARCHS
#define PF_CUDA_ARCHS ""
#endif

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "pixelforge CUDA kernels";
  m.attr("archs") = std::string(PF_CUDA_ARCHS);
  m.def("device_count", [] { return pf::cuda::device_count(); },
        "number of usable CUDA devices (0 when there is no GPU or driver)");
  m.def("runtime_version", [] { return pf::cuda::runtime_version(); });
  py::dict dtypes;  // the codes of common/dtype.h, for the Python glue
  dtypes["float32"] = int(pf::kFloat32);
  dtypes["float16"] = int(pf::kFloat16);
  dtypes["bfloat16"] = int(pf::kBFloat16);
  m.attr("dtypes") = dtypes;
  for (auto b : pfb::binders()) b(m);
}
