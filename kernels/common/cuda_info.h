// Host-side CUDA helpers callable from non-nvcc code (the pybind11 glue).
#pragma once
#include <string>

namespace pf {
namespace cuda {
int device_count();        // 0 when no GPU or driver, never throws
int runtime_version();
// Throws std::runtime_error with the CUDA error string if `err` is not success.
void check(int err, const char* what);
}  // namespace cuda
}  // namespace pf
