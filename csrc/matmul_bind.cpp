// Glue for matmul on the CPU: reads shapes and strides from the arrays (any strides: the
// kernel packs from them), checks everything again, releases the GIL, calls kernels/matmul.
#include "matmul/matmul.h"
#include "pf_bind.h"

namespace {
// Element strides of a (2-D or 3-D) array; a 2-D array is a batch of one.
struct View {
  std::int64_t batch, rows, cols, bs, rs, cs;
};

View view_of(const py::array& x, const char* name, bool trans) {
  PF_CHECK(x.ndim() == 2 || x.ndim() == 3, std::string(name) + ": expected 2 or 3 dimensions");
  const std::int64_t item = x.itemsize();
  auto st = [&](int d) {
    PF_CHECK(x.strides(d) % item == 0, std::string(name) + ": strides must be multiples of the item size");
    return std::int64_t(x.strides(d) / item);
  };
  const int o = x.ndim() == 3 ? 1 : 0;
  View v{o ? std::int64_t(x.shape(0)) : 1, x.shape(o), x.shape(o + 1), o ? st(0) : 0, st(o), st(o + 1)};
  if (trans) {
    std::swap(v.rows, v.cols);
    std::swap(v.rs, v.cs);
  }
  if (v.batch == 1) v.bs = 0;
  return v;
}

template <class T>
void run(const py::array& a, const py::array& b, py::array& out, const py::object& bias, bool ta, bool tb,
         bool bf16 = false) {
  const View va = view_of(a, "a", ta), vb = view_of(b, "b", tb);
  PF_CHECK(va.cols == vb.rows, "b: inner dimensions differ (op(a) is M×K, op(b) must be K×N)");
  PF_CHECK(va.batch == vb.batch || va.batch == 1 || vb.batch == 1, "b: batch sizes differ and neither is 1");
  const std::int64_t batch = va.batch == 1 ? vb.batch : va.batch;
  PF_CHECK(out.ndim() == 3, "out: expected 3 dimensions (batch, M, N)");
  PF_CHECK(out.dtype().is(py::dtype::of<T>()), "out: wrong dtype");
  PF_CHECK(out.flags() & py::array::c_style, "out: must be C-contiguous");
  PF_CHECK(out.writeable(), "out: read-only");
  PF_CHECK(out.shape(0) == batch && out.shape(1) == va.rows && out.shape(2) == vb.cols, "out: wrong shape");
  PF_CHECK(b.dtype().is(py::dtype::of<T>()), "b: dtype differs from a");
  const T* bp = nullptr;
  py::array ba;
  if (!bias.is_none()) {
    ba = bias.cast<py::array>();
    bp = pfb::cdata_of<T>(ba, "bias", 1);
    PF_CHECK(ba.shape(0) == vb.cols, "bias: length must equal N");
  }
  pf::GemmParams p{batch, va.rows, vb.cols, va.cols, va.bs, va.rs, va.cs, vb.bs, vb.rs, vb.cs,
                   va.rows * vb.cols, vb.cols};
  const T* ap = static_cast<const T*>(a.data());
  const T* bpp = static_cast<const T*>(b.data());
  T* cp = static_cast<T*>(out.mutable_data());
  if constexpr (std::is_same_v<T, float>) {
    if (bf16) {
#if defined(PF_X86)
      PF_CHECK(pf::cpu::has_avx512_bf16(), "compute: bfloat16 needs the AVX-512 path and avx512_bf16 (see has_bf16())");
      py::gil_scoped_release nogil;
      pf::avx512::gemm_bf16(ap, bpp, bp, cp, p);
      return;
#else
      PF_CHECK(false, "compute: bfloat16 needs an x86 CPU with avx512_bf16");
#endif
    }
  }
  py::gil_scoped_release nogil;
  if constexpr (std::is_same_v<T, float>) PF_ISA_CALL(gemm_f32, ap, bpp, bp, cp, p);
  else PF_ISA_CALL(gemm_f64, ap, bpp, bp, cp, p);
}

template <class T>
void run_colsum(const py::array& g, py::array& out) {
  PF_CHECK(g.ndim() == 2, "grad_out: expected 2 dimensions");
  PF_CHECK(g.dtype().is(py::dtype::of<T>()), "grad_out: wrong dtype");
  const std::int64_t item = g.itemsize();
  PF_CHECK(g.strides(0) % item == 0 && g.strides(1) % item == 0, "grad_out: strides must be multiples of the item size");
  T* op = pfb::data_of<T>(out, "db", 1);
  PF_CHECK(out.shape(0) == g.shape(1), "db: length must equal grad_out.shape[1]");
  const T* gp = static_cast<const T*>(g.data());
  const std::int64_t rows = g.shape(0), cols = g.shape(1), rs = g.strides(0) / item, cs = g.strides(1) / item;
  py::gil_scoped_release nogil;
  if constexpr (std::is_same_v<T, float>) PF_ISA_CALL(colsum_f32, gp, rows, cols, rs, cs, op);
  else PF_ISA_CALL(colsum_f64, gp, rows, cols, rs, cs, op);
}

void bind(py::module_& m) {
  m.def("matmul", [](py::array a, py::array b, py::array out, py::object bias, bool trans_a, bool trans_b) {
    if (a.dtype().is(py::dtype::of<double>())) run<double>(a, b, out, bias, trans_a, trans_b);
    else if (a.dtype().is(py::dtype::of<float>())) run<float>(a, b, out, bias, trans_a, trans_b);
    else throw py::type_error("a: expected float32 or float64");
  });
  // float32 operands rounded to bfloat16, float32 sums and result (kernels/matmul/matmul_bf16_cpu.cpp).
  m.def("matmul_bf16", [](py::array a, py::array b, py::array out, py::object bias, bool trans_a, bool trans_b) {
    if (!a.dtype().is(py::dtype::of<float>())) throw py::type_error("a: expected float32");
    run<float>(a, b, out, bias, trans_a, trans_b, true);
  });
  m.def("matmul_colsum", [](py::array g, py::array out) {
    if (g.dtype().is(py::dtype::of<double>())) run_colsum<double>(g, out);
    else if (g.dtype().is(py::dtype::of<float>())) run_colsum<float>(g, out);
    else throw py::type_error("grad_out: expected float32 or float64");
  });
}
pfb::Register reg(bind);
}  // namespace
