// kernels/common/cuda_dtypes.cuh: float32 math on float32 / float16 / bfloat16 storage, shared by
// every CUDA kernel: to_f(v) widens a stored value to float, from_f<T>(f) rounds to nearest-even.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace pf {
namespace cuda {
template <class T> __device__ __forceinline__ float to_f(T v) { return float(v); }
template <> __device__ __forceinline__ float to_f(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
template <class T> __device__ __forceinline__ T from_f(float v) { return T(v); }
template <> __device__ __forceinline__ __half from_f(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f(float v) { return __float2bfloat16_rn(v); }
}  // namespace cuda
}  // namespace pf
