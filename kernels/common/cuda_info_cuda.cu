// Device enumeration and error reporting for the _cuda module.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "common/cuda_info.h"

namespace pf {
namespace cuda {
int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return n;
}
int runtime_version() {
  int v = 0;
  cudaRuntimeGetVersion(&v);
  return v;
}
void check(int err, const char* what) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string(what) + ": " +
                             cudaGetErrorString(static_cast<cudaError_t>(err)));
}
}  // namespace cuda
}  // namespace pf
