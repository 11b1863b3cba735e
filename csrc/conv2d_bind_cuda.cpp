// Glue for conv2d on the GPU: device pointers, shapes and geometry from Python (CuPy
// arrays), CuPy's current stream; the kernels are in kernels/conv2d/conv2d_cuda.cu. Shapes
// are checked against each other here so a launch never indexes past an array.
#include <vector>

#include "common/cuda_info.h"
#include "conv2d/conv2d.h"
#include "pf_bind.h"

namespace {
using Shape = std::vector<std::int64_t>;

// xs: (N, C, H, W), ws: (K, C/groups, R, S), ys: (N, K, P, Q) of the conv2d view.
pf::Conv2dParams params(const Shape& xs, const Shape& wsh, const Shape& ys, const Shape& g, const char* xname,
                        const char* yname) {
  PF_CHECK(g.size() == 9, "conv2d: expected 9 geometry values");
  PF_CHECK(xs.size() == 4, std::string(xname) + ": expected 4 dims (N, C, H, W)");
  PF_CHECK(wsh.size() == 4, "weight: expected 4 dims");
  PF_CHECK(ys.size() == 4, std::string(yname) + ": expected 4 dims");
  return pf::conv2d_params(xs.data(), wsh.data(), ys.data(), g.data(), xname, yname);
}

void* ptr_if(std::uintptr_t v, bool needed, const char* name) { return needed ? pfb::dev_ptr(v, name) : nullptr; }

void bind(py::module_& m) {
  m.def("conv2d_ws_floats", [](Shape xs, Shape wsh, Shape ys, Shape g) {
    return pf::cuda::conv2d_ws_floats(params(xs, wsh, ys, g, "x", "grad_out"));
  });
  m.def("conv2d_forward", [](std::uintptr_t x, std::uintptr_t w, std::uintptr_t b, std::uintptr_t y, Shape xs,
                             Shape wsh, Shape ys, Shape g, std::int64_t bias_len, int dtype, std::uintptr_t stream) {
    const auto p = params(xs, wsh, ys, g, "x", "out");
    pfb::check_dtype(dtype);
    PF_CHECK(b == 0 || bias_len == p.K, "bias: length must equal weight.shape[0]");
    const bool any = p.N > 0;
    void* xp = ptr_if(x, any, "x");
    void* wp = pfb::dev_ptr(w, "weight");
    void* yp = ptr_if(y, any, "out");
    int err;
    {
      py::gil_scoped_release nogil;
      err = pf::cuda::conv2d_forward(xp, wp, reinterpret_cast<void*>(b), yp, p, dtype, reinterpret_cast<void*>(stream));
    }
    pf::cuda::check(err, "conv2d_forward", reinterpret_cast<void*>(stream));
  });
  m.def("conv2d_backward_data", [](std::uintptr_t dy, std::uintptr_t w, std::uintptr_t dx, Shape xs, Shape wsh,
                                   Shape ys, Shape g, int dtype, std::uintptr_t stream) {
    const auto p = params(xs, wsh, ys, g, "dx", "grad_out");
    pfb::check_dtype(dtype);
    const bool any = p.N > 0;
    void* dyp = ptr_if(dy, any, "grad_out");
    void* wp = pfb::dev_ptr(w, "weight");
    void* dxp = ptr_if(dx, any, "dx");
    int err;
    {
      py::gil_scoped_release nogil;
      err = pf::cuda::conv2d_backward_data(dyp, wp, dxp, p, dtype, reinterpret_cast<void*>(stream));
    }
    pf::cuda::check(err, "conv2d_backward_data", reinterpret_cast<void*>(stream));
  });
  m.def("conv2d_backward_weight", [](std::uintptr_t x, std::uintptr_t dy, std::uintptr_t dw, std::uintptr_t ws,
                                     Shape xs, Shape wsh, Shape ys, Shape g, int dtype, std::uintptr_t stream) {
    const auto p = params(xs, wsh, ys, g, "x", "grad_out");
    pfb::check_dtype(dtype);
    const bool any = p.N > 0;
    void* xp = ptr_if(x, any, "x");
    void* dyp = ptr_if(dy, any, "grad_out");
    void* dwp = pfb::dev_ptr(dw, "dw");
    float* wsp = static_cast<float*>(pfb::dev_ptr(ws, "workspace"));
    int err;
    {
      py::gil_scoped_release nogil;
      err = pf::cuda::conv2d_backward_weight(xp, dyp, dwp, wsp, p, dtype, reinterpret_cast<void*>(stream));
    }
    pf::cuda::check(err, "conv2d_backward_weight", reinterpret_cast<void*>(stream));
  });
  m.def("conv2d_backward_bias", [](std::uintptr_t dy, std::uintptr_t db, Shape ys, int dtype, std::uintptr_t stream) {
    PF_CHECK(ys.size() == 4, "grad_out: expected 4 dims");
    for (auto v : ys) PF_CHECK(v >= 0, "grad_out: negative size");
    pfb::check_dtype(dtype);
    pf::Conv2dParams p{};
    p.N = ys[0]; p.K = ys[1]; p.P = ys[2]; p.Q = ys[3];
    void* dyp = ptr_if(dy, p.N * p.P * p.Q > 0, "grad_out");
    void* dbp = ptr_if(db, p.K > 0, "db");
    int err;
    {
      py::gil_scoped_release nogil;
      err = pf::cuda::conv2d_backward_bias(dyp, dbp, p, dtype, reinterpret_cast<void*>(stream));
    }
    pf::cuda::check(err, "conv2d_backward_bias", reinterpret_cast<void*>(stream));
  });
}
pfb::Register reg(bind);
}  // namespace
