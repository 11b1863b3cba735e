// kernels/attention/attention_cuda.cu: flash-style attention forward and backward on NVIDIA GPUs.
// Variants: float32 (CUDA-core FMAs), float16 and bfloat16 (tensor cores through WMMA 16x16x16,
// sm_80+), all accumulating in float32; head dim D <= 128 (zero-padded to a multiple of 16
// in shared memory, so any D works).
//
// Forward: one block of 4 warps per (batch, head, query tile). The query tile stays in shared
// memory while K/V tiles stream through; S = Q K^T goes to shared memory in float32, an online
// softmax (one warp per row, base-2 exponent with scale*log2(e)) turns it into P, and the
// float32 output tile is rescaled and accumulated with O += P V. Causal: key tiles past the
// diagonal are never loaded. The Lq x Lk matrix never exists; lse is written per row.
// Backward (FlashAttention-2): a small kernel computes Di = rowsum(dO * O); then one block per
// (batch, kv head, key tile) keeps dK/dV tiles in shared memory and loops over the query heads
// that share the kv head and over their query tiles in order (dK/dV deterministic); P is
// recomputed from lse; dQ is added with float32 atomics into a workspace (order varies), and a
// last kernel scales and converts it.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <type_traits>

#include "attention/attention.h"
#include "common/cuda_dtypes.cuh"
#include "common/dtype.h"

namespace pf {
namespace cuda {
namespace {
constexpr int kThreads = 128;  // 4 warps
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

template <class T> constexpr bool kTensorCore = !std::is_same<T, float>::value;

// Leading dimension of a T tile of width Dp in shared memory: WMMA needs a multiple of 8
// elements (16 bytes); the +8 / +1 skew spreads rows over the banks.
template <class T> __host__ __device__ constexpr int ld_of(int Dp) { return kTensorCore<T> ? Dp + 8 : Dp + 1; }
__host__ __device__ constexpr int ldf_of(int n) { return n + 4; }  // float tiles (WMMA: multiple of 4)

__host__ __device__ inline size_t align128(size_t x) { return (x + 127) / 128 * 128; }

// C (M x N, float, ldc) = or += op(A) (M x K) . op(B) (K x N); A(m,k) = TA ? A[k*lda+m] : A[m*lda+k],
// B(k,n) = TB ? B[n*ldb+k] : B[k*ldb+n]. All operands in shared memory; M, N, K multiples of 16.
// The whole block calls it; no barrier inside.
template <class T, bool TA, bool TB>
__device__ void block_mm(const T* A, int lda, const T* B, int ldb, float* C, int ldc, int M, int N, int K, bool acc) {
  if constexpr (kTensorCore<T>) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    using namespace nvcuda;
    using LA = typename std::conditional<TA, wmma::col_major, wmma::row_major>::type;
    using LB = typename std::conditional<TB, wmma::col_major, wmma::row_major>::type;
    const int warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
    const int tn = N / 16, tiles = (M / 16) * tn;
    for (int t = warp; t < tiles; t += nwarps) {
      const int mi = t / tn, ni = t % tn;
      float* cp = C + mi * 16 * ldc + ni * 16;
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> c;
      if (acc) wmma::load_matrix_sync(c, cp, ldc, wmma::mem_row_major);
      else wmma::fill_fragment(c, 0.f);
      for (int k0 = 0; k0 < K; k0 += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, LA> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, LB> b;
        wmma::load_matrix_sync(a, TA ? A + k0 * lda + mi * 16 : A + mi * 16 * lda + k0, lda);
        wmma::load_matrix_sync(b, TB ? B + ni * 16 * ldb + k0 : B + k0 * ldb + ni * 16, ldb);
        wmma::mma_sync(c, a, b, c);
      }
      wmma::store_matrix_sync(cp, c, ldc, wmma::mem_row_major);
    }
#else
    __trap();  // built only for sm_80+; never reached
#endif
  } else {
    for (int idx = threadIdx.x; idx < M * N; idx += blockDim.x) {
      const int m = idx / N, n = idx % N;
      float s = acc ? C[m * ldc + n] : 0.f;
      for (int k = 0; k < K; ++k) {
        const float a = to_f(TA ? A[k * lda + m] : A[m * lda + k]);
        const float b = to_f(TB ? B[n * ldb + k] : B[k * ldb + n]);
        s = fmaf(a, b, s);
      }
      C[m * ldc + n] = s;
    }
  }
}

// rows [r0, r0 + rows) of a (L, D) matrix -> tile (R x Dp, ld), zeros outside.
template <class T>
__device__ void load_tile(T* tile, int ld, const T* src, i64 r0, i64 L, i64 D, int R, int Dp) {
  for (int idx = threadIdx.x; idx < R * Dp; idx += blockDim.x) {
    const int r = idx / Dp, d = idx % Dp;
    const i64 gr = r0 + r;
    tile[r * ld + d] = (gr < L && d < D) ? src[gr * D + d] : from_f<T>(0.f);
  }
}

// ------------------------------------------------------------------ forward
template <int BM, int BN, class T>
struct FwdSmem {
  int Dp;
  __host__ __device__ size_t q() const { return 0; }
  __host__ __device__ size_t k() const { return q() + align128(sizeof(T) * BM * ld_of<T>(Dp)); }
  __host__ __device__ size_t v() const { return k() + align128(sizeof(T) * BN * ld_of<T>(Dp)); }
  __host__ __device__ size_t s() const { return v() + align128(sizeof(T) * BN * ld_of<T>(Dp)); }
  __host__ __device__ size_t p() const { return s() + align128(sizeof(float) * BM * ldf_of(BN)); }
  __host__ __device__ size_t o() const { return p() + align128(sizeof(T) * BM * (BN + 8)); }
  __host__ __device__ size_t stats() const { return o() + align128(sizeof(float) * BM * ldf_of(Dp)); }
  __host__ __device__ size_t total() const { return stats() + align128(sizeof(float) * 3 * BM); }
};

template <int BM, int BN, class T>
__global__ void __launch_bounds__(kThreads) forward_kernel(const T* __restrict__ q, const T* __restrict__ k,
                                                           const T* __restrict__ v, T* __restrict__ out,
                                                           float* __restrict__ lse, AttnParams p, int Dp) {
  extern __shared__ __align__(128) unsigned char smem[];
  const FwdSmem<BM, BN, T> lay{Dp};
  T* Qs = reinterpret_cast<T*>(smem + lay.q());
  T* Ks = reinterpret_cast<T*>(smem + lay.k());
  T* Vs = reinterpret_cast<T*>(smem + lay.v());
  float* Ss = reinterpret_cast<float*>(smem + lay.s());
  T* Ps = reinterpret_cast<T*>(smem + lay.p());
  float* Os = reinterpret_cast<float*>(smem + lay.o());
  float* m_s = reinterpret_cast<float*>(smem + lay.stats());
  float* l_s = m_s + BM;
  float* a_s = l_s + BM;
  const int ldt = ld_of<T>(Dp), lds = ldf_of(BN), ldo = ldf_of(Dp), ldp = BN + 8;

  const i64 nqt = (p.Lq + BM - 1) / BM;
  const i64 it = blockIdx.x % nqt, bh = blockIdx.x / nqt;
  const i64 b = bh / p.H, h = bh % p.H, G = p.H / p.Hkv, hk = h / G, off = p.Lk - p.Lq;
  const i64 i0 = it * BM;
  const i64 rows = (p.Lq - i0) < BM ? (p.Lq - i0) : BM;
  const T* Qg = q + bh * p.Lq * p.D;
  const T* Kg = k + (b * p.Hkv + hk) * p.Lk * p.D;
  const T* Vg = v + (b * p.Hkv + hk) * p.Lk * p.D;
  const float c2 = float(p.scale) * kLog2e;

  load_tile(Qs, ldt, Qg, i0, p.Lq, p.D, BM, Dp);
  for (int idx = threadIdx.x; idx < BM * ldo; idx += blockDim.x) Os[idx] = 0.f;
  for (int r = threadIdx.x; r < BM; r += blockDim.x) m_s[r] = -INFINITY, l_s[r] = 0.f;
  const i64 kend = p.causal ? ((i0 + rows + off) < p.Lk ? (i0 + rows + off) : p.Lk) : p.Lk;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nwarps = blockDim.x / 32;

  for (i64 j0 = 0; j0 < kend; j0 += BN) {
    __syncthreads();  // previous P.V done with Ks/Vs/Ps
    load_tile(Ks, ldt, Kg, j0, kend, p.D, BN, Dp);
    load_tile(Vs, ldt, Vg, j0, kend, p.D, BN, Dp);
    __syncthreads();
    block_mm<T, false, true>(Qs, ldt, Ks, ldt, Ss, lds, BM, BN, Dp, false);  // S = Q K^T
    __syncthreads();
    // online softmax: one warp per row, lanes over keys
    for (int r = warp; r < BM; r += nwarps) {
      const i64 i = i0 + r;
      float mx = -INFINITY;
      for (int c = lane; c < BN; c += 32) {
        const i64 j = j0 + c;
        const bool ok = j < kend && (!p.causal || j <= i + off);
        const float s = ok ? Ss[r * lds + c] * c2 : -INFINITY;
        Ss[r * lds + c] = s;
        mx = fmaxf(mx, s);
      }
      for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
      const float mold = m_s[r];
      const float mnew = fmaxf(mold, mx);
      const float mref = mnew == -INFINITY ? 0.f : mnew;  // a row with nothing visible yet stays at zero
      float sum = 0.f;
      for (int c = lane; c < BN; c += 32) {
        const float e = exp2f(Ss[r * lds + c] - mref);
        Ps[r * ldp + c] = from_f<T>(e);
        if constexpr (!kTensorCore<T>) Ss[r * lds + c] = e;
        sum += e;
      }
      for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
      __syncwarp();
      if (lane == 0) {
        const float alpha = exp2f(mold - mref);  // mold = -inf: 0
        a_s[r] = alpha;
        m_s[r] = mnew;
        l_s[r] = l_s[r] * alpha + sum;
      }
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < BM * Dp; idx += blockDim.x) {
      const int r = idx / Dp, d = idx % Dp;
      Os[r * ldo + d] *= a_s[r];
    }
    __syncthreads();
    if constexpr (kTensorCore<T>) block_mm<T, false, false>(Ps, ldp, Vs, ldt, Os, ldo, BM, Dp, BN, true);
    else block_mm<float, false, false>(Ss, lds, reinterpret_cast<const float*>(Vs), ldt, Os, ldo, BM, Dp, BN, true);
  }
  __syncthreads();
  T* Og = out + bh * p.Lq * p.D;
  for (int idx = threadIdx.x; idx < rows * p.D; idx += blockDim.x) {
    const int r = idx / int(p.D), d = idx % int(p.D);
    Og[(i0 + r) * p.D + d] = from_f<T>(Os[r * ldo + d] / l_s[r]);
  }
  for (int r = threadIdx.x; r < rows; r += blockDim.x) lse[bh * p.Lq + i0 + r] = (m_s[r] + log2f(l_s[r])) * kLn2;
}

// ------------------------------------------------------------------ backward
// Di = rowsum(dO * O) per query row, one warp per row.
template <class T>
__global__ void rowdot_kernel(const T* __restrict__ dout, const T* __restrict__ out, float* __restrict__ di, i64 rows,
                              i64 D) {
  const i64 row = (blockIdx.x * (i64)blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  float s = 0.f;
  for (i64 d = lane; d < D; d += 32) s += to_f(dout[row * D + d]) * to_f(out[row * D + d]);
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  if (lane == 0) di[row] = s;
}

template <class T>
__global__ void finish_dq_kernel(const float* __restrict__ acc, T* __restrict__ dq, i64 n, float scale) {
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x)
    dq[i] = from_f<T>(acc[i] * scale);
}

template <int BM, int BN, class T>
struct BwdSmem {
  int Dp;
  __host__ __device__ size_t k() const { return 0; }
  __host__ __device__ size_t v() const { return k() + align128(sizeof(T) * BN * ld_of<T>(Dp)); }
  __host__ __device__ size_t dk() const { return v() + align128(sizeof(T) * BN * ld_of<T>(Dp)); }
  __host__ __device__ size_t dv() const { return dk() + align128(sizeof(float) * BN * ldf_of(Dp)); }
  __host__ __device__ size_t q() const { return dv() + align128(sizeof(float) * BN * ldf_of(Dp)); }
  __host__ __device__ size_t dout() const { return q() + align128(sizeof(T) * BM * ld_of<T>(Dp)); }
  __host__ __device__ size_t s() const { return dout() + align128(sizeof(T) * BM * ld_of<T>(Dp)); }
  __host__ __device__ size_t dp() const { return s() + align128(sizeof(float) * BM * ldf_of(BN)); }
  __host__ __device__ size_t pt() const { return dp() + align128(sizeof(float) * BM * ldf_of(BN)); }
  __host__ __device__ size_t dst() const { return pt() + align128(sizeof(T) * BM * (BN + 8)); }
  __host__ __device__ size_t dq() const { return dst() + align128(sizeof(T) * BM * (BN + 8)); }
  __host__ __device__ size_t stats() const { return dq() + align128(sizeof(float) * BM * ldf_of(Dp)); }
  __host__ __device__ size_t total() const { return stats() + align128(sizeof(float) * 2 * BM); }
};

template <int BM, int BN, class T>
__global__ void __launch_bounds__(kThreads) backward_kernel(const T* __restrict__ dout, const T* __restrict__ q,
                                                            const T* __restrict__ k, const T* __restrict__ v,
                                                            const float* __restrict__ lse,
                                                            const float* __restrict__ di, float* __restrict__ dq_acc,
                                                            T* __restrict__ dk, T* __restrict__ dv, AttnParams p,
                                                            int Dp) {
  extern __shared__ __align__(128) unsigned char smem[];
  const BwdSmem<BM, BN, T> lay{Dp};
  T* Ks = reinterpret_cast<T*>(smem + lay.k());
  T* Vs = reinterpret_cast<T*>(smem + lay.v());
  float* dKs = reinterpret_cast<float*>(smem + lay.dk());
  float* dVs = reinterpret_cast<float*>(smem + lay.dv());
  T* Qs = reinterpret_cast<T*>(smem + lay.q());
  T* dOs = reinterpret_cast<T*>(smem + lay.dout());
  float* Ss = reinterpret_cast<float*>(smem + lay.s());
  float* dPs = reinterpret_cast<float*>(smem + lay.dp());
  T* Pt = reinterpret_cast<T*>(smem + lay.pt());    // P (BM x BN, ld BN+8) as a T operand
  T* dSt = reinterpret_cast<T*>(smem + lay.dst());  // dS likewise
  float* dQs = reinterpret_cast<float*>(smem + lay.dq());
  float* lse2 = reinterpret_cast<float*>(smem + lay.stats());
  float* di_s = lse2 + BM;
  const int ldt = ld_of<T>(Dp), ldf = ldf_of(Dp), lds = ldf_of(BN), ldp = BN + 8;

  const i64 nkt = (p.Lk + BN - 1) / BN;
  const i64 jt = blockIdx.x % nkt, bk = blockIdx.x / nkt;
  const i64 b = bk / p.Hkv, hk = bk % p.Hkv, G = p.H / p.Hkv, off = p.Lk - p.Lq;
  const i64 j0 = jt * BN;
  const i64 n = (p.Lk - j0) < BN ? (p.Lk - j0) : BN;
  const float c2 = float(p.scale) * kLog2e;
  const T* Kg = k + bk * p.Lk * p.D;
  const T* Vg = v + bk * p.Lk * p.D;

  load_tile(Ks, ldt, Kg, j0, p.Lk, p.D, BN, Dp);
  load_tile(Vs, ldt, Vg, j0, p.Lk, p.D, BN, Dp);
  for (int idx = threadIdx.x; idx < BN * ldf; idx += blockDim.x) dKs[idx] = 0.f, dVs[idx] = 0.f;
  i64 istart = p.causal ? (j0 - off > 0 ? j0 - off : 0) : 0;
  istart = istart / BM * BM;

  for (i64 g = 0; g < G; ++g) {
    const i64 bh = b * p.H + hk * G + g;
    const T* Qg = q + bh * p.Lq * p.D;
    const T* dOg = dout + bh * p.Lq * p.D;
    for (i64 i0 = istart; i0 < p.Lq; i0 += BM) {
      __syncthreads();  // the previous tile's users of Qs/dOs/Pt/dSt/dQs are done
      load_tile(Qs, ldt, Qg, i0, p.Lq, p.D, BM, Dp);
      load_tile(dOs, ldt, dOg, i0, p.Lq, p.D, BM, Dp);
      for (int r = threadIdx.x; r < BM; r += blockDim.x) {
        const i64 i = i0 + r;
        lse2[r] = i < p.Lq ? lse[bh * p.Lq + i] * kLog2e : INFINITY;
        di_s[r] = i < p.Lq ? di[bh * p.Lq + i] : 0.f;
      }
      __syncthreads();
      block_mm<T, false, true>(Qs, ldt, Ks, ldt, Ss, lds, BM, BN, Dp, false);    // S = Q K^T
      block_mm<T, false, true>(dOs, ldt, Vs, ldt, dPs, lds, BM, BN, Dp, false);  // dP = dO V^T
      __syncthreads();
      for (int idx = threadIdx.x; idx < BM * BN; idx += blockDim.x) {
        const int r = idx / BN, c = idx % BN;
        const i64 i = i0 + r, j = j0 + c;
        const bool ok = i < p.Lq && j < p.Lk && (!p.causal || j <= i + off);
        const float pr = ok ? exp2f(Ss[r * lds + c] * c2 - lse2[r]) : 0.f;
        const float ds = pr * (dPs[r * lds + c] - di_s[r]);
        Pt[r * ldp + c] = from_f<T>(pr);
        dSt[r * ldp + c] = from_f<T>(ds);
      }
      __syncthreads();
      block_mm<T, true, false>(Pt, ldp, dOs, ldt, dVs, ldf, BN, Dp, BM, true);   // dV += P^T dO
      block_mm<T, true, false>(dSt, ldp, Qs, ldt, dKs, ldf, BN, Dp, BM, true);   // dK += dS^T Q
      block_mm<T, false, false>(dSt, ldp, Ks, ldt, dQs, ldf, BM, Dp, BN, false);  // dQ_tile = dS K
      __syncthreads();
      float* dqg = dq_acc + bh * p.Lq * p.D;
      for (int idx = threadIdx.x; idx < BM * Dp; idx += blockDim.x) {
        const int r = idx / Dp, d = idx % Dp;
        if (i0 + r < p.Lq && d < p.D) atomicAdd(dqg + (i0 + r) * p.D + d, dQs[r * ldf + d]);
      }
    }
  }
  __syncthreads();
  const float scale = float(p.scale);
  for (int idx = threadIdx.x; idx < n * p.D; idx += blockDim.x) {
    const int r = idx / int(p.D), d = idx % int(p.D);
    dk[(bk * p.Lk + j0 + r) * p.D + d] = from_f<T>(dKs[r * ldf + d] * scale);
    dv[(bk * p.Lk + j0 + r) * p.D + d] = from_f<T>(dVs[r * ldf + d]);
  }
}

// ------------------------------------------------------------------ launchers
template <class T>
int launch_forward(const void* q, const void* k, const void* v, void* out, float* lse, const AttnParams& p,
                   cudaStream_t s) {
  // Tiles sized so every variant fits 99 KB of shared memory at D = 128 (sm_86/89 limit too).
  constexpr int BM = kTensorCore<T> ? 64 : 32, BN = 32;
  const int Dp = int((p.D + 15) / 16 * 16);
  const size_t bytes = FwdSmem<BM, BN, T>{Dp}.total();
  auto kern = forward_kernel<BM, BN, T>;
  cudaError_t e = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes));
  if (e != cudaSuccess) return e;
  const i64 blocks = p.B * p.H * ((p.Lq + BM - 1) / BM);
  if (blocks > 2147483647LL) return cudaErrorInvalidValue;
  kern<<<unsigned(blocks), kThreads, bytes, s>>>((const T*)q, (const T*)k, (const T*)v, (T*)out, lse, p, Dp);
  return cudaGetLastError();
}

template <class T>
int launch_backward(const void* dout, const void* q, const void* k, const void* v, const void* out, const float* lse,
                    void* dq, void* dk, void* dv, float* ws, const AttnParams& p, cudaStream_t s) {
  constexpr int BM = 16, BN = kTensorCore<T> ? 32 : 16;
  const int Dp = int((p.D + 15) / 16 * 16);
  const i64 nq = p.B * p.H * p.Lq * p.D, rows = p.B * p.H * p.Lq;
  float* dq_acc = ws;
  float* di = ws + nq;
  cudaError_t e = cudaMemsetAsync(dq_acc, 0, sizeof(float) * nq, s);
  if (e != cudaSuccess) return e;
  const i64 rd_blocks = (rows * 32 + 255) / 256;
  if (rd_blocks > 2147483647LL) return cudaErrorInvalidValue;
  rowdot_kernel<T><<<unsigned(rd_blocks), 256, 0, s>>>((const T*)dout, (const T*)out, di, rows, p.D);
  e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  const size_t bytes = BwdSmem<BM, BN, T>{Dp}.total();
  auto kern = backward_kernel<BM, BN, T>;
  e = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes));
  if (e != cudaSuccess) return e;
  const i64 blocks = p.B * p.Hkv * ((p.Lk + BN - 1) / BN);
  if (blocks > 2147483647LL) return cudaErrorInvalidValue;
  kern<<<unsigned(blocks), kThreads, bytes, s>>>((const T*)dout, (const T*)q, (const T*)k, (const T*)v, lse, di,
                                                 dq_acc, (T*)dk, (T*)dv, p, Dp);
  e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  i64 fb = (nq + 255) / 256;
  if (fb > 65535LL * 16) fb = 65535LL * 16;
  finish_dq_kernel<T><<<unsigned(fb), 256, 0, s>>>(dq_acc, (T*)dq, nq, float(p.scale));
  return cudaGetLastError();
}
}  // namespace

int attention_forward(const void* q, const void* k, const void* v, void* out, float* lse, const AttnParams& p,
                      int dtype, void* stream) {
  if (p.B * p.H * p.Lq == 0) return cudaSuccess;
  if (p.D < 1 || p.D > 128 || p.Lk < 1 || p.Hkv < 1 || p.H % p.Hkv) return cudaErrorInvalidValue;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  switch (dtype) {
    case kFloat32: return launch_forward<float>(q, k, v, out, lse, p, s);
    case kFloat16: return launch_forward<__half>(q, k, v, out, lse, p, s);
    case kBFloat16: return launch_forward<__nv_bfloat16>(q, k, v, out, lse, p, s);
    default: return cudaErrorInvalidValue;
  }
}

i64 attention_backward_workspace(const AttnParams& p) { return p.B * p.H * p.Lq * (p.D + 1); }

int attention_backward(const void* dout, const void* q, const void* k, const void* v, const void* out,
                       const float* lse, void* dq, void* dk, void* dv, float* workspace, const AttnParams& p,
                       int dtype, void* stream) {
  if (p.D < 1 || p.D > 128 || p.Lk < 1 || p.Hkv < 1 || p.H % p.Hkv) return cudaErrorInvalidValue;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const size_t esize = dtype == kFloat32 ? 4 : 2;
  if (p.B * p.H * p.Lq == 0) {  // no queries: zero gradients for k and v
    const size_t nk = size_t(p.B * p.Hkv * p.Lk * p.D) * esize;
    cudaError_t e = nk ? cudaMemsetAsync(dk, 0, nk, s) : cudaSuccess;
    if (e == cudaSuccess && nk) e = cudaMemsetAsync(dv, 0, nk, s);
    return e;
  }
  switch (dtype) {
    case kFloat32: return launch_backward<float>(dout, q, k, v, out, lse, dq, dk, dv, workspace, p, s);
    case kFloat16: return launch_backward<__half>(dout, q, k, v, out, lse, dq, dk, dv, workspace, p, s);
    case kBFloat16: return launch_backward<__nv_bfloat16>(dout, q, k, v, out, lse, dq, dk, dv, workspace, p, s);
    default: return cudaErrorInvalidValue;
  }
}
}  // namespace cuda
}  // namespace pf
