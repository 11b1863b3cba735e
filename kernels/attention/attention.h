// kernels/attention/attention.h: flash-style scaled dot-product attention, shared declarations.
//   q: (B, H, Lq, D); k, v: (B, Hkv, Lk, D), H % Hkv == 0 (query head h reads kv head h / (H / Hkv))
//   out: (B, H, Lq, D); lse: (B, H, Lq), natural log of the softmax denominator per query row
//   causal: query i sees keys j <= i + (Lk - Lq) (bottom-right aligned; Lq <= Lk required)
// Forward (FlashAttention-2): K/V tiles stream through an online softmax, the Lq x Lk score
// matrix never exists. Backward recomputes the scores tile by tile from lse and uses
// Di = rowsum(dO * O). CPU: attention_cpu.cpp; CUDA: attention_cuda.cu.
#pragma once
#include "common/common.h"

namespace pf {
struct AttnParams {
  i64 B, H, Hkv, Lq, Lk, D;  // all arrays C-contiguous in the layouts above, except:
  double scale;              // multiplies q.k (default D**-0.5 is applied by the caller)
  int causal;
  // CPU forward only: elements between consecutive (b, kv head) blocks of k and v (their rows
  // D apart within a block); 0 means Lk·D (contiguous). A KV cache decodes from views of a
  // buffer with room for more positions than Lk.
  i64 kv_bs = 0;
};
}  // namespace pf

// CPU entry points (one per ISA namespace). lse has the element type of q.
PF_DECLARE_ISA(void, attention_forward_f32,
               (const float* q, const float* k, const float* v, float* out, float* lse, const pf::AttnParams& p))
PF_DECLARE_ISA(void, attention_forward_f64,
               (const double* q, const double* k, const double* v, double* out, double* lse, const pf::AttnParams& p))
// dq: like q; dk, dv: like k. Deterministic: fixed summation order for any thread count.
PF_DECLARE_ISA(void, attention_backward_f32,
               (const float* dout, const float* q, const float* k, const float* v, const float* out, const float* lse,
                float* dq, float* dk, float* dv, const pf::AttnParams& p))
PF_DECLARE_ISA(void, attention_backward_f64,
               (const double* dout, const double* q, const double* k, const double* v, const double* out,
                const double* lse, double* dq, double* dk, double* dv, const pf::AttnParams& p))

// CUDA launchers (attention_cuda.cu). dtype: 0 float32, 1 float16, 2 bfloat16; lse is float32.
// Return a cudaError_t as int. `workspace` for the backward: a float32 device buffer of
// attention_backward_workspace(p) floats (dq accumulator and per-row Di), or null when it is 0.
namespace pf {
namespace cuda {
int attention_forward(const void* q, const void* k, const void* v, void* out, float* lse, const AttnParams& p,
                      int dtype, void* stream);
i64 attention_backward_workspace(const AttnParams& p);
int attention_backward(const void* dout, const void* q, const void* k, const void* v, const void* out,
                       const float* lse, void* dq, void* dk, void* dv, float* workspace, const AttnParams& p,
                       int dtype, void* stream);
}  // namespace cuda
}  // namespace pf
