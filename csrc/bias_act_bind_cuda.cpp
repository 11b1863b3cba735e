// Glue for bias_act on the GPU: device pointers and shapes from Python (CuPy arrays), CuPy's
// current stream; the launch itself is in kernels/bias_act/bias_act_cuda.cu.
#include <vector>

#include "bias_act/bias_act.h"
#include "common/cuda_info.h"
#include "pf_bind.h"

namespace {
pf::BiasActParams params(const std::vector<std::int64_t>& shape, int dim, int act, double alpha, double gain,
                         double clamp) {
  const int nd = int(shape.size());
  PF_CHECK(nd >= 1 && dim >= 0 && dim < nd, "dim: out of range for x");
  PF_CHECK(act >= pf::kLinear && act <= pf::kGelu, "act: unknown activation code");
  for (auto s : shape) PF_CHECK(s >= 0, "x: negative size");
  pf::BiasActParams p{1, shape[dim], 1, act, alpha, gain, clamp};
  for (int i = 0; i < dim; ++i) p.outer *= shape[i];
  for (int i = dim + 1; i < nd; ++i) p.inner *= shape[i];
  return p;
}

void bind(py::module_& m) {
  m.def("bias_act_forward", [](std::uintptr_t x, std::uintptr_t b, std::uintptr_t y, std::vector<std::int64_t> shape,
                               int dim, int act, double alpha, double gain, double clamp, int dtype,
                               std::uintptr_t stream) {
    const auto p = params(shape, dim, act, alpha, gain, clamp);
    pfb::check_dtype(dtype);
    const std::int64_t n = p.outer * p.channels * p.inner;
    void* xp = n ? pfb::dev_ptr(x, "x") : nullptr;
    void* yp = n ? pfb::dev_ptr(y, "out") : nullptr;
    int err;
    {
      py::gil_scoped_release nogil;
      err = pf::cuda::bias_act_forward(xp, reinterpret_cast<void*>(b), yp, p, dtype, reinterpret_cast<void*>(stream));
    }
    pf::cuda::check(err, "bias_act_forward", reinterpret_cast<void*>(stream));
  });
  m.def("bias_act_backward", [](std::uintptr_t gy, std::uintptr_t x, std::uintptr_t b, std::uintptr_t gx,
                                std::uintptr_t gb, std::vector<std::int64_t> shape, int dim, int act, double alpha,
                                double gain, double clamp, int dtype, std::uintptr_t stream) {
    const auto p = params(shape, dim, act, alpha, gain, clamp);
    pfb::check_dtype(dtype);
    const std::int64_t n = p.outer * p.channels * p.inner;
    void* gyp = n ? pfb::dev_ptr(gy, "grad_out") : nullptr;
    void* xp = n ? pfb::dev_ptr(x, "x") : nullptr;
    void* gxp = n ? pfb::dev_ptr(gx, "dx") : nullptr;
    int err;
    {
      py::gil_scoped_release nogil;
      err = pf::cuda::bias_act_backward(gyp, xp, reinterpret_cast<void*>(b), gxp, reinterpret_cast<float*>(gb), p,
                                        dtype, reinterpret_cast<void*>(stream));
    }
    pf::cuda::check(err, "bias_act_backward", reinterpret_cast<void*>(stream));
  });
}
pfb::Register reg(bind);
}  // namespace
