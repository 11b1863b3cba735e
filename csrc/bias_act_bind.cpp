// Glue for bias_act on the CPU: checks arrays, releases the GIL, calls kernels/bias_act.
#include "bias_act/bias_act.h"
#include "pf_bind.h"

namespace {
pf::BiasActParams params(const py::array& x, int dim, int act, double alpha, double gain, double clamp) {
  PF_CHECK(x.ndim() >= 1 && dim >= 0 && dim < x.ndim(), "dim: out of range for x");
  PF_CHECK(act >= pf::kLinear && act <= pf::kGelu, "act: unknown activation code");
  pf::BiasActParams p{1, x.shape(dim), 1, act, alpha, gain, clamp};
  for (int i = 0; i < dim; ++i) p.outer *= x.shape(i);
  for (int i = dim + 1; i < x.ndim(); ++i) p.inner *= x.shape(i);
  return p;
}

template <class T>
void forward(py::array x, py::object b, py::array y, int dim, int act, double alpha, double gain, double clamp) {
  const auto p = params(x, dim, act, alpha, gain, clamp);
  const T* xp = pfb::cdata_of<T>(x, "x");
  T* yp = pfb::data_of<T>(y, "out");
  PF_CHECK(pfb::shape_of(x) == pfb::shape_of(y), "out: shape differs from x");
  const T* bp = nullptr;
  py::array ba;
  if (!b.is_none()) {
    ba = b.cast<py::array>();
    bp = pfb::cdata_of<T>(ba, "bias", 1);
    PF_CHECK(ba.shape(0) == p.channels, "bias: length must equal x.shape[dim]");
  }
  py::gil_scoped_release nogil;
  if constexpr (std::is_same_v<T, float>) PF_ISA_CALL(bias_act_forward_f32, xp, bp, yp, p);
  else PF_ISA_CALL(bias_act_forward_f64, xp, bp, yp, p);
}

template <class T>
void backward(py::array gy, py::array x, py::object b, py::array gx, py::object gb, int dim, int act,
              double alpha, double gain, double clamp) {
  const auto p = params(x, dim, act, alpha, gain, clamp);
  const T* gyp = pfb::cdata_of<T>(gy, "grad_out");
  const T* xp = pfb::cdata_of<T>(x, "x");
  T* gxp = pfb::data_of<T>(gx, "dx");
  PF_CHECK(pfb::shape_of(gy) == pfb::shape_of(x), "grad_out: shape differs from x");
  PF_CHECK(pfb::shape_of(gx) == pfb::shape_of(x), "dx: shape differs from x");
  const T* bp = nullptr;
  T* gbp = nullptr;
  py::array ba, gba;
  if (!b.is_none()) {
    ba = b.cast<py::array>();
    bp = pfb::cdata_of<T>(ba, "bias", 1);
    PF_CHECK(ba.shape(0) == p.channels, "bias: length must equal x.shape[dim]");
  }
  if (!gb.is_none()) {
    gba = gb.cast<py::array>();
    gbp = pfb::data_of<T>(gba, "dbias", 1);
    PF_CHECK(gba.shape(0) == p.channels, "dbias: length must equal x.shape[dim]");
  }
  py::gil_scoped_release nogil;
  if constexpr (std::is_same_v<T, float>) PF_ISA_CALL(bias_act_backward_f32, gyp, xp, bp, gxp, gbp, p);
  else PF_ISA_CALL(bias_act_backward_f64, gyp, xp, bp, gxp, gbp, p);
}

void bind(py::module_& m) {
  m.def("bias_act_forward", [](py::array x, py::object b, py::array y, int dim, int act, double alpha,
                               double gain, double clamp) {
    if (x.dtype().is(py::dtype::of<double>())) forward<double>(x, b, y, dim, act, alpha, gain, clamp);
    else forward<float>(x, b, y, dim, act, alpha, gain, clamp);
  });
  m.def("bias_act_backward", [](py::array gy, py::array x, py::object b, py::array gx, py::object gb,
                                int dim, int act, double alpha, double gain, double clamp) {
    if (x.dtype().is(py::dtype::of<double>())) backward<double>(gy, x, b, gx, gb, dim, act, alpha, gain, clamp);
    else backward<float>(gy, x, b, gx, gb, dim, act, alpha, gain, clamp);
  });
}
pfb::Register reg(bind);
}  // namespace
