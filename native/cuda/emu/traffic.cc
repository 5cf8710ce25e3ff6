// The emulated device's traffic counter (runtime.h, "traffic per launch"): which 4 KiB pages of device
// memory each kernel launch and cuBLAS call reads and writes, measured by page protection.
//
// For a counted operation the device thread (runtime.cc's worker; the emulated cuBLAS adds its OpenMP
// threads) protects every device allocation PROT_NONE, runs the operation, then restores PROT_READ |
// PROT_WRITE. The SIGSEGV handler below finds the faulting page in the table of protected regions, reads
// the x86-64 page-fault error code (bit 1: the access was a write) and
//  - on a read: marks the page read and lifts it to PROT_READ;
//  - on a write: marks it written and lifts it to PROT_READ | PROT_WRITE.
// A page read and then written is marked both; one written first (a pure store) only written. So a
// record holds the unique pages the operation touched: what it would move from and to DRAM with an ideal
// cache inside the operation and none across operations: a floor per operation, to page granularity
// (each tensor's last page rounds up: at most 4 KiB per tensor and direction).
//
// The handler is async-signal-safe: it reads a table built before the protection went on and never
// changed while it is on, marks pages with atomic fetch_or (threads may fault at once: marks only
// accumulate, and a page downgraded by a racing read upgrade faults again and is lifted again), calls
// only mprotect, and allocates nothing and takes no lock. A fault that is not on a protected page goes
// to the handler installed before ours (Node's, or the default action: the process ends as it would have).
//
// Device memory must be page-exclusive for this, which it is in this build: runtime.cc's cudaMalloc maps
// each allocation on its own pages unless AddressSanitizer is on. Under ASan (build-emu) counting is
// refused: ASan owns SIGSEGV and device memory comes from its heap (shared pages, redzones).
#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>

#include "internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define AXN_TRAFFIC_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define AXN_TRAFFIC_ASAN 1
#endif
#endif

#if defined(__x86_64__) && defined(__linux__) && !defined(AXN_TRAFFIC_ASAN)
#define AXN_TRAFFIC_SUPPORTED 1
#endif

namespace axn::emu {
namespace {

std::atomic<bool> gOn{false};
std::mutex gRecordsMu;
std::vector<TrafficRecord> gRecords;

#ifdef AXN_TRAFFIC_SUPPORTED

constexpr uint8_t kRead = 1, kWrite = 2;

struct Region {
  uintptr_t base;  // page-aligned
  size_t pages;
  size_t first;  // its first page's index in gMarks
};

// The table the handler reads. Written by the device thread only while no operation is protected.
std::vector<Region> gRegions;
std::unique_ptr<std::atomic<uint8_t>[]> gMarks;
size_t gMarksCap = 0;
std::atomic<const Region*> gTable{nullptr};  // non-null while protected
std::atomic<size_t> gTableSize{0};
std::atomic<std::atomic<uint8_t>*> gTableMarks{nullptr};
std::atomic<uint64_t> gStrayFaults{0};  // faults in a protected region the handler could not lift
std::atomic<bool> gOverflow{false};      // a region was lifted whole: this operation's pages are a lower bound

struct sigaction gPrevious;
std::once_flag gInstallOnce;
bool gInstalled = false;

void chain(int sig, siginfo_t* info, void* uctx) {
  if (gPrevious.sa_flags & SA_SIGINFO) {
    if (gPrevious.sa_sigaction) {
      gPrevious.sa_sigaction(sig, info, uctx);
      return;
    }
  } else if (gPrevious.sa_handler != SIG_DFL && gPrevious.sa_handler != SIG_IGN && gPrevious.sa_handler) {
    gPrevious.sa_handler(sig);
    return;
  }
  // The default action: restore it; the faulting instruction runs again and the process ends as it
  // would have without us.
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(sig, &dfl, nullptr);
}

// "axn-emu traffic: SIGSEGV at 0x… (not device memory) while counting": async-signal-safe, before the fault
// goes on to the previous handler (a real crash during a counted operation says where it was).
std::atomic<const char*> gCurrent{nullptr};  // the name of the operation being counted

void sayStray(const void* addr) {
  char buf[512] = "axn-emu traffic: SIGSEGV at 0x";
  size_t n = std::strlen(buf);
  auto put = [&](const char* t) {
    for (; *t && n < sizeof buf - 2; t++) buf[n++] = *t;
  };
  const uintptr_t a = reinterpret_cast<uintptr_t>(addr);
  for (int shift = 60; shift >= 0; shift -= 4) buf[n++] = "0123456789abcdef"[(a >> shift) & 15];
  put(" (not a protected device page) while counting ");
  const char* cur = gCurrent.load(std::memory_order_relaxed);
  put(cur ? cur : "an operation");
  buf[n++] = '\n';
  ssize_t w = write(2, buf, n);
  (void)w;
}

void onSegv(int sig, siginfo_t* info, void* uctx) {
  const int savedErrno = errno;  // mprotect may set it: the interrupted code must not see that
  const Region* table = gTable.load(std::memory_order_acquire);
  if (table && info && uctx) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(info->si_addr);
    size_t lo = 0, hi = gTableSize.load(std::memory_order_relaxed);
    while (lo < hi) {  // the last region whose base is <= a
      const size_t mid = lo + (hi - lo) / 2;
      if (table[mid].base <= a) lo = mid + 1;
      else hi = mid;
    }
    if (lo > 0) {
      const Region& r = table[lo - 1];
      const size_t page = (a - r.base) / kTrafficPageBytes;
      if (page < r.pages) {
        const auto* uc = static_cast<const ucontext_t*>(uctx);
        const bool write = (uc->uc_mcontext.gregs[REG_ERR] & 2) != 0;
        gTableMarks.load(std::memory_order_relaxed)[r.first + page].fetch_or(write ? kWrite : kRead,
                                                                              std::memory_order_relaxed);
        void* p = reinterpret_cast<void*>(r.base + page * kTrafficPageBytes);
        if (mprotect(p, kTrafficPageBytes, write ? PROT_READ | PROT_WRITE : PROT_READ) == 0) {
          errno = savedErrno;
          return;
        }
        // ENOMEM: the process is out of memory mappings (vm.max_map_count: each protection boundary
        // splits one). Lift the whole region, which merges its mappings back, and say the count is lost.
        if (mprotect(reinterpret_cast<void*>(r.base), r.pages * kTrafficPageBytes, PROT_READ | PROT_WRITE) == 0) {
          gOverflow.store(true, std::memory_order_relaxed);
          errno = savedErrno;
          return;
        }
        gStrayFaults.fetch_add(1, std::memory_order_relaxed);
      }
    }
    sayStray(info->si_addr);
  }
  chain(sig, info, uctx);
}

bool install(std::string* why) {
  std::call_once(gInstallOnce, [] {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = onSegv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    gInstalled = sigaction(SIGSEGV, &sa, &gPrevious) == 0;
  });
  if (!gInstalled) {
    if (why) *why = std::string("the emulator could not install its SIGSEGV handler: ") + std::strerror(errno);
    return false;
  }
  // Someone may have replaced it since: then counting would crash instead of count.
  struct sigaction now;
  if (sigaction(SIGSEGV, nullptr, &now) != 0 || !(now.sa_flags & SA_SIGINFO) || now.sa_sigaction != onSegv) {
    if (why) *why = "another SIGSEGV handler replaced the emulator's traffic counter's";
    return false;
  }
  return true;
}

void protectAll(int prot) {
  for (const Region& r : gRegions) mprotect(reinterpret_cast<void*>(r.base), r.pages * kTrafficPageBytes, prot);
}

#endif  // AXN_TRAFFIC_SUPPORTED

}  // namespace

bool trafficSupported(std::string* why) {
#ifdef AXN_TRAFFIC_SUPPORTED
  (void)why;
  return true;
#elif defined(AXN_TRAFFIC_ASAN)
  if (why)
    *why = "traffic counting is off in the AddressSanitizer build (build-emu): ASan owns SIGSEGV and device memory "
           "comes from its heap, where allocations share pages; use the plain emulated build (AXN_CUDA=EMU "
           "AXN_BUILD_DIR=build-emu-plain)";
  return false;
#else
  if (why) *why = "traffic counting reads the x86-64 page-fault error code: x86-64 Linux only";
  return false;
#endif
}

bool setTrafficCounting(bool on, std::string* why) {
  if (!on) {
    gOn = false;
    return true;
  }
  if (!trafficSupported(why)) return false;
#ifdef AXN_TRAFFIC_SUPPORTED
  if (!install(why)) return false;
#endif
  gOn = true;
  return true;
}

bool trafficCounting() { return gOn.load(); }

std::vector<TrafficRecord> takeTrafficRecords() {
  std::lock_guard<std::mutex> lk(gRecordsMu);
  std::vector<TrafficRecord> out;
  out.swap(gRecords);
  return out;
}

void addTrafficRecord(TrafficRecord rec) {
  std::lock_guard<std::mutex> lk(gRecordsMu);
  gRecords.push_back(std::move(rec));
}

bool runCounted(TrafficRecord rec, const std::function<bool()>& op) {
#ifdef AXN_TRAFFIC_SUPPORTED
  std::vector<std::pair<uintptr_t, size_t>> allocs;
  deviceAllocations(allocs);
  gRegions.clear();
  size_t total = 0;
  for (const auto& [base, bytes] : allocs) {
    if (base % kTrafficPageBytes != 0) {
      fault(cudaErrorLaunchFailure, "traffic counting: the device allocation at " + hexPtr((const void*)base) +
                                        " is not page-aligned (device memory must be page-exclusive)");
      return false;
    }
    const size_t pages = (bytes + kTrafficPageBytes - 1) / kTrafficPageBytes;
    gRegions.push_back(Region{base, pages, total});
    total += pages;
  }
  std::sort(gRegions.begin(), gRegions.end(), [](const Region& a, const Region& b) { return a.base < b.base; });
  total = 0;
  for (Region& r : gRegions) {
    r.first = total;
    total += r.pages;
  }
  if (total > gMarksCap) {
    gMarks.reset(new std::atomic<uint8_t>[total]);
    gMarksCap = total;
  }
  for (size_t i = 0; i < total; i++) gMarks[i].store(0, std::memory_order_relaxed);
  gTableMarks.store(gMarks.get(), std::memory_order_relaxed);
  gTableSize.store(gRegions.size(), std::memory_order_relaxed);
  gTable.store(gRegions.data(), std::memory_order_release);
  gCurrent.store(rec.name.c_str(), std::memory_order_relaxed);
  protectAll(PROT_NONE);
  const bool ok = op();
  protectAll(PROT_READ | PROT_WRITE);
  gTable.store(nullptr, std::memory_order_release);
  gCurrent.store(nullptr, std::memory_order_relaxed);
  for (size_t i = 0; i < total; i++) {
    const uint8_t m = gMarks[i].load(std::memory_order_relaxed);
    rec.readPages += (m & kRead) != 0;
    rec.writePages += (m & kWrite) != 0;
  }
  if (gStrayFaults.exchange(0) != 0) {
    fault(cudaErrorLaunchFailure, "traffic counting: mprotect failed in the page-fault handler (" + rec.name + ")");
    return false;
  }
  if (gOverflow.exchange(false)) {
    rec.pagesValid = false;
    if (rec.kind == TrafficRecord::Kernel) {
      fault(cudaErrorLaunchFailure,
            "traffic counting: " + rec.name + " (" + rec.op + ") fragmented device memory into more mappings than "
            "the kernel allows (vm.max_map_count); its pages were not counted: count at a smaller batch");
      return false;
    }
  }
  addTrafficRecord(std::move(rec));
  return ok;
#else
  (void)rec;
  return op();
#endif
}

}  // namespace axn::emu
