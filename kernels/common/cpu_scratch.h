// kernels/common/cpu_scratch.h: what the CPU kernel files share inside their ISA namespace.
//   Scratch<T>     an owned heap buffer of trivial T (zero-filled when asked), 64-byte aligned
//                  (a 16-byte-aligned buffer splits every full-vector load across two cache
//                  lines: the weight gradient's micro-kernel measured ~6% slower so), freed at
//                  the end of its scope
//   KeptScratch    a buffer kept between calls and grown on demand (declare it thread_local):
//                  a fresh allocation per call costs page faults (glibc mmaps blocks this size)
//                  that dominate small kernels called in a loop; get() returns null when out of
//                  memory (never throws: it is called inside parallel regions)
//   max_threads()  OpenMP's thread count for the next parallel region (1 without OpenMP)
//   thread_id()    this thread's index inside a region (0 without OpenMP)
//   team_threads() the number of threads of the current region (1 outside or without OpenMP)
// Internal linkage on purpose: each kernel file is compiled once per ISA into PF_ISA_NS, and
// no std:: template or weak symbol may be shared between those copies (a shared symbol
// compiled for AVX-512 could be picked for the generic path; see common.h).
#pragma once
#include "common/common.h"

#include <cstdlib>
#include <cstring>
#include <new>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace PF_ISA_NS {
namespace {

template <class T>
struct Scratch {
  T* p;
  explicit Scratch(pf::i64 n, bool zeroed = false) : p(nullptr) {
    if (n <= 0) return;
    const size_t bytes = (size_t(n) * sizeof(T) + 63) & ~size_t(63);
    p = static_cast<T*>(std::aligned_alloc(64, bytes));
    if (!p) throw std::bad_alloc();
    if (zeroed) std::memset(p, 0, bytes);
  }
  ~Scratch() { std::free(p); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

struct KeptScratch {
  void* p = nullptr;
  std::size_t cap = 0;
  ~KeptScratch() { std::free(p); }
  template <class T>
  T* get(pf::i64 n) {
    const std::size_t bytes = ((std::size_t(n) * sizeof(T)) + 63) / 64 * 64;
    if (bytes > cap) {
      std::free(p);
      p = std::aligned_alloc(64, bytes);
      cap = p ? bytes : 0;
    }
    return static_cast<T*>(p);
  }
};

inline int max_threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

inline int thread_id() {
#if defined(_OPENMP)
  return omp_get_thread_num();
#else
  return 0;
#endif
}

inline int team_threads() {
#if defined(_OPENMP)
  return omp_get_num_threads();
#else
  return 1;
#endif
}

}  // namespace
}  // namespace PF_ISA_NS
