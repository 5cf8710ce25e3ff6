// The NCCL backend of the communicator (CUDA builds): NCCL loaded at run time, the CUDA collectives on a
// communication stream, and a watchdog; with MPI (AXN_MPI) the job's communicator, bootstrapped over MPI.
// Without MPI too: the loader and ncclSelfTest(), a communicator of one rank that runs the collectives
// (the job's code path included) on this process's device. See comm.h and, for the streams and the
// caching allocator, native/cuda/context.h.
#ifdef AXN_WITH_CUDA
#include <dlfcn.h>
#ifdef AXN_MPI
#include <mpi.h>
#endif

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common.h"
#include "cuda/context.h"
#include "dist/comm.h"
#include "dist/nccl_api.h"
#include "ops/elementwise.h"

namespace axn::dist {

namespace {

[[maybe_unused]] const char* kInstall =
    "NCCL (libnccl.so.2) is needed for CUDA tensors in data-parallel training: install it (Debian/Ubuntu with "
    "NVIDIA's CUDA repository: apt-get install libnccl2; or pip install nvidia-nccl-cu13 (nvidia-nccl-cu12 "
    "for CUDA 12) and add its nvidia/nccl/lib folder to LD_LIBRARY_PATH), or point AXN_NCCL_LIB at the "
    "library file, or AXN_NCCL_DIRS at folders that hold libnccl.so.2 (separated by ':')";

struct Loaded {
  bool tried = false;
  const NcclApi* api = nullptr;
  std::string reason;
  std::string library;  // the file loaded (or the emulation's name)
  NcclApi table{};
};

Loaded& loaded() {
  static Loaded* l = new Loaded();
  return *l;
}

std::mutex gLoadMu;

// AXN_NCCL_LIB alone when set; else libnccl.so.2 on the loader's path, then in each folder of
// AXN_NCCL_DIRS, then libnccl.so. Loaded once per process (the first answer stays).
const NcclApi* load(std::string* reason) {
  std::lock_guard<std::mutex> lock(gLoadMu);
  Loaded& l = loaded();
  if (!l.tried) {
    l.tried = true;
#ifdef AXN_CUDA_EMU
    const char* why = nullptr;
    l.api = emu::ncclApi(&why);
    if (!l.api) l.reason = why ? why : "the emulated NCCL is not available";
    else l.library = "the emulated NCCL (native/cuda/emu/nccl.cc)";
#else
    std::vector<std::string> tried;  // dlerror()'s message for each name that did not load
    void* h = nullptr;
    std::string name;
    auto tryOpen = [&](const std::string& n) {
      if (h) return;
      h = dlopen(n.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (h) {
        name = n;
        return;
      }
      const char* e = dlerror();
      const std::string m = e ? e : "dlopen failed";
      tried.push_back(m.find(n) == std::string::npos ? n + ": " + m : m);
    };
    const char* env = std::getenv("AXN_NCCL_LIB");
    if (env && *env) {
      tryOpen(env);
    } else {
      tryOpen("libnccl.so.2");
      if (const char* dirs = std::getenv("AXN_NCCL_DIRS")) {
        std::string all = dirs;
        for (size_t at = 0; at <= all.size();) {
          const size_t end = std::min(all.find(':', at), all.size());
          const std::string dir = all.substr(at, end - at);
          if (!dir.empty()) tryOpen(dir + (dir.back() == '/' ? "" : "/") + "libnccl.so.2");
          at = end + 1;
        }
      }
      tryOpen("libnccl.so");
    }
    if (!h) {
      std::string list;
      for (const std::string& t : tried) list += (list.empty() ? "" : "; ") + t;
      l.reason = "could not load NCCL (tried: " + list + "). " + kInstall;
    } else {
      bool ok = true;
      auto sym = [&](const char* s) -> void* {
        void* p = dlsym(h, s);
        if (!p && ok) {
          ok = false;
          l.reason = name + " has no " + s + " (NCCL 2.4 or newer is needed). " + kInstall;
        }
        return p;
      };
      l.table.getUniqueId = reinterpret_cast<decltype(l.table.getUniqueId)>(sym("ncclGetUniqueId"));
      l.table.commInitRank = reinterpret_cast<decltype(l.table.commInitRank)>(sym("ncclCommInitRank"));
      l.table.allReduce = reinterpret_cast<decltype(l.table.allReduce)>(sym("ncclAllReduce"));
      l.table.broadcast = reinterpret_cast<decltype(l.table.broadcast)>(sym("ncclBroadcast"));
      l.table.commGetAsyncError = reinterpret_cast<decltype(l.table.commGetAsyncError)>(sym("ncclCommGetAsyncError"));
      l.table.commAbort = reinterpret_cast<decltype(l.table.commAbort)>(sym("ncclCommAbort"));
      l.table.commDestroy = reinterpret_cast<decltype(l.table.commDestroy)>(sym("ncclCommDestroy"));
      l.table.getErrorString = reinterpret_cast<decltype(l.table.getErrorString)>(sym("ncclGetErrorString"));
      l.table.getVersion = reinterpret_cast<decltype(l.table.getVersion)>(sym("ncclGetVersion"));
      if (ok) {
        l.api = &l.table;
        Dl_info di;  // the file the loader found, for diagnostics
        l.library = dladdr(reinterpret_cast<void*>(l.table.getVersion), &di) && di.dli_fname ? di.dli_fname : name;
      } else {
        dlclose(h);
      }
    }
#endif
  }
  if (!l.api && reason) *reason = l.reason;
  return l.api;
}

// A collective issued on the comm stream, watched until its event completes.
struct Watched {
  cudaEvent_t event;
  std::string what;
  std::chrono::steady_clock::time_point deadline;
};

struct Comm {
  const NcclApi* api = nullptr;
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  int rank = 0, world = 1;
  uint64_t calls = 0;
  double timeoutS = 300;
  // The watchdog.
  std::mutex mu;
  std::condition_variable wake;
  std::deque<Watched> pending;
  bool stop = false;
  std::thread watchdog;
  // What the watchdog does when a collective fails or does not complete: the job's communicator ends the
  // job (never returns); the self-test's records it in `fault` (under mu) and the watchdog stops.
  std::function<void(Comm&, const std::string&)> fatal;
  std::string fault;
};

std::string ncclMessage(const NcclApi* api, ncclResult_t r) {
  return std::string(api->getErrorString ? api->getErrorString(r) : "NCCL error") + " (ncclResult_t " +
         std::to_string(static_cast<int>(r)) + ")";
}

void check(const NcclApi* api, ncclResult_t r, const char* op, const char* call, const char* file, int line) {
  if (r != ncclSuccess) fail(op, std::string(call) + " failed: " + ncclMessage(api, r), file, line);
}
#define AXN_NCCL_CHECK(api, call, op) check((api), (call), (op), #call, __FILE__, __LINE__)

// Polls the communicator's asynchronous error and the oldest pending collective's event; a collective not
// complete within the timeout, or an NCCL error, is fatal (for the job's communicator: a peer that died
// mid-collective would otherwise leave this rank waiting in a kernel for ever).
void watchdogLoop(Comm* c) {
  std::unique_lock<std::mutex> lock(c->mu);
  for (;;) {
    c->wake.wait_for(lock, std::chrono::milliseconds(100), [&] { return c->stop || !c->pending.empty(); });
    if (c->stop) return;
    if (c->pending.empty()) continue;
    Watched w = c->pending.front();
    lock.unlock();
    std::string why;
    ncclResult_t async = ncclSuccess;
    const ncclResult_t r = c->api->commGetAsyncError(c->comm, &async);
    if (r != ncclSuccess || async != ncclSuccess) {
      why = "NCCL reported an error during " + w.what + ": " + ncclMessage(c->api, r != ncclSuccess ? r : async);
    } else {
      const cudaError_t q = cudaEventQuery(w.event);
      if (q == cudaSuccess) {
        lock.lock();
        cudaEventDestroy(w.event);
        c->pending.pop_front();
        continue;
      }
      if (q != cudaErrorNotReady) {
        why = "CUDA error during " + w.what + ": " + cudaGetErrorString(q);
      } else if (std::chrono::steady_clock::now() > w.deadline) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.0f", c->timeoutS);
        why = w.what + " did not complete within " + buf +
              " s (AXN_DIST_TIMEOUT_S); a rank may have died or be calling the collectives in another order";
      }
    }
    if (!why.empty()) {
      c->fatal(*c, why);
      return;
    }
    lock.lock();
    // Not complete yet: poll again in a millisecond, not at once (the wait above returns at once while
    // anything is pending: without this the watchdog would keep a core busy during every collective)
    c->wake.wait_for(lock, std::chrono::milliseconds(1), [&] { return c->stop; });
  }
}

void startWatchdog(Comm& c) { c.watchdog = std::thread(watchdogLoop, &c); }

void stopWatchdog(Comm& c) {
  {
    std::lock_guard<std::mutex> lock(c.mu);
    c.stop = true;
  }
  c.wake.notify_all();
  if (c.watchdog.joinable()) c.watchdog.join();
  for (Watched& w : c.pending) cudaEventDestroy(w.event);
  c.pending.clear();
}

void watch(Comm& c, const std::string& what) {
  cudaEvent_t ev = nullptr;
  AXN_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), "dist.watch");
  AXN_CUDA_CHECK(cudaEventRecord(ev, c.stream), "dist.watch");
  {
    std::lock_guard<std::mutex> lock(c.mu);
    const auto t = std::chrono::steady_clock::now() +
                   std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(c.timeoutS));
    c.pending.push_back({ev, what, t});
  }
  c.wake.notify_one();
}

// The fusion buffer: `ptrs` copied into one block on the compute stream (a single tensor is used in place).
float* fuse(const std::vector<float*>& ptrs, const std::vector<size_t>& counts, size_t total) {
  if (ptrs.size() == 1) return ptrs[0];
  float* buf = static_cast<float*>(cuda::deviceAlloc(total * sizeof(float)));
  size_t off = 0;
  for (size_t i = 0; i < ptrs.size(); i++) {
    cuda::copyDeviceToDevice(buf + off, ptrs[i], counts[i] * sizeof(float));
    off += counts[i];
  }
  return buf;
}

void unfuse(float* buf, const std::vector<float*>& ptrs, const std::vector<size_t>& counts) {
  if (ptrs.size() == 1) return;
  size_t off = 0;
  for (size_t i = 0; i < ptrs.size(); i++) {
    cuda::copyDeviceToDevice(ptrs[i], buf + off, counts[i] * sizeof(float));
    off += counts[i];
  }
}

// A collective's NCCL call on the communication stream, ordered with the compute stream (context.h): the
// comm stream waits for the compute stream (wait 1: the inputs are written), NCCL's call, the watchdog's
// event, and the compute stream waits for the comm stream (wait 2: later work sees the result).
template <class Issue>
void onCommStream(Comm& c, const char* op, const char* call, const std::string& what, Issue issue) {
  cudaStream_t compute = cuda::stream();
  cuda::streamWait(c.stream, compute);  // wait 1
  check(c.api, issue(), op, call, __FILE__, __LINE__);
  watch(c, what);
  cuda::streamWait(compute, c.stream);  // wait 2
}

// The job's collectives on communicator `c` (allReduceCuda, broadcastCuda; the self-test's too).
template <class Issue>
void collectiveOn(Comm& c, const char* op, const char* call, const std::vector<float*>& ptrs, const std::vector<size_t>& counts,
                  Issue issue, float scale) {
  size_t total = 0;
  for (size_t n : counts) total += n;
  if (total == 0) return;
  float* buf = fuse(ptrs, counts, total);
  const bool fused = buf != ptrs[0] || ptrs.size() > 1;
  try {
    onCommStream(c, op, call, std::string("NCCL ") + op + " #" + std::to_string(++c.calls) + " (" + std::to_string(total) + " floats)",
                 [&] { return issue(c, buf, total); });
    if (scale != 1.0f) ops::scale_cuda(buf, static_cast<int64_t>(total), scale);
    unfuse(buf, ptrs, counts);
  } catch (...) {
    if (fused) cuda::deviceFree(buf);
    throw;
  }
  if (fused) cuda::deviceFree(buf);  // in compute-stream order, after wait 2
}

void allReduceOn(Comm& c, const std::vector<float*>& ptrs, const std::vector<size_t>& counts, bool mean) {
  const float scale = mean ? 1.0f / static_cast<float>(c.world) : 1.0f;
  collectiveOn(
      c, "allReduce", "ncclAllReduce", ptrs, counts,
      [](Comm& c, float* buf, size_t n) { return c.api->allReduce(buf, buf, n, ncclFloat32, ncclSum, c.comm, c.stream); },
      scale);
}

void broadcastOn(Comm& c, const std::vector<float*>& ptrs, const std::vector<size_t>& counts, int root) {
  collectiveOn(
      c, "broadcast", "ncclBroadcast", ptrs, counts,
      [root](Comm& c, float* buf, size_t n) { return c.api->broadcast(buf, buf, n, ncclFloat32, root, c.comm, c.stream); },
      1.0f);
}

// ---- the self-test: a communicator of one rank on this process's device -----------------------------

constexpr size_t kGuard = 16;                // floats past each receive buffer that must stay untouched
constexpr uint32_t kPoison = 0xffffffffu;    // a NaN: what poisoned buffers hold (memset 0xff)
const size_t kSizes[] = {1, 7, 1000003};     // floats: one, odd, and a million and three

// A device buffer from the caching allocator (freed in compute-stream order).
struct DeviceFloats {
  float* p = nullptr;
  size_t n = 0;
  explicit DeviceFloats(size_t count) : p(static_cast<float*>(cuda::deviceAlloc(count * sizeof(float)))), n(count) {}
  ~DeviceFloats() {
    if (p) cuda::deviceFree(p);
  }
  DeviceFloats(const DeviceFloats&) = delete;
  DeviceFloats& operator=(const DeviceFloats&) = delete;
};

// Fresh values every call (a generator seeded from the clock): integers of 24 bits / 4096, exact in
// float32, of both signs, so that a buffer holding an earlier check's data, or poison, never passes.
std::vector<float> freshFloats(size_t n) {
  static std::atomic<uint64_t> state{static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) | 1};
  uint64_t s = state.fetch_add(0x9e3779b97f4a7c15ull);
  std::vector<float> v(n);
  for (float& x : v) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    x = static_cast<float>(static_cast<int64_t>(s >> 40) - (int64_t(1) << 23)) / 4096.0f;
  }
  return v;
}

std::string floatsWord(size_t n) { return std::to_string(n) + (n == 1 ? " float" : " floats"); }

// `got` must hold `want`'s bits, then `guard` poisoned floats.
void expectBits(const char* op, const std::string& what, const std::vector<float>& got, const std::vector<float>& want,
                size_t guard) {
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < want.size(); i++)
    if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0 && bad++ == 0) first = i;
  if (bad) {
    uint32_t g;
    std::memcpy(&g, &got[first], sizeof g);
    char buf[160];
    std::snprintf(buf, sizeof buf, "element %zu is %g (bits 0x%08x), expected %g; %zu of %zu elements differ", first,
                  static_cast<double>(got[first]), g, static_cast<double>(want[first]), bad, want.size());
    fail(op, what + ": " + buf, __FILE__, __LINE__);
  }
  for (size_t i = 0; i < guard; i++) {
    uint32_t g;
    std::memcpy(&g, &got[want.size() + i], sizeof g);
    if (g != kPoison)
      fail(op, what + ": wrote past the end of the receive buffer (guard float " + std::to_string(i) + " changed)", __FILE__,
           __LINE__);
  }
}

// Waits until the compute stream (and so, through wait 2, the comm stream's collective) has passed this
// point, polling the communicator's asynchronous error, within the communicator's timeout. The emulated
// device runs work only while the host waits for it (native/cuda/emu/runtime.cc): it synchronises.
void awaitCompute(Comm& c, const char* op, const std::string& what) {
  cudaEvent_t ev = nullptr;
  AXN_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), op);
  cudaError_t q = cudaEventRecord(ev, cuda::stream());
  std::string why;
#ifdef AXN_CUDA_EMU
  if (q == cudaSuccess) q = cudaEventSynchronize(ev);
#else
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(c.timeoutS));
  while (q == cudaSuccess) {
    q = cudaEventQuery(ev);
    if (q != cudaErrorNotReady) break;
    q = cudaSuccess;
    ncclResult_t async = ncclSuccess;
    const ncclResult_t r = c.api->commGetAsyncError(c.comm, &async);
    if (r != ncclSuccess || async != ncclSuccess) {
      why = "ncclCommGetAsyncError: " + ncclMessage(c.api, r != ncclSuccess ? r : async);
      break;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.0f", c.timeoutS);
      why = std::string("did not complete within ") + buf + " s (AXN_DIST_TIMEOUT_S)";
      break;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
#endif
  cudaEventDestroy(ev);
  if (why.empty() && q != cudaSuccess) why = std::string("CUDA error: ") + cudaGetErrorString(q);
  if (why.empty()) {  // the collective has completed: its asynchronous error, and the watchdog's finding
    ncclResult_t async = ncclSuccess;
    const ncclResult_t r = c.api->commGetAsyncError(c.comm, &async);
    if (r != ncclSuccess || async != ncclSuccess) why = "ncclCommGetAsyncError: " + ncclMessage(c.api, r != ncclSuccess ? r : async);
    std::lock_guard<std::mutex> lock(c.mu);
    if (why.empty() && !c.fault.empty()) why = "the watchdog: " + c.fault;
  }
  if (!why.empty()) fail(op, what + ": " + why, __FILE__, __LINE__);
}

std::vector<float> readBack(const float* p, size_t n) {
  std::vector<float> v(n);
  cuda::copyDeviceToHost(v.data(), p, n * sizeof(float));
  return v;
}

// One out-of-place NCCL call as the job orders its calls: the send buffer written on the compute stream
// (poisoned first, then the values copied in from a staging buffer: a comm stream that did not wait reads
// poison), the receive buffer and its guard poisoned, the call on the comm stream between wait 1 and wait 2,
// then the receive buffer read on the compute stream (without wait 2 it reads poison).
template <class Call>
void outOfPlace(Comm& c, const char* op, const char* call, const std::string& what, size_t n,
                std::vector<std::unique_ptr<DeviceFloats>>& keep, Call issue) {
  const std::vector<float> want = freshFloats(n);
  keep.push_back(std::make_unique<DeviceFloats>(n));
  float* staging = keep.back()->p;
  keep.push_back(std::make_unique<DeviceFloats>(n));
  float* send = keep.back()->p;
  keep.push_back(std::make_unique<DeviceFloats>(n + kGuard));
  float* recv = keep.back()->p;
  cuda::copyHostToDevice(staging, want.data(), n * sizeof(float));
  cuda::memsetBytes(send, 0xff, n * sizeof(float));
  cuda::memsetBytes(recv, 0xff, (n + kGuard) * sizeof(float));
  cuda::copyDeviceToDevice(send, staging, n * sizeof(float));
  onCommStream(c, op, call, what, [&] { return issue(send, recv, n); });
  awaitCompute(c, op, what);
  expectBits(op, what, readBack(recv, n + kGuard), want, kGuard);
}

// The job's allReduce or broadcast (collectiveOn: fusion, the two waits, the watchdog) on tensors of
// `sizes` floats, in place; with one rank every tensor must come back bit for bit.
template <class Run>
void jobPath(Comm& c, const char* op, const std::string& what, const std::vector<size_t>& sizes,
             std::vector<std::unique_ptr<DeviceFloats>>& keep, Run run) {
  std::vector<std::vector<float>> want;
  std::vector<float*> ptrs;
  for (size_t n : sizes) {
    want.push_back(freshFloats(n));
    keep.push_back(std::make_unique<DeviceFloats>(n));
    ptrs.push_back(keep.back()->p);
    cuda::copyHostToDevice(ptrs.back(), want.back().data(), n * sizeof(float));
  }
  run(ptrs, sizes);
  awaitCompute(c, op, what);
  for (size_t i = 0; i < sizes.size(); i++)
    expectBits(op, what + ", tensor " + std::to_string(i), readBack(ptrs[i], sizes[i]), want[i], 0);
}

void selfTestChecks(Comm& c, const char* op, std::vector<std::string>& checks, std::vector<std::unique_ptr<DeviceFloats>>& keep) {
  int collectives = 0;
  for (size_t n : kSizes) {
    const std::string what = "ncclAllReduce(sum, float32) of " + floatsWord(n) + ", out of place";
    outOfPlace(c, op, "ncclAllReduce", what, n, keep, [&](const float* send, float* recv, size_t count) {
      return c.api->allReduce(send, recv, count, ncclFloat32, ncclSum, c.comm, c.stream);
    });
    checks.push_back(what + ": the input, bit for bit; the " + std::to_string(kGuard) + " floats past it untouched");
    keep.clear();  // complete: awaitCompute saw the compute stream pass wait 2
    collectives++;
  }
  for (size_t n : kSizes) {
    const std::string what = "ncclBroadcast(float32, root 0) of " + floatsWord(n) + ", out of place";
    outOfPlace(c, op, "ncclBroadcast", what, n, keep, [&](const float* send, float* recv, size_t count) {
      return c.api->broadcast(send, recv, count, ncclFloat32, 0, c.comm, c.stream);
    });
    checks.push_back(what + ": the input, bit for bit; the " + std::to_string(kGuard) + " floats past it untouched");
    keep.clear();
    collectives++;
  }
  const std::vector<size_t> three(std::begin(kSizes), std::end(kSizes));
  std::string sizes;
  for (size_t n : three) sizes += (sizes.empty() ? "" : ", ") + std::to_string(n);
  {
    const std::string what = "allReduce (the job's code: tensor fusion, comm stream, event waits, watchdog), sum, of 3 tensors (" + sizes + " floats) in place";
    jobPath(c, op, what, three, keep, [&](const std::vector<float*>& p, const std::vector<size_t>& n) { allReduceOn(c, p, n, false); });
    checks.push_back(what + ": unchanged, bit for bit");
    keep.clear();
    collectives++;
  }
  {
    const std::string what = "allReduce (the job's code), mean, of 1 tensor (" + floatsWord(kSizes[2]) + ") in place";
    jobPath(c, op, what, {kSizes[2]}, keep, [&](const std::vector<float*>& p, const std::vector<size_t>& n) { allReduceOn(c, p, n, true); });
    checks.push_back(what + ": unchanged, bit for bit");
    keep.clear();
    collectives++;
  }
  {
    const std::string what = "broadcast (the job's code), root 0, of 3 tensors (" + sizes + " floats) in place";
    jobPath(c, op, what, three, keep, [&](const std::vector<float*>& p, const std::vector<size_t>& n) { broadcastOn(c, p, n, 0); });
    checks.push_back(what + ": unchanged, bit for bit");
    keep.clear();
    collectives++;
  }
  // The watchdog has seen every watched collective complete (it drops an event once it has completed).
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(c.mu);
      if (!c.fault.empty()) fail(op, "the watchdog: " + c.fault, __FILE__, __LINE__);
      if (c.pending.empty()) break;
    }
    if (std::chrono::steady_clock::now() > until)
      fail(op, "the watchdog did not see every collective complete within 10 s", __FILE__, __LINE__);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  checks.push_back("ncclCommGetAsyncError: ncclSuccess after each of the " + std::to_string(collectives) +
                   " collectives; the watchdog saw each complete");
}

[[maybe_unused]] std::string versionText(int v) {
  // NCCL_VERSION(X, Y, Z): X * 1000 + Y * 100 + Z before 2.9, X * 10000 + Y * 100 + Z since.
  const int major = v >= 10000 ? v / 10000 : v / 1000, minor = v >= 10000 ? v / 100 % 100 : v / 100 % 10, patch = v % 100;
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

}  // namespace

bool ncclAvailable(std::string* reason) { return load(reason) != nullptr; }

NcclSelfTestResult ncclSelfTest() {
  const char* op = "ncclSelfTest";
  std::string why;
  const NcclApi* api = load(&why);
  if (!api) fail(op, why, __FILE__, __LINE__);  // "could not load NCCL (tried: ...)", or a library too old
  NcclSelfTestResult res;
  res.library = loaded().library;
  check(api, api->getVersion(&res.version), op, "ncclGetVersion", __FILE__, __LINE__);
#ifdef AXN_CUDA_EMU
  res.checks.push_back("ncclGetVersion: 0 (the emulated NCCL is no release of NCCL)");
#else
  if (res.version < 2400)  // 2.4.0 is 2400 in the old encoding
    fail(op, res.library + " says it is NCCL " + versionText(res.version) + " (ncclGetVersion " + std::to_string(res.version) +
                 "); NCCL 2.4 or newer is needed",
         __FILE__, __LINE__);
  res.checks.push_back("ncclGetVersion: " + std::to_string(res.version) + " (NCCL " + versionText(res.version) + ")");
#endif
  cuda::stream();  // the context, on the selected device, and this thread bound to it
  const int device = cuda::currentDevice();
  AXN_CUDA_CHECK(cudaSetDevice(device), op);  // NCCL creates the communicator on the calling thread's device
  auto c = std::make_unique<Comm>();
  c->api = api;
  c->stream = cuda::commStream();
  c->timeoutS = 60;
  if (const char* t = std::getenv("AXN_DIST_TIMEOUT_S")) {
    const double v = std::atof(t);
    if (v > 0) c->timeoutS = v;
  }
  c->fatal = [](Comm& cc, const std::string& w) {
    std::lock_guard<std::mutex> lock(cc.mu);
    cc.fault = w;
  };
  ncclUniqueId id;
  std::memset(&id, 0, sizeof id);
  check(api, api->getUniqueId(&id), op, "ncclGetUniqueId", __FILE__, __LINE__);
  check(api, api->commInitRank(&c->comm, 1, id, 0), op, "ncclCommInitRank(nranks 1, rank 0)", __FILE__, __LINE__);
  res.checks.push_back("ncclGetUniqueId, ncclCommInitRank(nranks 1, rank 0) on device " + std::to_string(device));
  startWatchdog(*c);
  // The buffers outlive the communicator's work: on a failure the communicator is aborted and the device
  // drained before they go back to the allocator (a collective still queued would write into a reused block).
  std::vector<std::unique_ptr<DeviceFloats>> keep;
  try {
    selfTestChecks(*c, op, res.checks, keep);
  } catch (...) {
    stopWatchdog(*c);
    api->commAbort(c->comm);
    try {
      cuda::synchronize();
    } catch (const std::exception&) {
      // a sticky device error: the error being thrown says more
    }
    throw;
  }
  stopWatchdog(*c);
  check(api, api->commDestroy(c->comm), op, "ncclCommDestroy", __FILE__, __LINE__);
  res.checks.push_back("ncclCommDestroy");
  return res;
}

#ifdef AXN_MPI
// ---- the job's communicator (initDistributed) ----------------------------------------------------------
namespace {

Comm*& comm() {
  static Comm* c = nullptr;
  return c;
}

Comm& ready(const char* op) {
  Comm* c = comm();
  if (!c) {
    std::string why;
    if (!load(&why)) fail(op, "CUDA tensors need NCCL, which could not be loaded: " + why, __FILE__, __LINE__);
    if (!initialised()) fail(op, "initDistributed() has not been called", __FILE__, __LINE__);
    if (finalized()) fail(op, "finalizeDistributed() was already called", __FILE__, __LINE__);
    fail(op, "no NCCL communicator (NCCL could not be loaded on every rank, or this rank has no CUDA device)", __FILE__,
         __LINE__);
  }
  return *c;
}

}  // namespace

void ncclInit(int rank, int world) {
  const char* op = "initDistributed";
  std::string why;
  const NcclApi* api = load(&why);
  if (!api) fail(op, why, __FILE__, __LINE__);
  cuda::stream();  // creates the context on the selected device
  auto* c = new Comm();
  c->api = api;
  c->rank = rank;
  c->world = world;
  if (const char* t = std::getenv("AXN_DIST_TIMEOUT_S")) {
    const double v = std::atof(t);
    if (v > 0) c->timeoutS = v;
  }
  c->fatal = [](Comm& cc, const std::string& w) {
    std::fprintf(stderr, "alexnet-cuda: rank %d of %d: %s; aborting the NCCL communicator and the MPI job\n", cc.rank,
                 cc.world, w.c_str());
    std::fflush(stderr);
    cc.api->commAbort(cc.comm);
    mpiAbort(1);
  };
  ncclUniqueId id;
  std::memset(&id, 0, sizeof id);
  if (rank == 0) AXN_NCCL_CHECK(api, api->getUniqueId(&id), op);
  const int rc = MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
  if (rc != MPI_SUCCESS) fail(op, "MPI_Bcast of the NCCL unique id failed", __FILE__, __LINE__);
  AXN_NCCL_CHECK(api, api->commInitRank(&c->comm, world, id, rank), op);
  c->stream = cuda::commStream();
  startWatchdog(*c);
  comm() = c;
}

bool ncclReady() { return comm() != nullptr; }

void ncclShutdown(bool abort) {
  Comm* c = comm();
  if (!c) return;
  if (abort) {
    c->api->commAbort(c->comm);
    return;  // the process ends now (abortJob): nothing else to release
  }
  comm() = nullptr;
  bool deviceOk = true;
  try {
    cuda::synchronize();  // the compute, copy and communication streams
  } catch (const std::exception&) {
    deviceOk = false;  // a sticky device error: the communicator's work may never complete
  }
  stopWatchdog(*c);
  if (deviceOk) c->api->commDestroy(c->comm);
  else c->api->commAbort(c->comm);
  delete c;
}

// NCCL's all-reduce sums in an order fixed by the topology, the rank count and the size (ring or tree), the
// same on every run of the same job, and leaves the same bits on every rank.
void allReduceCuda(const std::vector<float*>& ptrs, const std::vector<size_t>& counts, bool mean) {
  allReduceOn(ready("allReduce"), ptrs, counts, mean);
}

void broadcastCuda(const std::vector<float*>& ptrs, const std::vector<size_t>& counts, int root) {
  broadcastOn(ready("broadcast"), ptrs, counts, root);
}
#endif  // AXN_MPI

}  // namespace axn::dist
#endif  // AXN_WITH_CUDA
