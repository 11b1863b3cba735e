// csrc/pf_bind.h: glue shared by the pybind11 modules. Each op's glue file registers a binder
// (static pfb::Register) so adding an op never edits bind_cpu.cpp / bind_cuda.cpp. The
// Python layer validates first; these checks run again so no bad pointer reaches a kernel.
// All glue includes this header: the casters (stl.h for the std::vector shapes
// the CUDA glue takes) must be the same in every translation unit of a module.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/common.h"
#include "common/dtype.h"

namespace py = pybind11;

namespace pfb {
using Binder = void (*)(py::module_&);
inline std::vector<Binder>& binders() {
  static std::vector<Binder> all;
  return all;
}
struct Register {
  explicit Register(Binder b) { binders().push_back(b); }
};

// Pointer to a C-contiguous array of element type T, checked.
template <class T>
T* data_of(py::array& a, const char* name, int ndim = -1) {
  if (!py::isinstance<py::array_t<T>>(a) || !a.dtype().is(py::dtype::of<T>()))
    throw py::type_error(std::string(name) + ": wrong dtype for this kernel");
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + ": must be C-contiguous");
  if (ndim >= 0 && a.ndim() != ndim)
    throw py::value_error(std::string(name) + ": expected " + std::to_string(ndim) + " dims");
  return static_cast<T*>(a.mutable_data());
}

template <class T>
const T* cdata_of(const py::array& a, const char* name, int ndim = -1) {
  return data_of<T>(const_cast<py::array&>(a), name, ndim);
}

inline std::vector<std::int64_t> shape_of(const py::array& a) {
  return std::vector<std::int64_t>(a.shape(), a.shape() + a.ndim());
}

// A dtype code of common/dtype.h (the CUDA glue's `dtype` argument).
inline void check_dtype(int d) { PF_CHECK(pf::valid_dtype(d), "dtype: expected float32, float16 or bfloat16"); }

// A device pointer passed from Python as an int (CuPy's .data.ptr); 0 is refused.
inline void* dev_ptr(std::uintptr_t p, const char* name) {
  if (p == 0) throw py::value_error(std::string(name) + ": null device pointer");
  return reinterpret_cast<void*>(p);
}
}  // namespace pfb
