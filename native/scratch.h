// Scratch memory for an op's workspace (im2col columns and the like), freed at scope exit.
// CUDA: from the caching allocator (stream-ordered, so freeing right after enqueueing work is safe).
// CPU: host::alloc (a size-keyed cache of mmap'd blocks for large ones).
#pragma once
#include <cstdlib>
#include <string>

#include "common.h"
#include "host_alloc.h"
#include <cstring>
#ifdef AXN_WITH_CUDA
#include "cuda/context.h"
#endif

namespace axn {

class Scratch {
 public:
  Scratch(bool cuda, size_t bytes) : cuda_(cuda), bytes_(bytes) {
    if (bytes == 0) return;
    if (cuda_) {
#ifdef AXN_WITH_CUDA
      ptr_ = cuda::deviceAlloc(bytes);
      if (poisonEnabled()) cuda::memsetBytes(ptr_, 0xFF, bytes);
#else
      throw Error("scratch: built without CUDA");
#endif
    } else {
      ptr_ = host::alloc(bytes);
      if (poisonEnabled()) std::memset(ptr_, 0xFF, bytes);
    }
  }
  ~Scratch() {
    if (!ptr_) return;
    if (cuda_) {
#ifdef AXN_WITH_CUDA
      try {
        cuda::deviceFree(ptr_);
      } catch (...) {
      }
#endif
    } else {
      host::free(ptr_, bytes_);
    }
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }

 private:
  bool cuda_;
  size_t bytes_;
  void* ptr_ = nullptr;
};

}  // namespace axn
