// Device enumeration and error reporting for the _cuda module.
#include <cuda_runtime.h>

#include <cstdlib>
#include <cstring>
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
namespace {
bool env_on(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
}
// Read once: the environment of the first checked launch decides for the process.
bool sync_after_launch() {
  static const bool on = env_on("PIXELFORGE_CUDA_SYNC") || env_on("CUDA_LAUNCH_BLOCKING");
  return on;
}
}  // namespace

void check(int err, const char* what, void* stream) {
  bool async = false;
  if (err == cudaSuccess && sync_after_launch()) {
    err = cudaStreamSynchronize(static_cast<cudaStream_t>(stream));
    async = true;
  }
  if (err != cudaSuccess)
    throw std::runtime_error(std::string(what) + (async ? " (while the kernel ran)" : "") + ": " +
                             cudaGetErrorString(static_cast<cudaError_t>(err)));
}
}  // namespace cuda
}  // namespace pf
