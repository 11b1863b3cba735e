// kernels/bias_act/bias_act_cuda.cu: fused bias + activation on NVIDIA GPUs.
// Variants: float32, float16, bfloat16 storage; math in float32. One grid-stride kernel
// for the forward and one for the backward; the bias gradient is accumulated in float32
// with atomics (summation order, and so the last bits, vary from run to run).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "bias_act/bias_act.h"
#include "common/cuda_dtypes.cuh"
#include "common/dtype.h"

namespace pf {
namespace cuda {
namespace {

template <class T> __device__ __forceinline__ float load(const T* p, i64 i) { return to_f(p[i]); }
template <class T> __device__ __forceinline__ void store(T* p, i64 i, float v) { p[i] = from_f<T>(v); }

template <class T>
__global__ void forward_kernel(const T* __restrict__ x, const T* __restrict__ b, T* __restrict__ y,
                               BiasActParams p) {
  const i64 n = p.outer * p.channels * p.inner;
  const float alpha = float(p.alpha), gain = float(p.gain), clamp = float(p.clamp);
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
    const i64 c = (i / p.inner) % p.channels;
    float v = act_forward<float>(p.act, load(x, i) + (b ? load(b, c) : 0.f), alpha) * gain;
    if (clamp >= 0.f) v = fminf(fmaxf(v, -clamp), clamp);
    store(y, i, v);
  }
}

template <class T>
__global__ void backward_kernel(const T* __restrict__ gy, const T* __restrict__ x, const T* __restrict__ b,
                                T* __restrict__ gx, float* __restrict__ gb, BiasActParams p) {
  const i64 n = p.outer * p.channels * p.inner;
  const float alpha = float(p.alpha), gain = float(p.gain), clamp = float(p.clamp);
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
    const i64 c = (i / p.inner) % p.channels;
    const float v = load(x, i) + (b ? load(b, c) : 0.f);
    float g = load(gy, i) * gain * act_grad<float>(p.act, v, alpha);
    if (clamp >= 0.f) {
      const float yv = act_forward<float>(p.act, v, alpha) * gain;
      if (yv > clamp || yv < -clamp) g = 0.f;
    }
    store(gx, i, g);
    if (gb) atomicAdd(gb + c, g);
  }
}

int grid_for(i64 n) {
  i64 blocks = (n + 255) / 256;
  if (blocks > 65535LL * 16) blocks = 65535LL * 16;
  return int(blocks < 1 ? 1 : blocks);
}
}  // namespace

int bias_act_forward(const void* x, const void* b, void* y, const BiasActParams& p, int dtype, void* stream) {
  const i64 n = p.outer * p.channels * p.inner;
  if (n == 0) return cudaSuccess;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  switch (dtype) {
    case kFloat32: forward_kernel<float><<<grid_for(n), 256, 0, s>>>((const float*)x, (const float*)b, (float*)y, p); break;
    case kFloat16: forward_kernel<__half><<<grid_for(n), 256, 0, s>>>((const __half*)x, (const __half*)b, (__half*)y, p); break;
    case kBFloat16: forward_kernel<__nv_bfloat16><<<grid_for(n), 256, 0, s>>>((const __nv_bfloat16*)x, (const __nv_bfloat16*)b, (__nv_bfloat16*)y, p); break;
    default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

int bias_act_backward(const void* gy, const void* x, const void* b, void* gx, float* gb, const BiasActParams& p, int dtype, void* stream) {
  const i64 n = p.outer * p.channels * p.inner;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (gb) {
    cudaError_t e = cudaMemsetAsync(gb, 0, sizeof(float) * p.channels, s);
    if (e != cudaSuccess) return e;
  }
  if (n == 0) return cudaSuccess;
  switch (dtype) {
    case kFloat32: backward_kernel<float><<<grid_for(n), 256, 0, s>>>((const float*)gy, (const float*)x, (const float*)b, (float*)gx, gb, p); break;
    case kFloat16: backward_kernel<__half><<<grid_for(n), 256, 0, s>>>((const __half*)gy, (const __half*)x, (const __half*)b, (__half*)gx, gb, p); break;
    case kBFloat16: backward_kernel<__nv_bfloat16><<<grid_for(n), 256, 0, s>>>((const __nv_bfloat16*)gy, (const __nv_bfloat16*)x, (const __nv_bfloat16*)b, (__nv_bfloat16*)gx, gb, p); break;
    default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}
}  // namespace cuda
}  // namespace pf
