// Host memory for tensors and op workspaces. Large blocks (≥ 64 KiB) come from mmap and are cached by
// exact (page-rounded) size, like the CUDA allocator: a training step asks for the same sizes every
// iteration, so after the first step it allocates nothing. Why not plain aligned_alloc: in Node's heap,
// glibc's memalign could not reuse a freed large block for the next request of the same size (the
// over-allocation for alignment no longer fits once neighbours are reused), so the heap grew by every
// step's activations — 24 GB in four minutes of training. Cached bytes are capped; beyond the cap, or on
// emptyCache(), blocks go back to the OS with munmap.
#pragma once
#include <cstddef>

namespace axn::host {

void* alloc(size_t bytes);            // 64-byte aligned (page aligned when large); throws axn::Error
void free(void* ptr, size_t bytes);   // `bytes` as passed to alloc
void emptyCache();

struct Stats {
  size_t cachedBytes = 0;
  size_t mappedBytes = 0;   // large blocks mapped in all (in use + cached)
  size_t reuseHits = 0;
  size_t smallCachedBytes = 0;  // freed small blocks kept for reuse
  size_t mmapCalls = 0;
};
Stats stats();

}  // namespace axn::host
