#include "host_alloc.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "common.h"

namespace axn::host {

namespace {
constexpr size_t kLarge = 64 * 1024;
constexpr size_t kPage = 4096;
constexpr size_t kMaxCached = size_t(2) << 30;  // 2 GiB
constexpr size_t kMaxSmallCached = size_t(64) << 20;  // 64 MiB

struct Cache {
  std::mutex mu;
  std::multimap<size_t, void*> free;
  // Small blocks by 64-byte-rounded size: a training step's small tensors (biases, labels, losses, index
  // tables) reuse their blocks too, instead of aligned_alloc in a heap Node fragments (it grew the C
  // heap by ~16 KB a step).
  std::unordered_map<size_t, std::vector<void*>> small;
  size_t smallCachedBytes = 0;
  Stats st;
};
Cache& cache() {
  static Cache* c = new Cache();  // never destroyed (blocks may be freed during teardown)
  return *c;
}
size_t pageRound(size_t b) { return (b + kPage - 1) / kPage * kPage; }

void trimLocked(Cache& c, size_t target) {
  // Largest blocks first: they free the most with the fewest calls.
  while (c.st.cachedBytes > target && !c.free.empty()) {
    auto it = std::prev(c.free.end());
    munmap(it->second, it->first);
    c.st.cachedBytes -= it->first;
    c.st.mappedBytes -= it->first;
    c.free.erase(it);
  }
}
}  // namespace

size_t smallRound(size_t b) { return b == 0 ? 64 : (b + 63) / 64 * 64; }

void* alloc(size_t bytes) {
  if (bytes < kLarge) {
    const size_t sz = smallRound(bytes);
    {
      Cache& c = cache();
      std::lock_guard<std::mutex> lock(c.mu);
      auto it = c.small.find(sz);
      if (it != c.small.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        c.smallCachedBytes -= sz;
        c.st.reuseHits++;
        return p;
      }
    }
    void* p = std::aligned_alloc(64, sz);
    if (!p) throw Error("host: out of memory allocating " + std::to_string(bytes) + " bytes");
    return p;
  }
  size_t sz = pageRound(bytes);
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.free.find(sz);
    if (it != c.free.end()) {
      void* p = it->second;
      c.free.erase(it);
      c.st.cachedBytes -= sz;
      c.st.reuseHits++;
      return p;
    }
  }
  void* p = mmap(nullptr, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    {
      std::lock_guard<std::mutex> lock(c.mu);
      trimLocked(c, 0);
    }
    p = mmap(nullptr, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
      throw Error("host: out of memory allocating " + std::to_string(bytes) + " bytes (" + std::strerror(errno) + ")");
  }
  std::lock_guard<std::mutex> lock(c.mu);
  c.st.mmapCalls++;
  c.st.mappedBytes += sz;
  return p;
}

void free(void* ptr, size_t bytes) {
  if (!ptr) return;
  if (bytes < kLarge) {
    const size_t sz = smallRound(bytes);
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mu);
    if (c.smallCachedBytes + sz <= kMaxSmallCached) {
      c.small[sz].push_back(ptr);
      c.smallCachedBytes += sz;
    } else {
      std::free(ptr);
    }
    return;
  }
  size_t sz = pageRound(bytes);
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.free.emplace(sz, ptr);
  c.st.cachedBytes += sz;
  if (c.st.cachedBytes > kMaxCached) trimLocked(c, kMaxCached / 2);
}

void emptyCache() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  trimLocked(c, 0);
  for (auto& kv : c.small)
    for (void* p : kv.second) std::free(p);
  c.small.clear();
  c.smallCachedBytes = 0;
}

Stats stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  Stats s = c.st;
  s.smallCachedBytes = c.smallCachedBytes;
  return s;
}

}  // namespace axn::host
