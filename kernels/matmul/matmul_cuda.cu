// kernels/matmul/matmul_cuda.cu: GEMM on NVIDIA GPUs, C = A @ B (+ bias[j]), batched, any
// strides for A and B (see matmul.h), C row-major with unit column stride.
// Variants:
//   simt_kernel  float32 (and float16 / bfloat16 where tensor cores are missing):
//                64×64 C tile per 256-thread block, 16-deep k slabs staged in shared
//                memory, each thread accumulates a 4×4 sub-tile in registers.
//   wmma_kernel  float16 / bfloat16 on tensor cores (sm_80+; the body is empty below): 64×64 C tile per
//                4-warp block, each warp 2×2 fragments of 16×16×16, float32 accumulators.
// Both reduce over k in a fixed order (no split-K, no atomics): deterministic results.
// Operands are loaded element-wise with bounds checks (zeros outside), which is what lets
// transposed and non-contiguous views go straight in without a copy.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include "common/cuda_dtypes.cuh"
#include "common/dtype.h"
#include "matmul/matmul.h"

namespace pf {
namespace cuda {
namespace {

constexpr int BM = 64, BN = 64, BK = 16;

// Grid: x over M tiles, y (strided) over N tiles, z (strided) over the batch.
template <class T>
__global__ void __launch_bounds__(256) simt_kernel(const T* __restrict__ a, const T* __restrict__ b,
                                                   const T* __restrict__ bias, T* __restrict__ c, GemmParams p) {
  __shared__ float As[BK][BM + 4];  // As[k][i]: +4 keeps the transposed stores off one bank
  __shared__ float Bs[BK][BN + 4];
  const int tid = threadIdx.x;
  const int tx = tid % 16, ty = tid / 16;  // thread's 4×4 sub-tile: rows ty*4.., cols tx*4..
  const i64 ntn = (p.N + BN - 1) / BN;
  const i64 m0 = i64(blockIdx.x) * BM;
  for (i64 bt = blockIdx.z; bt < p.batch; bt += gridDim.z) {
    const T* A = a + bt * p.a_bs;
    const T* B = b + bt * p.b_bs;
    T* C = c + bt * p.c_bs;
    for (i64 tn = blockIdx.y; tn < ntn; tn += gridDim.y) {
      const i64 n0 = tn * BN;
      float acc[4][4] = {};
      for (i64 k0 = 0; k0 < p.K; k0 += BK) {
        // 1024 elements of each operand per slab, 4 per thread.
        for (int e = tid; e < BM * BK; e += 256) {
          const int i = e / BK, k = e % BK;
          const i64 gi = m0 + i, gk = k0 + k;
          As[k][i] = (gi < p.M && gk < p.K) ? to_f(A[gi * p.a_rs + gk * p.a_cs]) : 0.f;
        }
        for (int e = tid; e < BK * BN; e += 256) {
          const int k = e / BN, j = e % BN;
          const i64 gk = k0 + k, gj = n0 + j;
          Bs[k][j] = (gk < p.K && gj < p.N) ? to_f(B[gk * p.b_rs + gj * p.b_cs]) : 0.f;
        }
        __syncthreads();
#pragma unroll
        for (int k = 0; k < BK; ++k) {
          float av[4], bv[4];
#pragma unroll
          for (int r = 0; r < 4; ++r) av[r] = As[k][ty * 4 + r];
#pragma unroll
          for (int s = 0; s < 4; ++s) bv[s] = Bs[k][tx * 4 + s];
#pragma unroll
          for (int r = 0; r < 4; ++r)
#pragma unroll
            for (int s = 0; s < 4; ++s) acc[r][s] = fmaf(av[r], bv[s], acc[r][s]);
        }
        __syncthreads();
      }
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const i64 gi = m0 + ty * 4 + r;
        if (gi >= p.M) continue;
#pragma unroll
        for (int s = 0; s < 4; ++s) {
          const i64 gj = n0 + tx * 4 + s;
          if (gj >= p.N) continue;
          float v = acc[r][s];
          if (bias) v += to_f(bias[gj]);
          C[gi * p.c_rs + gj] = from_f<T>(v);
        }
      }
    }
  }
}

// Tensor-core kernel for 16-bit storage. Compiled only where the fragment type exists.
template <class T>
__global__ void __launch_bounds__(128) wmma_kernel(const T* __restrict__ a, const T* __restrict__ b,
                                                   const T* __restrict__ bias, T* __restrict__ c, GemmParams p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  using namespace nvcuda;
  constexpr int LDA = BK + 8, LDB = BN + 8, LDC = BN + 4;  // ld multiples of 8 (16-bit) / 4 (float)
  __shared__ __align__(32) T As[BM * LDA];                 // As[i][k]
  __shared__ __align__(32) T Bs[BK * LDB];                 // Bs[k][j]
  __shared__ __align__(32) float Cs[BM * LDC];
  const int tid = threadIdx.x, warp = tid / 32;
  const int wm = (warp / 2) * 32, wn = (warp % 2) * 32;  // warp's 32×32 corner of the tile
  const i64 ntn = (p.N + BN - 1) / BN;
  const i64 m0 = i64(blockIdx.x) * BM;
  const T zero = from_f<T>(0.f);
  for (i64 bt = blockIdx.z; bt < p.batch; bt += gridDim.z) {
    const T* A = a + bt * p.a_bs;
    const T* B = b + bt * p.b_bs;
    T* C = c + bt * p.c_bs;
    for (i64 tn = blockIdx.y; tn < ntn; tn += gridDim.y) {
      const i64 n0 = tn * BN;
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
      for (int x = 0; x < 2; ++x)
#pragma unroll
        for (int y = 0; y < 2; ++y) wmma::fill_fragment(acc[x][y], 0.f);
      for (i64 k0 = 0; k0 < p.K; k0 += BK) {
        for (int e = tid; e < BM * BK; e += 128) {
          const int i = e / BK, k = e % BK;
          const i64 gi = m0 + i, gk = k0 + k;
          As[i * LDA + k] = (gi < p.M && gk < p.K) ? A[gi * p.a_rs + gk * p.a_cs] : zero;
        }
        for (int e = tid; e < BK * BN; e += 128) {
          const int k = e / BN, j = e % BN;
          const i64 gk = k0 + k, gj = n0 + j;
          Bs[k * LDB + j] = (gk < p.K && gj < p.N) ? B[gk * p.b_rs + gj * p.b_cs] : zero;
        }
        __syncthreads();
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa[2];
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> fb[2];
#pragma unroll
        for (int x = 0; x < 2; ++x) wmma::load_matrix_sync(fa[x], As + (wm + x * 16) * LDA, LDA);
#pragma unroll
        for (int y = 0; y < 2; ++y) wmma::load_matrix_sync(fb[y], Bs + wn + y * 16, LDB);
#pragma unroll
        for (int x = 0; x < 2; ++x)
#pragma unroll
          for (int y = 0; y < 2; ++y) wmma::mma_sync(acc[x][y], fa[x], fb[y], acc[x][y]);
        __syncthreads();
      }
#pragma unroll
      for (int x = 0; x < 2; ++x)
#pragma unroll
        for (int y = 0; y < 2; ++y)
          wmma::store_matrix_sync(Cs + (wm + x * 16) * LDC + wn + y * 16, acc[x][y], LDC, wmma::mem_row_major);
      __syncthreads();
      for (int e = tid; e < BM * BN; e += 128) {
        const int i = e / BN, j = e % BN;
        const i64 gi = m0 + i, gj = n0 + j;
        if (gi < p.M && gj < p.N) {
          float v = Cs[i * LDC + j];
          if (bias) v += to_f(bias[gj]);
          C[gi * p.c_rs + gj] = from_f<T>(v);
        }
      }
      __syncthreads();  // Cs is rewritten by the next tile
    }
  }
#endif
}

template <class T>
__global__ void fill_kernel(const T* __restrict__ bias, T* __restrict__ c, GemmParams p) {
  // K == 0: C = bias (or zeros).
  const i64 n = p.batch * p.M * p.N;
  for (i64 e = blockIdx.x * i64(blockDim.x) + threadIdx.x; e < n; e += i64(gridDim.x) * blockDim.x) {
    const i64 j = e % p.N, i = (e / p.N) % p.M, bt = e / (p.N * p.M);
    c[bt * p.c_bs + i * p.c_rs + j] = bias ? bias[j] : from_f<T>(0.f);
  }
}

template <class T>
int launch(const void* a, const void* b, const void* bias, void* c, const GemmParams& p, bool tensor_cores,
           cudaStream_t s) {
  const T* A = static_cast<const T*>(a);
  const T* B = static_cast<const T*>(b);
  const T* Bi = static_cast<const T*>(bias);
  T* C = static_cast<T*>(c);
  if (p.K == 0) {
    const i64 n = p.batch * p.M * p.N;
    i64 blocks = (n + 255) / 256;
    if (blocks > 65535) blocks = 65535;
    fill_kernel<T><<<unsigned(blocks), 256, 0, s>>>(Bi, C, p);
    return cudaGetLastError();
  }
  const i64 mt = (p.M + BM - 1) / BM, nt = (p.N + BN - 1) / BN;
  if (mt > 0x7fffffffLL) return cudaErrorInvalidValue;
  // y and z are capped at 65535; the kernels stride over what does not fit.
  dim3 grid(unsigned(mt), unsigned(nt < 65535 ? nt : 65535), unsigned(p.batch < 65535 ? p.batch : 65535));
  if constexpr (sizeof(T) == 2) {  // no float32 WMMA fragment: instantiate for 16-bit types only
    if (tensor_cores) {
      wmma_kernel<T><<<grid, 128, 0, s>>>(A, B, Bi, C, p);
      return cudaGetLastError();
    }
  }
  simt_kernel<T><<<grid, 256, 0, s>>>(A, B, Bi, C, p);
  return cudaGetLastError();
}
}  // namespace

int gemm(const void* a, const void* b, const void* bias, void* c, const GemmParams& p, int dtype, void* stream) {
  if (p.batch <= 0 || p.M <= 0 || p.N <= 0) return cudaSuccess;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  int dev = 0, major = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e != cudaSuccess) return e;
  e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  if (e != cudaSuccess) return e;
  switch (dtype) {
    case kFloat32: return launch<float>(a, b, bias, c, p, false, s);
    case kFloat16: return launch<__half>(a, b, bias, c, p, major >= 8, s);
    case kBFloat16: return launch<__nv_bfloat16>(a, b, bias, c, p, major >= 8, s);
    default: return cudaErrorInvalidValue;
  }
}
}  // namespace cuda
}  // namespace pf
