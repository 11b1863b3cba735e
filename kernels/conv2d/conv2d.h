// kernels/conv2d/conv2d.h: 2-D convolution (NCHW, torch semantics) shared by the CPU
// (conv2d_cpu.cpp: generic / AVX2+FMA / AVX-512 builds) and CUDA (conv2d_cuda.cu) kernels.
//
//   x: (N, C, H, W)   weight: (K, C/groups, R, S)   out: (N, K, P, Q)
//   out[n, k, p, q] = bias[k] + sum_{c in group(k), r, s}
//                      weight[k, c, r, s] * x[n, c, p*stride_h - pad_top + r*dil_h,
//                                              q*stride_w - pad_left + s*dil_w]
//   (taps outside the input read zero).
//
// Three passes, all GEMMs over the same index map (the forward also in bfloat16: conv2d_bf16_cpu.cpp):
//   forward          out  = W · col(x)                   per image and group
//   backward-data    dx   = col2im(Wᵀ · dy)              (conv_transpose2d's forward)
//   backward-weight  dW   = Σ_n dy · col(x)ᵀ             (fixed reduction order)
// P and Q are carried explicitly (the caller computes them): conv_transpose2d's
// output_padding makes the bottom/right pads differ from what P, Q imply, and the kernels
// only ever use pad_top/pad_left plus bounds checks against H and W.
#pragma once
#include "common/common.h"

namespace pf {
struct Conv2dParams {
  i64 N, C, H, W;        // input (N, C, H, W)
  i64 K, R, S;           // weight (K, C/groups, R, S)
  i64 P, Q;              // output (N, K, P, Q)
  i64 groups;
  i64 stride_h, stride_w, dil_h, dil_w;
  i64 pad_top, pad_left, pad_bottom, pad_right;  // bottom/right: informative (see above)
};

// Checks every kernel relies on (shapes positive, output size consistent with the pads,
// channels divisible by groups). Throws std::invalid_argument naming the argument.
inline void conv2d_check(const Conv2dParams& p) {
  PF_CHECK(p.N >= 0, "x: negative batch");
  PF_CHECK(p.C > 0 && p.H > 0 && p.W > 0, "x: channels and spatial sizes must be positive");
  PF_CHECK(p.K > 0 && p.R > 0 && p.S > 0, "weight: sizes must be positive");
  PF_CHECK(p.groups > 0 && p.C % p.groups == 0 && p.K % p.groups == 0,
           "groups: must divide both in and out channels");
  PF_CHECK(p.stride_h > 0 && p.stride_w > 0, "stride: must be positive");
  PF_CHECK(p.dil_h > 0 && p.dil_w > 0, "dilation: must be positive");
  PF_CHECK(p.pad_top >= 0 && p.pad_left >= 0, "padding: must be non-negative");
  PF_CHECK(p.P > 0 && p.Q > 0, "out: spatial size must be positive (kernel larger than padded input?)");
  // The last output row/column must start inside the padded input: (P-1)*stride - pad_top
  // is at most H - 1 + pad_bottom, which callers guarantee; here we only need every index
  // the kernels compute to stay far from overflow.
  PF_CHECK(p.H < (i64(1) << 40) && p.W < (i64(1) << 40) && p.P < (i64(1) << 40) && p.Q < (i64(1) << 40),
           "x: spatial size too large");
}

// Params of the conv2d view from its three shapes, x (N, C, H, W), w (K, C/groups, R, S),
// y (N, K, P, Q), and the 9 geometry values (stride h/w, pad top/left/bottom/right, dilation
// h/w, groups), checked against each other: what the CPU and the CUDA glue both take.
// x_name / y_name: the caller's names for x and y in error messages.
inline Conv2dParams conv2d_params(const i64* xs, const i64* ws, const i64* ys, const i64* g, const char* x_name,
                                  const char* y_name) {
  Conv2dParams p{};
  p.N = xs[0]; p.C = xs[1]; p.H = xs[2]; p.W = xs[3];
  p.K = ws[0]; p.R = ws[2]; p.S = ws[3];
  p.P = ys[2]; p.Q = ys[3];
  p.stride_h = g[0]; p.stride_w = g[1]; p.pad_top = g[2]; p.pad_left = g[3]; p.pad_bottom = g[4];
  p.pad_right = g[5]; p.dil_h = g[6]; p.dil_w = g[7]; p.groups = g[8];
  conv2d_check(p);
  PF_CHECK(ws[1] * p.groups == p.C, "weight: shape[1] * groups must equal the input channels");
  PF_CHECK(ys[0] == p.N, std::string(y_name) + ": batch differs from " + x_name);
  PF_CHECK(ys[1] == p.K, std::string(y_name) + ": channels differ from weight.shape[0]");
  return p;
}

// Stride-1 backward-data as a forward convolution: dx = conv(dy, w') with w' the flipped,
// transposed weights (C, Kg, R, S), w'[g·Cg + c][k][r][s] = w[g·Kg + k][c][R−1−r][S−1−s], and
// the pads turned around. conv2d_as_forward(p): that forward's params (valid when both pads
// come out non-negative); conv2d_flip_channel: w' of input channel gc (callers split gc).
inline Conv2dParams conv2d_as_forward(const Conv2dParams& p) {
  Conv2dParams q = p;
  q.C = p.K; q.H = p.P; q.W = p.Q; q.K = p.C; q.P = p.H; q.Q = p.W;
  q.pad_top = p.dil_h * (p.R - 1) - p.pad_top;
  q.pad_left = p.dil_w * (p.S - 1) - p.pad_left;
  return q;
}
template <class T>
inline void conv2d_flip_channel(const T* w, const Conv2dParams& p, i64 gc, T* wq) {
  const i64 Cg = p.C / p.groups, Kg = p.K / p.groups, RS = p.R * p.S;
  for (i64 k = 0; k < Kg; ++k)
    for (i64 rs = 0; rs < RS; ++rs) wq[(gc * Kg + k) * RS + rs] = w[((gc / Cg * Kg + k) * Cg + gc % Cg) * RS + RS - 1 - rs];
}
}  // namespace pf

// ---------------------------------------------------------------- CPU entry points
// All arrays C-contiguous in the layouts above; bias may be null. f32 and f64.
//   forward:          out = conv(x, w) + bias
//   backward_data:    dx  = d out/d x applied to dy   (dx fully overwritten)
//   backward_weight:  dw  = d out/d w applied to dy   (dw fully overwritten; deterministic)
//   backward_bias:    db[k] = Σ_{n,p,q} dy[n,k,p,q]   (fixed order)
PF_DECLARE_ISA(void, conv2d_forward_f32, (const float* x, const float* w, const float* bias, float* out, const pf::Conv2dParams& p))
PF_DECLARE_ISA(void, conv2d_forward_f64, (const double* x, const double* w, const double* bias, double* out, const pf::Conv2dParams& p))
PF_DECLARE_ISA(void, conv2d_backward_data_f32, (const float* dy, const float* w, float* dx, const pf::Conv2dParams& p))
PF_DECLARE_ISA(void, conv2d_backward_data_f64, (const double* dy, const double* w, double* dx, const pf::Conv2dParams& p))
PF_DECLARE_ISA(void, conv2d_backward_weight_f32, (const float* x, const float* dy, float* dw, const pf::Conv2dParams& p))
PF_DECLARE_ISA(void, conv2d_backward_weight_f64, (const double* x, const double* dy, double* dw, const pf::Conv2dParams& p))
PF_DECLARE_ISA(void, conv2d_backward_bias_f32, (const float* dy, float* db, const pf::Conv2dParams& p))
PF_DECLARE_ISA(void, conv2d_backward_bias_f64, (const double* dy, double* db, const pf::Conv2dParams& p))

#if defined(PF_X86)
// AVX-512 build only, callable where pf::cpu::has_avx512_bf16() (conv2d_bf16_cpu.cpp): the
// forward with x and w rounded to bfloat16 and float32 sums, float32 out. Same bits for any
// thread count. Returns false, writing nothing, where float32 is faster (unless `always`).
namespace pf {
namespace avx512 {
bool conv2d_forward_bf16(const float* x, const float* w, const float* bias, float* out, const Conv2dParams& p,
                         bool always);
// The same for 3×3 stride-1 layers Winograd takes (conv2d_winograd_cpu.h: float32 transforms,
// bfloat16 products); false (nothing written) for any other layer.
bool conv2d_forward_winograd_bf16(const float* x, const float* w, const float* bias, float* out, const Conv2dParams& p);
// Stride-1 backward-data through conv2d_forward_bf16 (flipped weights); false, writing nothing,
// for other strides or where float32 is faster.
bool conv2d_backward_data_bf16(const float* dy, const float* w, float* dx, const Conv2dParams& p);
}  // namespace avx512
}  // namespace pf
#endif

// ---------------------------------------------------------------- CUDA launchers
// (conv2d_cuda.cu) Device pointers; dtype: 0 float32, 1 float16, 2 bfloat16; accumulation in
// float32. `ws` is a float32 device workspace of conv2d_cuda_ws_floats(p) elements (the
// weight gradient is reduced there with atomics: not bitwise deterministic). Return a
// cudaError_t as int.
namespace pf {
namespace cuda {
i64 conv2d_ws_floats(const Conv2dParams& p);
int conv2d_forward(const void* x, const void* w, const void* bias, void* out, const Conv2dParams& p, int dtype, void* stream);
int conv2d_backward_data(const void* dy, const void* w, void* dx, const Conv2dParams& p, int dtype, void* stream);
int conv2d_backward_weight(const void* x, const void* dy, void* dw, float* ws, const Conv2dParams& p, int dtype, void* stream);
int conv2d_backward_bias(const void* dy, void* db, const Conv2dParams& p, int dtype, void* stream);
}  // namespace cuda
}  // namespace pf
