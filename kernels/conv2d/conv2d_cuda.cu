// kernels/conv2d/conv2d_cuda.cu: 2-D convolution on NVIDIA GPUs, all three passes as
// implicit GEMMs (no im2col buffer): each thread block stages a BM × BK tile of A and a
// BK × BN tile of B in shared memory, gathering B straight from the NCHW tensor.
//
//   pass             M (rows)     N (cols)          reduction        A / B
//   forward          Kg           N·P·Q             Cg·R·S           W / x gathered (im2col)
//   backward-data    Cg           N·H·W             Kg·R·S           W (transposed) / dy
//                    gathered where (h + pad - r·dil) is a multiple of the stride (no atomics)
//   backward-weight  Kg           Cg·R·S            N·P·Q, split     dy / x gathered
//                    over blockIdx.z and reduced with float32 atomics into a workspace
//   (groups: blockIdx.z; conv_transpose2d reuses these from the Python layer)
//
// Variants: float32 storage → SIMT kernel, 256 threads, 4×4 outputs per thread;
// float16 / bfloat16 storage → WMMA tensor cores (16×16×16 fragments, 4 warps of 32×32),
// float32 accumulation. All index math is 64-bit. Launched on the caller's stream.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <type_traits>

#include "common/cuda_dtypes.cuh"
#include "common/dtype.h"
#include "conv2d/conv2d.h"

namespace pf {
namespace cuda {
namespace {

constexpr int BM = 64, BN = 64, BK = 16;

// x[n, g*Cg + c, p*sh - pt + r*dh, q*sw - pl + s*dw] for reduction index k = (c, r, s) and
// output pixel (img, pp, q); zero outside the input.
template <class T>
__device__ __forceinline__ float gather_x(const T* __restrict__ x, const Conv2dParams& p, i64 g, i64 k, i64 img,
                                          i64 pp, i64 q) {
  const i64 RS = p.R * p.S, Cg = p.C / p.groups;
  const i64 c = k / RS, rs = k - c * RS, r = rs / p.S, s = rs - r * p.S;
  const i64 ih = pp * p.stride_h - p.pad_top + r * p.dil_h;
  const i64 iw = q * p.stride_w - p.pad_left + s * p.dil_w;
  if (ih < 0 || ih >= p.H || iw < 0 || iw >= p.W) return 0.f;
  return to_f(x[((img * p.C + g * Cg + c) * p.H + ih) * p.W + iw]);
}

// ---------------------------------------------------------------- the three index maps
template <class T>
struct FwdMap {  // out (Kg × N·PQ) = W (Kg × CgRS) · col(x)
  const T* x; const T* w; const T* bias; T* out; Conv2dParams p;
  i64 M, N, Kr;
  __device__ float a(i64 g, i64 m, i64 k) const {
    return to_f(w[(g * (p.K / p.groups) + m) * Kr + k]);
  }
  __device__ float b(i64 g, i64 k, i64 n) const {
    const i64 PQ = p.P * p.Q, img = n / PQ, pq = n - img * PQ, pp = pq / p.Q;
    return gather_x(x, p, g, k, img, pp, pq - pp * p.Q);
  }
  __device__ void store(i64 g, i64 m, i64 n, float v) const {
    const i64 PQ = p.P * p.Q, img = n / PQ, pq = n - img * PQ, ko = g * (p.K / p.groups) + m;
    if (bias) v += to_f(bias[ko]);
    out[(img * p.K + ko) * PQ + pq] = from_f<T>(v);
  }
};

template <class T>
struct BwdDataMap {  // dx (Cg × N·HW) = Σ_{k,r,s} W[k, c, r, s] · dy at the matching pixel
  const T* dy; const T* w; T* dx; Conv2dParams p;
  i64 M, N, Kr;
  __device__ float a(i64 g, i64 m, i64 k) const {
    const i64 RS = p.R * p.S, Kg = p.K / p.groups, Cg = p.C / p.groups;
    const i64 kk = k / RS, rs = k - kk * RS;
    return to_f(w[((g * Kg + kk) * Cg + m) * RS + rs]);
  }
  __device__ float b(i64 g, i64 k, i64 n) const {
    const i64 RS = p.R * p.S, Kg = p.K / p.groups, HW = p.H * p.W;
    const i64 kk = k / RS, rs = k - kk * RS, r = rs / p.S, s = rs - r * p.S;
    const i64 img = n / HW, hw = n - img * HW, h = hw / p.W, wc = hw - h * p.W;
    const i64 th = h + p.pad_top - r * p.dil_h, tw = wc + p.pad_left - s * p.dil_w;
    if (th < 0 || tw < 0 || th % p.stride_h || tw % p.stride_w) return 0.f;
    const i64 pp = th / p.stride_h, q = tw / p.stride_w;
    if (pp >= p.P || q >= p.Q) return 0.f;
    return to_f(dy[((img * p.K + g * Kg + kk) * p.P + pp) * p.Q + q]);
  }
  __device__ void store(i64 g, i64 m, i64 n, float v) const {
    const i64 HW = p.H * p.W, img = n / HW, hw = n - img * HW;
    dx[(img * p.C + g * (p.C / p.groups) + m) * HW + hw] = from_f<T>(v);
  }
};

template <class T>
struct BwdWeightMap {  // dW (Kg × CgRS) = Σ_{img, pq} dy · col(x)ᵀ, into a float32 workspace
  const T* x; const T* dy; float* ws; Conv2dParams p;
  i64 M, N, Kr;
  __device__ float a(i64 g, i64 m, i64 k) const {
    const i64 PQ = p.P * p.Q, img = k / PQ, pq = k - img * PQ;
    return to_f(dy[(img * p.K + g * (p.K / p.groups) + m) * PQ + pq]);
  }
  __device__ float b(i64 g, i64 k, i64 n) const {
    const i64 PQ = p.P * p.Q, img = k / PQ, pq = k - img * PQ, pp = pq / p.Q;
    return gather_x(x, p, g, n, img, pp, pq - pp * p.Q);
  }
  __device__ void store(i64 g, i64 m, i64 n, float v) const {
    atomicAdd(ws + (g * (p.K / p.groups) + m) * N + n, v);
  }
};

// blockIdx.z = group * splits + split; a split covers reduction [k_lo, k_hi).
__device__ __forceinline__ void split_range(i64 Kr, int splits, int split, i64& k_lo, i64& k_hi) {
  const i64 chunk = ((Kr + splits - 1) / splits + BK - 1) / BK * BK;
  k_lo = chunk * split;
  k_hi = k_lo + chunk < Kr ? k_lo + chunk : Kr;
}

// ---------------------------------------------------------------- float32: SIMT tiles
template <class Map>
__global__ void __launch_bounds__(256) igemm_simt(Map map, int splits) {
  __shared__ float As[BK][BM + 4];
  __shared__ float Bs[BK][BN + 4];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const i64 g = blockIdx.z / splits;
  const int split = blockIdx.z % splits;
  const i64 m0 = i64(blockIdx.y) * BM, n0 = i64(blockIdx.x) * BN;
  i64 k_lo, k_hi;
  split_range(map.Kr, splits, split, k_lo, k_hi);
  float acc[4][4] = {};
  for (i64 k0 = k_lo; k0 < k_hi; k0 += BK) {
    // 1024 elements of each tile, 4 per thread; consecutive threads walk m (A) / n (B)
    // so the gathers of B coalesce along output pixels.
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int idx = tid + e * 256, mm = idx % BM, kk = idx / BM;
      const i64 m = m0 + mm, k = k0 + kk;
      As[kk][mm] = (m < map.M && k < k_hi) ? map.a(g, m, k) : 0.f;
      const int nn = idx % BN;
      const i64 n = n0 + nn;
      Bs[kk][nn] = (n < map.N && k < k_hi) ? map.b(g, k, n) : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      float av[4], bv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) av[i] = As[kk][ty * 4 + i];
#pragma unroll
      for (int j = 0; j < 4; ++j) bv[j] = Bs[kk][tx * 4 + j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const i64 m = m0 + ty * 4 + i, n = n0 + tx * 4 + j;
      if (m < map.M && n < map.N) map.store(g, m, n, acc[i][j]);
    }
}

// ---------------------------------------------------------------- float16/bfloat16: WMMA
template <class T, class Map>
__global__ void __launch_bounds__(128) igemm_wmma(Map map, int splits) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  using namespace nvcuda;
  constexpr int LDA = BK + 8, LDB = BN + 8, LDC = BN + 4;  // ldm: multiple of 8 (16-bit) / 4 (float)
  __shared__ __align__(32) T As[BM * LDA];
  __shared__ __align__(32) T Bs[BK * LDB];
  __shared__ __align__(32) float Cs[BM * LDC];
  const int tid = threadIdx.x, warp = tid / 32, wm = warp / 2, wn = warp % 2;
  const i64 g = blockIdx.z / splits;
  const int split = blockIdx.z % splits;
  const i64 m0 = i64(blockIdx.y) * BM, n0 = i64(blockIdx.x) * BN;
  i64 k_lo, k_hi;
  split_range(map.Kr, splits, split, k_lo, k_hi);
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.f);
  for (i64 k0 = k_lo; k0 < k_hi; k0 += BK) {
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const int idx = tid + e * 128;
      {  // A: row-major BM × BK; consecutive threads walk k (weights are k-contiguous)
        const int mm = idx / BK, kk = idx % BK;
        const i64 m = m0 + mm, k = k0 + kk;
        As[mm * LDA + kk] = from_f<T>((m < map.M && k < k_hi) ? map.a(g, m, k) : 0.f);
      }
      {  // B: row-major BK × BN; consecutive threads walk n (pixels)
        const int kk = idx / BN, nn = idx % BN;
        const i64 n = n0 + nn, k = k0 + kk;
        Bs[kk * LDB + nn] = from_f<T>((n < map.N && k < k_hi) ? map.b(g, k, n) : 0.f);
      }
    }
    __syncthreads();
    wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa[2];
    wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> fb[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) wmma::load_matrix_sync(fa[i], As + (wm * 32 + i * 16) * LDA, LDA);
#pragma unroll
    for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(fb[j], Bs + wn * 32 + j * 16, LDB);
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j)
      wmma::store_matrix_sync(Cs + (wm * 32 + i * 16) * LDC + wn * 32 + j * 16, acc[i][j], LDC, wmma::mem_row_major);
  __syncthreads();
  for (int idx = tid; idx < BM * BN; idx += 128) {
    const int mm = idx / BN, nn = idx % BN;
    const i64 m = m0 + mm, n = n0 + nn;
    if (m < map.M && n < map.N) map.store(g, m, n, Cs[mm * LDC + nn]);
  }
#else
  __trap();  // tensor-core path needs sm_80+; the host never launches it on older GPUs
#endif
}

template <class T>
__global__ void to_dtype(const float* __restrict__ src, T* __restrict__ dst, i64 n) {
  for (i64 i = blockIdx.x * i64(blockDim.x) + threadIdx.x; i < n; i += i64(gridDim.x) * blockDim.x)
    dst[i] = from_f<T>(src[i]);
}

// db[k] = Σ_{img, pq} dy[img, k, pq]: one block per channel, fixed order (deterministic).
template <class T>
__global__ void __launch_bounds__(256) bias_grad(const T* __restrict__ dy, T* __restrict__ db, i64 N, i64 K,
                                                 i64 PQ) {
  __shared__ float red[256];
  const i64 k = blockIdx.x;
  float s = 0.f;
  for (i64 i = threadIdx.x; i < N * PQ; i += 256) {
    const i64 img = i / PQ, pq = i - img * PQ;
    s += to_f(dy[(img * K + k) * PQ + pq]);
  }
  red[threadIdx.x] = s;
  __syncthreads();
  for (int w = 128; w > 0; w >>= 1) {
    if (threadIdx.x < w) red[threadIdx.x] += red[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) db[k] = from_f<T>(red[0]);
}

// The current device's compute capability major; the CUDA error when there is no device, so
// a missing GPU is reported as such rather than as a missing kernel.
cudaError_t device_major(int* major) {
  int dev = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e != cudaSuccess) return e;
  return cudaDeviceGetAttribute(major, cudaDevAttrComputeCapabilityMajor, dev);
}

template <class T, class Map>
int launch(const Map& map, i64 groups, int splits, cudaStream_t s) {
  if (map.M == 0 || map.N == 0) return cudaSuccess;
  const i64 gx = (map.N + BN - 1) / BN, gy = (map.M + BM - 1) / BM, gz = groups * splits;
  if (gx > 0x7fffffffLL || gy > 65535 || gz > 65535) return cudaErrorInvalidConfiguration;
  const dim3 grid{unsigned(gx), unsigned(gy), unsigned(gz)};
  if constexpr (std::is_same<T, float>::value) {
    igemm_simt<Map><<<grid, 256, 0, s>>>(map, splits);
  } else {
    int major = 0;
    const cudaError_t e = device_major(&major);
    if (e != cudaSuccess) return e;
    if (major < 8) return cudaErrorInvalidDeviceFunction;  // WMMA bf16/f16 path: sm_80+
    igemm_wmma<T, Map><<<grid, 128, 0, s>>>(map, splits);
  }
  return cudaGetLastError();
}

template <class T>
int forward_t(const void* x, const void* w, const void* bias, void* out, const Conv2dParams& p, cudaStream_t s) {
  FwdMap<T> m{(const T*)x, (const T*)w, (const T*)bias, (T*)out, p, p.K / p.groups, p.N * p.P * p.Q,
              (p.C / p.groups) * p.R * p.S};
  return launch<T>(m, p.groups, 1, s);
}

template <class T>
int backward_data_t(const void* dy, const void* w, void* dx, const Conv2dParams& p, cudaStream_t s) {
  BwdDataMap<T> m{(const T*)dy, (const T*)w, (T*)dx, p, p.C / p.groups, p.N * p.H * p.W,
                  (p.K / p.groups) * p.R * p.S};
  return launch<T>(m, p.groups, 1, s);
}

template <class T>
int backward_weight_t(const void* x, const void* dy, void* dw, float* ws, const Conv2dParams& p, cudaStream_t s) {
  const i64 Kred = (p.C / p.groups) * p.R * p.S, total = p.K * Kred;
  cudaError_t e = cudaMemsetAsync(ws, 0, sizeof(float) * size_t(total), s);
  if (e != cudaSuccess) return e;
  BwdWeightMap<T> m{(const T*)x, (const T*)dy, ws, p, p.K / p.groups, Kred, p.N * p.P * p.Q};
  // Split the (long) pixel reduction so the grid fills the GPU: about 4096 steps a split.
  i64 splits = (m.Kr + 4095) / 4096;
  if (splits > 128) splits = 128;
  if (splits < 1) splits = 1;
  while (splits > 1 && p.groups * splits > 65535) splits /= 2;
  if (m.Kr > 0) {
    const int err = launch<T>(m, p.groups, int(splits), s);
    if (err != cudaSuccess) return err;
  }
  i64 blocks = (total + 255) / 256;
  if (blocks > 65535) blocks = 65535;
  to_dtype<T><<<unsigned(blocks), 256, 0, s>>>(ws, (T*)dw, total);
  return cudaGetLastError();
}

template <class T>
int backward_bias_t(const void* dy, void* db, const Conv2dParams& p, cudaStream_t s) {
  if (p.K == 0) return cudaSuccess;
  if (p.K > 0x7fffffffLL) return cudaErrorInvalidConfiguration;
  bias_grad<T><<<unsigned(p.K), 256, 0, s>>>((const T*)dy, (T*)db, p.N, p.K, p.P * p.Q);
  return cudaGetLastError();
}
}  // namespace

i64 conv2d_ws_floats(const Conv2dParams& p) { return p.K * (p.C / p.groups) * p.R * p.S; }

#define PF_CONV_DISPATCH(fn, ...)                                             \
  switch (dtype) {                                                            \
    case kFloat32: return fn<float>(__VA_ARGS__);                                    \
    case kFloat16: return fn<__half>(__VA_ARGS__);                                   \
    case kBFloat16: return fn<__nv_bfloat16>(__VA_ARGS__);                            \
    default: return cudaErrorInvalidValue;                                    \
  }

int conv2d_forward(const void* x, const void* w, const void* bias, void* out, const Conv2dParams& p, int dtype,
                   void* stream) {
  PF_CONV_DISPATCH(forward_t, x, w, bias, out, p, static_cast<cudaStream_t>(stream))
}
int conv2d_backward_data(const void* dy, const void* w, void* dx, const Conv2dParams& p, int dtype, void* stream) {
  PF_CONV_DISPATCH(backward_data_t, dy, w, dx, p, static_cast<cudaStream_t>(stream))
}
int conv2d_backward_weight(const void* x, const void* dy, void* dw, float* ws, const Conv2dParams& p, int dtype,
                           void* stream) {
  PF_CONV_DISPATCH(backward_weight_t, x, dy, dw, ws, p, static_cast<cudaStream_t>(stream))
}
int conv2d_backward_bias(const void* dy, void* db, const Conv2dParams& p, int dtype, void* stream) {
  PF_CONV_DISPATCH(backward_bias_t, dy, db, p, static_cast<cudaStream_t>(stream))
}
#undef PF_CONV_DISPATCH
}  // namespace cuda
}  // namespace pf
