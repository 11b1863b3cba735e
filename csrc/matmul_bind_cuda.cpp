// Glue for matmul on the GPU: device pointers, the GEMM geometry (element strides computed
// by python/pixelforge/ops/matmul.py from the CuPy arrays) and CuPy's current stream; the
// launch itself is in kernels/matmul/matmul_cuda.cu.
#include <vector>

#include "common/cuda_info.h"
#include "matmul/matmul.h"
#include "pf_bind.h"

namespace {
void bind(py::module_& m) {
  m.def("matmul", [](std::uintptr_t a, std::uintptr_t b, std::uintptr_t bias, std::uintptr_t c,
                     std::vector<std::int64_t> g, int dtype, std::uintptr_t stream) {
    PF_CHECK(g.size() == 12, "geometry: expected 12 integers (batch, M, N, K, a strides, b strides, c strides)");
    const pf::GemmParams p{g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11]};
    PF_CHECK(p.batch >= 0 && p.M >= 0 && p.N >= 0 && p.K >= 0, "geometry: negative size");
    PF_CHECK(p.c_rs >= p.N && p.c_bs >= p.M * p.c_rs, "out: strides too small for (batch, M, N)");
    pfb::check_dtype(dtype);
    const bool any_out = p.batch * p.M * p.N > 0;
    const bool any_in = any_out && p.K > 0;
    const void* ap = any_in ? pfb::dev_ptr(a, "a") : nullptr;
    const void* bp = any_in ? pfb::dev_ptr(b, "b") : nullptr;
    void* cp = any_out ? pfb::dev_ptr(c, "out") : nullptr;
    int err;
    {
      py::gil_scoped_release nogil;
      err = pf::cuda::gemm(ap, bp, reinterpret_cast<const void*>(bias), cp, p, dtype, reinterpret_cast<void*>(stream));
    }
    pf::cuda::check(err, "matmul", reinterpret_cast<void*>(stream));
  });
}
pfb::Register reg(bind);
}  // namespace
