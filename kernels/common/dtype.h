// kernels/common/dtype.h: the storage dtypes the CUDA kernels take, one code each. The same
// numbers in every kernel's switch, every binding's check and, through `_cuda.dtypes`, the
// Python glue (python/pixelforge/ops/_glue.py): written once.
#pragma once

namespace pf {
enum DType : int { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2 };
inline bool valid_dtype(int d) { return d >= kFloat32 && d <= kBFloat16; }
}  // namespace pf
