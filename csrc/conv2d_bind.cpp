// Glue for conv2d on the CPU: checks arrays and shapes, releases the GIL, calls
// kernels/conv2d. Geometry args (stride_h, stride_w, pad_top, pad_left, pad_bottom, pad_right,
// dil_h, dil_w, groups) come from Python; the sizes come from the arrays themselves, so a
// kernel never indexes past what the checks below have seen.
#include <type_traits>
#include <vector>

#include "conv2d/conv2d.h"
#include "pf_bind.h"

namespace {
using Geo = std::vector<std::int64_t>;

// x: (N, C, H, W), w: (K, C/groups, R, S), y: (N, K, P, Q) — shapes of the conv's three tensors.
pf::Conv2dParams params(const py::array& x, const py::array& w, const py::array& y, const Geo& g,
                        const char* xname, const char* yname) {
  PF_CHECK(g.size() == 9, "conv2d: expected 9 geometry values");
  PF_CHECK(x.ndim() == 4, std::string(xname) + ": expected 4 dims (N, C, H, W)");
  PF_CHECK(w.ndim() == 4, "weight: expected 4 dims");
  PF_CHECK(y.ndim() == 4, std::string(yname) + ": expected 4 dims");
  const auto xs = pfb::shape_of(x), ws = pfb::shape_of(w), ys = pfb::shape_of(y);
  return pf::conv2d_params(xs.data(), ws.data(), ys.data(), g.data(), xname, yname);
}

// bf16: 0 float32; 1 bfloat16 where it is faster (else float32); 2 bfloat16 always.
template <class T>
void forward(py::array x, py::array w, py::object b, py::array y, const Geo& g, int bf16 = 0) {
  const auto p = params(x, w, y, g, "x", "out");
  const T* xp = pfb::cdata_of<T>(x, "x");
  const T* wp = pfb::cdata_of<T>(w, "weight");
  T* yp = pfb::data_of<T>(y, "out");
  const T* bp = nullptr;
  py::array ba;
  if (!b.is_none()) {
    ba = b.cast<py::array>();
    bp = pfb::cdata_of<T>(ba, "bias", 1);
    PF_CHECK(ba.shape(0) == p.K, "bias: length must equal weight.shape[0]");
  }
  if constexpr (std::is_same_v<T, float>) {
    if (bf16) {
#if defined(PF_X86)
      PF_CHECK(pf::cpu::has_avx512_bf16(), "compute: bfloat16 needs the AVX-512 path and avx512_bf16 (see has_bf16())");
      py::gil_scoped_release nogil;
      if (pf::avx512::conv2d_forward_bf16(xp, wp, bp, yp, p, bf16 == 2)) return;
      PF_ISA_CALL(conv2d_forward_f32, xp, wp, bp, yp, p);
      return;
#else
      PF_CHECK(false, "compute: bfloat16 needs an x86 CPU with avx512_bf16");
#endif
    }
  }
  py::gil_scoped_release nogil;
  if constexpr (std::is_same_v<T, float>) PF_ISA_CALL(conv2d_forward_f32, xp, wp, bp, yp, p);
  else PF_ISA_CALL(conv2d_forward_f64, xp, wp, bp, yp, p);
}

template <class T>
void backward_data(py::array dy, py::array w, py::array dx, const Geo& g, bool bf16 = false) {
  const auto p = params(dx, w, dy, g, "dx", "grad_out");
  const T* dyp = pfb::cdata_of<T>(dy, "grad_out");
  const T* wp = pfb::cdata_of<T>(w, "weight");
  T* dxp = pfb::data_of<T>(dx, "dx");
  if constexpr (std::is_same_v<T, float>) {
    if (bf16) {
#if defined(PF_X86)
      PF_CHECK(pf::cpu::has_avx512_bf16(), "compute: bfloat16 needs the AVX-512 path and avx512_bf16 (see has_bf16())");
      py::gil_scoped_release nogil;
      if (pf::avx512::conv2d_backward_data_bf16(dyp, wp, dxp, p)) return;
      PF_ISA_CALL(conv2d_backward_data_f32, dyp, wp, dxp, p);
      return;
#else
      PF_CHECK(false, "compute: bfloat16 needs an x86 CPU with avx512_bf16");
#endif
    }
  }
  py::gil_scoped_release nogil;
  if constexpr (std::is_same_v<T, float>) PF_ISA_CALL(conv2d_backward_data_f32, dyp, wp, dxp, p);
  else PF_ISA_CALL(conv2d_backward_data_f64, dyp, wp, dxp, p);
}

template <class T>
void backward_weight(py::array x, py::array dy, py::array dw, const Geo& g) {
  const auto p = params(x, dw, dy, g, "x", "grad_out");
  const T* xp = pfb::cdata_of<T>(x, "x");
  const T* dyp = pfb::cdata_of<T>(dy, "grad_out");
  T* dwp = pfb::data_of<T>(dw, "dw");
  py::gil_scoped_release nogil;
  if constexpr (std::is_same_v<T, float>) PF_ISA_CALL(conv2d_backward_weight_f32, xp, dyp, dwp, p);
  else PF_ISA_CALL(conv2d_backward_weight_f64, xp, dyp, dwp, p);
}

template <class T>
void backward_bias(py::array dy, py::array db) {
  PF_CHECK(dy.ndim() == 4, "grad_out: expected 4 dims");
  PF_CHECK(db.ndim() == 1 && db.shape(0) == dy.shape(1), "db: length must equal grad_out.shape[1]");
  pf::Conv2dParams p{};
  p.N = dy.shape(0); p.K = dy.shape(1); p.P = dy.shape(2); p.Q = dy.shape(3);
  const T* dyp = pfb::cdata_of<T>(dy, "grad_out");
  T* dbp = pfb::data_of<T>(db, "db");
  py::gil_scoped_release nogil;
  if constexpr (std::is_same_v<T, float>) PF_ISA_CALL(conv2d_backward_bias_f32, dyp, dbp, p);
  else PF_ISA_CALL(conv2d_backward_bias_f64, dyp, dbp, p);
}

bool is_f64(const py::array& a) { return a.dtype().is(py::dtype::of<double>()); }

void bind(py::module_& m) {
  m.def("conv2d_forward", [](py::array x, py::array w, py::object b, py::array y, Geo g) {
    if (is_f64(x)) forward<double>(x, w, b, y, g); else forward<float>(x, w, b, y, g);
  });
  // x and weight rounded to bfloat16, float32 sums and out (kernels/conv2d/conv2d_bf16_cpu.cpp),
  // where that is faster than float32 (else the float32 forward); always=True: bfloat16 regardless.
  m.def("conv2d_forward_bf16", [](py::array x, py::array w, py::object b, py::array y, Geo g, bool always) {
    if (!x.dtype().is(py::dtype::of<float>())) throw py::type_error("x: expected float32");
    forward<float>(x, w, b, y, g, always ? 2 : 1);
  }, py::arg("x"), py::arg("w"), py::arg("b"), py::arg("y"), py::arg("g"), py::arg("always") = false);
  // Stride 1 in bfloat16 where that is faster (else float32), as conv2d_forward_bf16.
  m.def("conv2d_backward_data_bf16", [](py::array dy, py::array w, py::array dx, Geo g) {
    if (!dy.dtype().is(py::dtype::of<float>())) throw py::type_error("grad_out: expected float32");
    backward_data<float>(dy, w, dx, g, true);
  });
  m.def("conv2d_backward_data", [](py::array dy, py::array w, py::array dx, Geo g) {
    if (is_f64(dy)) backward_data<double>(dy, w, dx, g); else backward_data<float>(dy, w, dx, g);
  });
  m.def("conv2d_backward_weight", [](py::array x, py::array dy, py::array dw, Geo g) {
    if (is_f64(x)) backward_weight<double>(x, dy, dw, g); else backward_weight<float>(x, dy, dw, g);
  });
  m.def("conv2d_backward_bias", [](py::array dy, py::array db) {
    if (is_f64(dy)) backward_bias<double>(dy, db); else backward_bias<float>(dy, db);
  });
}
pfb::Register reg(bind);
}  // namespace
