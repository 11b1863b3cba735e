// Glue for group_norm on the CPU: checks arrays, releases the GIL, calls kernels/group_norm.
#include "group_norm/group_norm.h"
#include "pf_bind.h"

namespace {
// x: C-contiguous with rows·cpg·inner elements; w, b: (groups·cpg,); mean, rstd: (rows,) float64
pf::GroupNormParams params(const py::array& x, py::ssize_t groups, py::ssize_t inner, double eps, int act,
                           double alpha) {
  PF_CHECK(x.ndim() >= 1 && x.shape(0) > 0, "x: expected a non-empty (N, ...) array");
  PF_CHECK(groups > 0 && inner > 0, "groups: groups and inner must be positive");
  PF_CHECK(act >= pf::kLinear && act <= pf::kGelu, "act: unknown activation code");
  const pf::i64 n = x.shape(0), rows = n * groups, size = x.size();
  PF_CHECK(size % (rows * inner) == 0, "x: size is not a multiple of N * groups * inner");
  return pf::GroupNormParams{rows, size / (rows * inner), inner, groups, eps, act, alpha};
}

void check_affine(const py::array& a, const char* name, const pf::GroupNormParams& p) {
  PF_CHECK(a.ndim() == 1 && a.shape(0) == p.groups * p.cpg, std::string(name) + ": expected (groups * cpg,)");
}

template <class T>
void forward(py::array x, py::array w, py::array b, py::array y, py::array mean, py::array rstd, py::ssize_t groups,
             py::ssize_t inner, double eps, int act, double alpha) {
  const auto p = params(x, groups, inner, eps, act, alpha);
  const T* xp = pfb::cdata_of<T>(x, "x");
  const T* wp = pfb::cdata_of<T>(w, "weight", 1);
  const T* bp = pfb::cdata_of<T>(b, "bias", 1);
  T* yp = pfb::data_of<T>(y, "out");
  double* mp = pfb::data_of<double>(mean, "mean", 1);
  double* rp = pfb::data_of<double>(rstd, "rstd", 1);
  check_affine(w, "weight", p);
  check_affine(b, "bias", p);
  PF_CHECK(y.size() == x.size(), "out: size differs from x");
  PF_CHECK(mean.shape(0) == p.rows && rstd.shape(0) == p.rows, "mean: expected (N * groups,)");
  py::gil_scoped_release nogil;
  if constexpr (std::is_same_v<T, float>) PF_ISA_CALL(group_norm_forward_f32, xp, wp, bp, yp, mp, rp, p);
  else PF_ISA_CALL(group_norm_forward_f64, xp, wp, bp, yp, mp, rp, p);
}

template <class T>
void backward(py::array gy, py::array x, py::array w, py::array b, py::array mean, py::array rstd, py::array gx,
              bool need_x, py::array pw, py::array pb, py::ssize_t groups, py::ssize_t inner, int act, double alpha) {
  const auto p = params(x, groups, inner, 0.0, act, alpha);
  const T* gyp = pfb::cdata_of<T>(gy, "grad_out");
  const T* xp = pfb::cdata_of<T>(x, "x");
  const T* wp = pfb::cdata_of<T>(w, "weight", 1);
  const T* bp = pfb::cdata_of<T>(b, "bias", 1);
  const double* mp = pfb::cdata_of<double>(mean, "mean", 1);
  const double* rp = pfb::cdata_of<double>(rstd, "rstd", 1);
  T* gxp = pfb::data_of<T>(gx, "dx");
  double* pwp = pfb::data_of<double>(pw, "pw", 2);
  double* pbp = pfb::data_of<double>(pb, "pb", 2);
  check_affine(w, "weight", p);
  check_affine(b, "bias", p);
  PF_CHECK(gy.size() == x.size(), "grad_out: size differs from x");
  PF_CHECK((!need_x && act == pf::kLinear) || gx.size() == x.size(), "dx: size differs from x");
  PF_CHECK(mean.shape(0) == p.rows && rstd.shape(0) == p.rows, "mean: expected (N * groups,)");
  const pf::i64 prow = pf::partial_rows(p);
  PF_CHECK(pw.shape(0) == prow && pw.shape(1) == p.cpg && pb.shape(0) == prow && pb.shape(1) == p.cpg,
           "pw: expected (N * groups, cpg), for LayerNorm rows (ceil(N / 16), cpg)");
  py::gil_scoped_release nogil;
  if constexpr (std::is_same_v<T, float>)
    PF_ISA_CALL(group_norm_backward_f32, gyp, xp, wp, bp, mp, rp, gxp, need_x, pwp, pbp, p);
  else PF_ISA_CALL(group_norm_backward_f64, gyp, xp, wp, bp, mp, rp, gxp, need_x, pwp, pbp, p);
}

void bind(py::module_& m) {
  m.def("group_norm_forward", [](py::array x, py::array w, py::array b, py::array y, py::array mean, py::array rstd,
                                 py::ssize_t groups, py::ssize_t inner, double eps, int act, double alpha) {
    if (x.dtype().is(py::dtype::of<double>())) forward<double>(x, w, b, y, mean, rstd, groups, inner, eps, act, alpha);
    else forward<float>(x, w, b, y, mean, rstd, groups, inner, eps, act, alpha);
  });
  m.def("group_norm_backward", [](py::array gy, py::array x, py::array w, py::array b, py::array mean,
                                  py::array rstd, py::array gx, bool need_x, py::array pw, py::array pb,
                                  py::ssize_t groups, py::ssize_t inner, int act, double alpha) {
    if (x.dtype().is(py::dtype::of<double>()))
      backward<double>(gy, x, w, b, mean, rstd, gx, need_x, pw, pb, groups, inner, act, alpha);
    else backward<float>(gy, x, w, b, mean, rstd, gx, need_x, pw, pb, groups, inner, act, alpha);
  });
}
pfb::Register reg(bind);
}  // namespace
