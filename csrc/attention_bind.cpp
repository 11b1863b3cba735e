// Glue for attention on the CPU: checks shapes and dtypes again, releases the GIL, calls
// kernels/attention. No math here.
#include "attention/attention.h"
#include "pf_bind.h"

namespace {
// q (B,H,Lq,D), k/v (B,Hkv,Lk,D): the params, or a ValueError naming the argument.
pf::AttnParams params(const py::array& q, const py::array& k, const py::array& v, bool causal, double scale) {
  PF_CHECK(q.ndim() == 4, "q: expected 4 dims (B, H, Lq, D)");
  PF_CHECK(k.ndim() == 4, "k: expected 4 dims (B, Hkv, Lk, D)");
  PF_CHECK(v.ndim() == 4, "v: expected 4 dims (B, Hkv, Lk, D)");
  pf::AttnParams p{q.shape(0), q.shape(1), k.shape(1), q.shape(2), k.shape(2), q.shape(3), scale, causal ? 1 : 0};
  PF_CHECK(k.shape(0) == p.B && v.shape(0) == p.B, "k: batch size differs from q");
  PF_CHECK(k.shape(3) == p.D && v.shape(3) == p.D, "k: head dim differs from q");
  PF_CHECK(v.shape(1) == p.Hkv && v.shape(2) == p.Lk, "v: shape differs from k");
  PF_CHECK(p.Hkv > 0 && p.H % p.Hkv == 0, "k: q heads must be a multiple of k heads");
  PF_CHECK(p.Lk > 0, "k: no keys");
  PF_CHECK(p.D > 0, "q: head dim must be > 0");
  PF_CHECK(!causal || p.Lq <= p.Lk, "causal: needs Lq <= Lk");
  return p;
}

// k or v for the forward: C-contiguous, or (B, Hkv, Lk, D) rows D apart inside (b, head) blocks
// that are evenly spaced (a KV cache's view of a longer buffer). Returns the block stride in
// elements (0: contiguous) and checks that v's matches k's.
template <class T>
std::int64_t kv_blocks(const py::array& a, const char* name) {
  if (!py::isinstance<py::array_t<T>>(a) || !a.dtype().is(py::dtype::of<T>()))
    throw py::type_error(std::string(name) + ": wrong dtype for this kernel");
  if (a.flags() & py::array::c_style) return 0;
  const std::int64_t it = sizeof(T), D = a.shape(3), Lk = a.shape(2);
  const auto st = [&](int d) { return std::int64_t(a.strides(d)); };
  PF_CHECK(st(3) == it && (Lk == 1 || st(2) == D * it) && st(1) % it == 0 && st(1) >= Lk * D * it &&
               (a.shape(0) == 1 || st(0) == a.shape(1) * st(1)),
           std::string(name) + ": must be C-contiguous, or rows of D inside evenly spaced (batch, head) blocks");
  return st(1) / it;
}

void check_shape(const py::array& a, const char* name, std::vector<std::int64_t> want) {
  if (pfb::shape_of(a) != want) throw py::value_error(std::string(name) + ": wrong shape");
}

template <class T>
void forward(py::array q, py::array k, py::array v, py::array out, py::array lse, bool causal, double scale) {
  auto p = params(q, k, v, causal, scale);
  const T* qp = pfb::cdata_of<T>(q, "q");
  p.kv_bs = kv_blocks<T>(k, "k");
  PF_CHECK(kv_blocks<T>(v, "v") == p.kv_bs, "v: layout differs from k's");
  const T* kp = static_cast<const T*>(k.data());
  const T* vp = static_cast<const T*>(v.data());
  T* op = pfb::data_of<T>(out, "out");
  T* lp = pfb::data_of<T>(lse, "lse");
  check_shape(out, "out", pfb::shape_of(q));
  check_shape(lse, "lse", {p.B, p.H, p.Lq});
  py::gil_scoped_release nogil;
  if constexpr (std::is_same_v<T, float>) PF_ISA_CALL(attention_forward_f32, qp, kp, vp, op, lp, p);
  else PF_ISA_CALL(attention_forward_f64, qp, kp, vp, op, lp, p);
}

template <class T>
void backward(py::array dout, py::array q, py::array k, py::array v, py::array out, py::array lse, py::array dq,
              py::array dk, py::array dv, bool causal, double scale) {
  const auto p = params(q, k, v, causal, scale);
  const T* dop = pfb::cdata_of<T>(dout, "grad_out");
  const T* qp = pfb::cdata_of<T>(q, "q");
  const T* kp = pfb::cdata_of<T>(k, "k");
  const T* vp = pfb::cdata_of<T>(v, "v");
  const T* op = pfb::cdata_of<T>(out, "out");
  const T* lp = pfb::cdata_of<T>(lse, "lse");
  T* dqp = pfb::data_of<T>(dq, "dq");
  T* dkp = pfb::data_of<T>(dk, "dk");
  T* dvp = pfb::data_of<T>(dv, "dv");
  check_shape(dout, "grad_out", pfb::shape_of(q));
  check_shape(out, "out", pfb::shape_of(q));
  check_shape(lse, "lse", {p.B, p.H, p.Lq});
  check_shape(dq, "dq", pfb::shape_of(q));
  check_shape(dk, "dk", pfb::shape_of(k));
  check_shape(dv, "dv", pfb::shape_of(k));
  py::gil_scoped_release nogil;
  if constexpr (std::is_same_v<T, float>)
    PF_ISA_CALL(attention_backward_f32, dop, qp, kp, vp, op, lp, dqp, dkp, dvp, p);
  else
    PF_ISA_CALL(attention_backward_f64, dop, qp, kp, vp, op, lp, dqp, dkp, dvp, p);
}

void bind(py::module_& m) {
  m.def("attention_forward", [](py::array q, py::array k, py::array v, py::array out, py::array lse, bool causal,
                                double scale) {
    if (q.dtype().is(py::dtype::of<double>())) forward<double>(q, k, v, out, lse, causal, scale);
    else forward<float>(q, k, v, out, lse, causal, scale);
  });
  m.def("attention_backward", [](py::array dout, py::array q, py::array k, py::array v, py::array out,
                                 py::array lse, py::array dq, py::array dk, py::array dv, bool causal, double scale) {
    if (q.dtype().is(py::dtype::of<double>())) backward<double>(dout, q, k, v, out, lse, dq, dk, dv, causal, scale);
    else backward<float>(dout, q, k, v, out, lse, dq, dk, dv, causal, scale);
  });
}
pfb::Register reg(bind);
}  // namespace
