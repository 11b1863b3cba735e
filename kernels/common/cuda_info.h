// Host-side CUDA helpers callable from non-nvcc code (the pybind11 glue).
#pragma once
#include <string>

namespace pf {
namespace cuda {
int device_count();        // 0 when no GPU or driver, never throws
int runtime_version();
// After a launch on `stream`: throws std::runtime_error naming `what` and the CUDA error if
// `err` (the launcher's result) is not success. With PIXELFORGE_CUDA_SYNC=1 or
// CUDA_LAUNCH_BLOCKING=1 in the environment it first waits for the stream, so a fault inside
// the kernel is reported under this op's name instead of by whatever CUDA call comes next.
void check(int err, const char* what, void* stream);
}  // namespace cuda
}  // namespace pf
