// csrc/memory_pool_bind.cpp: a caching allocator for the NumPy arrays pixelforge allocates,
// installed through NumPy's memory-handler API (NEP 49), which keeps the handler in a context
// variable: pixelforge sets it around its own training and sampling (python/pixelforge/_memory.py)
// and restores the previous one after, so other code in the process (torch, the user's NumPy)
// keeps glibc's allocator as it was. No process-wide setting (mallopt) is touched.
//
// Why: a training step allocates and frees the same activation sizes every step; glibc serves
// each large one with fresh mmap'ed pages (first-touch page faults, zeroed by the kernel).
// Here a freed block of >= kMinCached bytes waits in a bin of its size (rounded up to 4 KiB)
// for the next request of that size, up to kMaxCached bytes in all; smaller blocks go straight
// to malloc (glibc's heap bins already reuse them).
//
//   memory_pool_handler() -> the PyCapsule "mem_handler" NumPy takes
//   numpy_set_handler(h)  -> the previous handler (PyDataMem_SetHandler)
//   memory_pool_stats()   -> dict(cached_bytes, live_blocks, hits, misses)
//   memory_pool_trim()    -> frees every cached block
#include <malloc.h>   // malloc_usable_size (glibc)

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "pf_bind.h"

namespace {

// NumPy's PyDataMem_Handler, version 1 (numpy/ndarraytypes.h, stable since NumPy 1.22).
struct DataMemAllocator {
  void* ctx;
  void* (*malloc)(void* ctx, size_t size);
  void* (*calloc)(void* ctx, size_t nelem, size_t elsize);
  void* (*realloc)(void* ctx, void* ptr, size_t new_size);
  void (*free)(void* ctx, void* ptr, size_t size);
};
struct DataMemHandler {
  char name[127];
  uint8_t version;
  DataMemAllocator allocator;
};
constexpr int kSetHandlerSlot = 304;       // PyArray_API[304] = PyDataMem_SetHandler

constexpr size_t kMinCached = 128 << 10;   // glibc mmaps from here by default
constexpr size_t kGranule = 4096;
constexpr size_t kMaxCached = size_t(1) << 30;
constexpr size_t kAlign = 64;

struct Pool {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> bins;   // rounded size -> free blocks
  std::unordered_map<void*, size_t> live;                // our large blocks in use -> rounded size
  size_t cached = 0, hits = 0, misses = 0;
};
Pool& pool() {
  static Pool* p = new Pool();   // never destroyed: arrays may outlive module teardown
  return *p;
}

size_t rounded(size_t n) { return (n + kGranule - 1) / kGranule * kGranule; }

void* pool_malloc(void*, size_t size) {
  if (size < kMinCached) return std::malloc(size ? size : 1);
  const size_t r = rounded(size);
  Pool& p = pool();
  {
    std::lock_guard<std::mutex> g(p.mu);
    auto it = p.bins.find(r);
    if (it != p.bins.end() && !it->second.empty()) {
      void* b = it->second.back();
      it->second.pop_back();
      p.cached -= r;
      p.live[b] = r;
      ++p.hits;
      return b;
    }
    ++p.misses;
  }
  void* b = std::aligned_alloc(kAlign, r);
  if (b) {
    std::lock_guard<std::mutex> g(p.mu);
    p.live[b] = r;
  }
  return b;
}

void pool_free(void*, void* ptr, size_t) {
  if (!ptr) return;
  Pool& p = pool();
  {
    std::lock_guard<std::mutex> g(p.mu);
    auto it = p.live.find(ptr);
    if (it != p.live.end()) {
      const size_t r = it->second;
      p.live.erase(it);
      if (p.cached + r <= kMaxCached) {
        p.bins[r].push_back(ptr);
        p.cached += r;
        return;
      }
    }
  }
  std::free(ptr);   // a small block, or the cache is full
}

void* pool_calloc(void* ctx, size_t nelem, size_t elsize) {
  if (elsize && nelem > SIZE_MAX / elsize) return nullptr;
  const size_t n = nelem * elsize;
  if (n < kMinCached) return std::calloc(nelem ? nelem : 1, elsize ? elsize : 1);
  void* b = pool_malloc(ctx, n);
  if (b) std::memset(b, 0, n);
  return b;
}

void* pool_realloc(void* ctx, void* ptr, size_t new_size) {
  if (!ptr) return pool_malloc(ctx, new_size);
  size_t old = 0;
  {
    Pool& p = pool();
    std::lock_guard<std::mutex> g(p.mu);
    auto it = p.live.find(ptr);
    if (it != p.live.end()) old = it->second;
  }
  if (old == 0 && new_size < kMinCached) return std::realloc(ptr, new_size ? new_size : 1);
  if (old != 0 && rounded(new_size) == old) return ptr;
  void* b = pool_malloc(ctx, new_size);
  if (!b) return nullptr;   // realloc semantics: the old block stays valid
  // a small block came from malloc: its usable size bounds what may be read from it
  const size_t have = old != 0 ? old : malloc_usable_size(ptr);
  std::memcpy(b, ptr, have < new_size ? have : new_size);
  pool_free(ctx, ptr, 0);
  return b;
}

DataMemHandler g_handler = {"pixelforge_pool", 1,
                            {nullptr, pool_malloc, pool_calloc, pool_realloc, pool_free}};

using SetHandlerFn = PyObject* (*)(PyObject*);
SetHandlerFn set_handler_fn() {
  static SetHandlerFn fn = [] {
    py::object core;
    try {
      core = py::module_::import("numpy._core._multiarray_umath");   // NumPy 2
    } catch (py::error_already_set&) {
      core = py::module_::import("numpy.core._multiarray_umath");    // NumPy 1.22+
    }
    py::capsule api = core.attr("_ARRAY_API");
    void** table = static_cast<void**>(PyCapsule_GetPointer(api.ptr(), nullptr));
    if (!table) throw py::error_already_set();
    return reinterpret_cast<SetHandlerFn>(table[kSetHandlerSlot]);
  }();
  return fn;
}

void bind(py::module_& m) {
  m.def("memory_pool_handler", [] {
    static py::capsule h(&g_handler, "mem_handler");
    return h;
  });
  m.def("numpy_set_handler", [](py::object handler) {
    if (!PyCapsule_IsValid(handler.ptr(), "mem_handler"))
      throw py::type_error("handler: expected a NumPy memory handler (PyCapsule 'mem_handler')");
    PyObject* old = set_handler_fn()(handler.ptr());
    if (!old) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(old);
  });
  m.def("memory_pool_stats", [] {
    Pool& p = pool();
    std::lock_guard<std::mutex> g(p.mu);
    py::dict d;
    d["cached_bytes"] = p.cached;
    d["live_blocks"] = p.live.size();
    d["hits"] = p.hits;
    d["misses"] = p.misses;
    return d;
  });
  m.def("memory_pool_trim", [] {
    Pool& p = pool();
    std::lock_guard<std::mutex> g(p.mu);
    for (auto& kv : p.bins)
      for (void* b : kv.second) std::free(b);
    p.bins.clear();
    p.cached = 0;
  });
}
pfb::Register reg(bind);
}  // namespace
