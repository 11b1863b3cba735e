// Glue for attention on the GPU: device pointers and shapes from Python (CuPy arrays), CuPy's
// current stream; the kernels are in kernels/attention/attention_cuda.cu.
#include <vector>

#include "attention/attention.h"
#include "common/cuda_info.h"
#include "pf_bind.h"

namespace {
pf::AttnParams params(const std::vector<std::int64_t>& qs, const std::vector<std::int64_t>& ks, bool causal,
                      double scale) {
  PF_CHECK(qs.size() == 4, "q: expected 4 dims (B, H, Lq, D)");
  PF_CHECK(ks.size() == 4, "k: expected 4 dims (B, Hkv, Lk, D)");
  for (auto s : qs) PF_CHECK(s >= 0, "q: negative size");
  for (auto s : ks) PF_CHECK(s >= 0, "k: negative size");
  pf::AttnParams p{qs[0], qs[1], ks[1], qs[2], ks[2], qs[3], scale, causal ? 1 : 0};
  PF_CHECK(ks[0] == p.B, "k: batch size differs from q");
  PF_CHECK(ks[3] == p.D, "k: head dim differs from q");
  PF_CHECK(p.Hkv > 0 && p.H % p.Hkv == 0, "k: q heads must be a multiple of k heads");
  PF_CHECK(p.Lk > 0, "k: no keys");
  PF_CHECK(p.D >= 1 && p.D <= 128, "q: head dim must be in 1..128 on the GPU");
  PF_CHECK(!causal || p.Lq <= p.Lk, "causal: needs Lq <= Lk");
  return p;
}

void bind(py::module_& m) {
  m.def("attention_forward", [](std::uintptr_t q, std::uintptr_t k, std::uintptr_t v, std::uintptr_t out,
                                std::uintptr_t lse, std::vector<std::int64_t> qs, std::vector<std::int64_t> ks,
                                bool causal, double scale, int dtype, std::uintptr_t stream) {
    const auto p = params(qs, ks, causal, scale);
    pfb::check_dtype(dtype);
    if (p.B * p.H * p.Lq == 0) return;
    void* qp = pfb::dev_ptr(q, "q");
    void* kp = pfb::dev_ptr(k, "k");
    void* vp = pfb::dev_ptr(v, "v");
    void* op = pfb::dev_ptr(out, "out");
    float* lp = static_cast<float*>(pfb::dev_ptr(lse, "lse"));
    int err;
    {
      py::gil_scoped_release nogil;
      err = pf::cuda::attention_forward(qp, kp, vp, op, lp, p, dtype, reinterpret_cast<void*>(stream));
    }
    pf::cuda::check(err, "attention_forward", reinterpret_cast<void*>(stream));
  });
  m.def("attention_backward_workspace", [](std::vector<std::int64_t> qs, std::vector<std::int64_t> ks, bool causal,
                                           double scale) {
    return pf::cuda::attention_backward_workspace(params(qs, ks, causal, scale));
  });
  m.def("attention_backward", [](std::uintptr_t dout, std::uintptr_t q, std::uintptr_t k, std::uintptr_t v,
                                 std::uintptr_t out, std::uintptr_t lse, std::uintptr_t dq, std::uintptr_t dk,
                                 std::uintptr_t dv, std::uintptr_t ws, std::vector<std::int64_t> qs,
                                 std::vector<std::int64_t> ks, bool causal, double scale, int dtype,
                                 std::uintptr_t stream) {
    const auto p = params(qs, ks, causal, scale);
    pfb::check_dtype(dtype);
    const bool any_q = p.B * p.H * p.Lq > 0;
    const bool any_k = p.B * p.Hkv * p.Lk * p.D > 0;
    void* dkp = any_k ? pfb::dev_ptr(dk, "dk") : nullptr;
    void* dvp = any_k ? pfb::dev_ptr(dv, "dv") : nullptr;
    void *dop = nullptr, *qp = nullptr, *kp = nullptr, *vp = nullptr, *op = nullptr, *dqp = nullptr;
    float *lp = nullptr, *wsp = nullptr;
    if (any_q) {
      dop = pfb::dev_ptr(dout, "grad_out");
      qp = pfb::dev_ptr(q, "q");
      kp = pfb::dev_ptr(k, "k");
      vp = pfb::dev_ptr(v, "v");
      op = pfb::dev_ptr(out, "out");
      dqp = pfb::dev_ptr(dq, "dq");
      lp = static_cast<float*>(pfb::dev_ptr(lse, "lse"));
      wsp = static_cast<float*>(pfb::dev_ptr(ws, "workspace"));
    }
    int err;
    {
      py::gil_scoped_release nogil;
      err = pf::cuda::attention_backward(dop, qp, kp, vp, op, lp, dqp, dkp, dvp, wsp, p, dtype,
                                         reinterpret_cast<void*>(stream));
    }
    pf::cuda::check(err, "attention_backward", reinterpret_cast<void*>(stream));
  });
}
pfb::Register reg(bind);
}  // namespace
