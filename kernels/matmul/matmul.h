// kernels/matmul/matmul.h: our own GEMM, C = A @ B (+ bias along columns), batched.
//   A(i, k) = a[bt * a_bs + i * a_rs + k * a_cs]     (bt the batch index; M×K)
//   B(k, j) = b[bt * b_bs + k * b_rs + j * b_cs]     (K×N)
//   C(i, j) = c[bt * c_bs + i * c_rs + j]            (M×N, unit column stride)
// Transposes and non-contiguous views are only strides: the packing routines read any
// strides (negative and zero included), so no operand is ever copied up front. A batch
// stride of 0 broadcasts one operand over the batch.
// Variants: CPU float32 / float64 (matmul_cpu.cpp, generic / AVX2+FMA / AVX-512 builds);
// CPU bfloat16 products with float32 in/out (matmul_bf16_cpu.cpp, AVX-512 + avx512_bf16);
// CUDA float32 SIMT and float16 / bfloat16 WMMA with float32 accumulation (matmul_cuda.cu).
#pragma once
#include "common/common.h"

namespace pf {
struct GemmParams {
  i64 batch, M, N, K;
  i64 a_bs, a_rs, a_cs;
  i64 b_bs, b_rs, b_cs;
  i64 c_bs, c_rs;
};
}  // namespace pf

// CPU: c = a @ b (+ bias[j], bias of length N, may be null). Every C element is reduced in
// an order that depends on the shape only (k-blocks of a size that depends on K only, in
// increasing k; for a small C with a long K, partial products over fixed K blocks summed in
// block order), whatever the thread count: results are bitwise identical for 1 and n threads.
PF_DECLARE_ISA(void, gemm_f32, (const float* a, const float* b, const float* bias, float* c, const pf::GemmParams& p))
PF_DECLARE_ISA(void, gemm_f64, (const double* a, const double* b, const double* bias, double* c, const pf::GemmParams& p))
// out[j] = sum over i (increasing) of g[i * rs + j * cs]; g: (rows, cols). Deterministic.
PF_DECLARE_ISA(void, colsum_f32, (const float* g, pf::i64 rows, pf::i64 cols, pf::i64 rs, pf::i64 cs, float* out))
PF_DECLARE_ISA(void, colsum_f64, (const double* g, pf::i64 rows, pf::i64 cols, pf::i64 rs, pf::i64 cs, double* out))

#if defined(PF_X86)
// CPU, AVX-512 build only, callable where pf::cpu::has_avx512_bf16(): as gemm_f32, with A and B
// rounded to bfloat16 (nearest even; denormals read as zero) and their products summed in
// float32. Bitwise the same for any thread count.
namespace pf {
namespace avx512 {
void gemm_bf16(const float* a, const float* b, const float* bias, float* c, const GemmParams& p);
}  // namespace avx512
}  // namespace pf
#endif

// CUDA launcher (matmul_cuda.cu). dtype: 0 float32, 1 float16, 2 bfloat16 for a, b, bias
// and c alike; accumulation in float32. Returns a cudaError_t as int.
namespace pf {
namespace cuda {
int gemm(const void* a, const void* b, const void* bias, void* c, const GemmParams& p, int dtype, void* stream);
}  // namespace cuda
}  // namespace pf
