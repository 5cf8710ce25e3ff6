// The NCCL backend of the communicator (CUDA builds): NCCL loaded at run time, the communicator
// bootstrapped over MPI, the CUDA collectives on a communication stream, and a watchdog. See comm.h and,
// for the two streams and the caching allocator, native/cuda/context.h.
#ifdef AXN_WITH_CUDA
#include <dlfcn.h>
#include <mpi.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

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
    "library file";

struct Loaded {
  bool tried = false;
  const NcclApi* api = nullptr;
  std::string reason;
  NcclApi table{};
};

Loaded& loaded() {
  static Loaded* l = new Loaded();
  return *l;
}

std::mutex gLoadMu;

const NcclApi* load(std::string* reason) {
  std::lock_guard<std::mutex> lock(gLoadMu);
  Loaded& l = loaded();
  if (!l.tried) {
    l.tried = true;
#ifdef AXN_CUDA_EMU
    const char* why = nullptr;
    l.api = emu::ncclApi(&why);
    if (!l.api) l.reason = why ? why : "the emulated NCCL is not available";
#else
    const char* env = std::getenv("AXN_NCCL_LIB");
    const std::string name = env && *env ? env : "libnccl.so.2";
    void* h = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
    const char* e = h ? nullptr : dlerror();
    const std::string first = e ? e : "dlopen failed";  // the message about libnccl.so.2, not the fallback's
    if (!h && !(env && *env)) h = dlopen("libnccl.so", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      l.reason = std::string("could not load ") + name + " (" + first + "). " + kInstall;
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
      if (ok) l.api = &l.table;
      else dlclose(h);
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
};

Comm*& comm() {
  static Comm* c = nullptr;
  return c;
}

std::string ncclMessage(const NcclApi* api, ncclResult_t r) {
  return std::string(api->getErrorString ? api->getErrorString(r) : "NCCL error") + " (ncclResult_t " +
         std::to_string(static_cast<int>(r)) + ")";
}

void check(const NcclApi* api, ncclResult_t r, const char* op, const char* call, const char* file, int line) {
  if (r != ncclSuccess) fail(op, std::string(call) + " failed: " + ncclMessage(api, r), file, line);
}
#define AXN_NCCL_CHECK(api, call, op) check((api), (call), (op), #call, __FILE__, __LINE__)

[[noreturn]] void watchdogAbort(Comm& c, const std::string& why) {
  std::fprintf(stderr, "alexnet-cuda: rank %d of %d: %s; aborting the NCCL communicator and the MPI job\n", c.rank,
               c.world, why.c_str());
  std::fflush(stderr);
  c.api->commAbort(c.comm);
  mpiAbort(1);
}

// Polls the communicator's asynchronous error and the oldest pending collective's event; a collective not
// complete within the timeout, or an NCCL error, ends the job (a peer that died mid-collective would
// otherwise leave this rank waiting in a kernel for ever).
void watchdogLoop(Comm* c) {
  std::unique_lock<std::mutex> lock(c->mu);
  for (;;) {
    c->wake.wait_for(lock, std::chrono::milliseconds(100), [&] { return c->stop || !c->pending.empty(); });
    if (c->stop) return;
    if (c->pending.empty()) continue;
    Watched w = c->pending.front();
    lock.unlock();
    ncclResult_t async = ncclSuccess;
    const ncclResult_t r = c->api->commGetAsyncError(c->comm, &async);
    if (r != ncclSuccess || async != ncclSuccess)
      watchdogAbort(*c, "NCCL reported an error during " + w.what + ": " + ncclMessage(c->api, r != ncclSuccess ? r : async));
    const cudaError_t q = cudaEventQuery(w.event);
    lock.lock();
    if (q == cudaSuccess) {
      cudaEventDestroy(w.event);
      c->pending.pop_front();
    } else if (q != cudaErrorNotReady) {
      lock.unlock();
      watchdogAbort(*c, "CUDA error during " + w.what + ": " + cudaGetErrorString(q));
    } else if (std::chrono::steady_clock::now() > w.deadline) {
      lock.unlock();
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.0f", c->timeoutS);
      watchdogAbort(*c, w.what + " did not complete within " + buf +
                            " s (AXN_DIST_TIMEOUT_S); a rank may have died or be calling the collectives in another order");
    }
  }
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

template <class Issue>
void collective(const char* op, const std::vector<float*>& ptrs, const std::vector<size_t>& counts, Issue issue,
                float scale) {
  Comm& c = ready(op);
  size_t total = 0;
  for (size_t n : counts) total += n;
  if (total == 0) return;
  cudaStream_t compute = cuda::stream();
  float* buf = fuse(ptrs, counts, total);
  const bool fused = buf != ptrs[0] || ptrs.size() > 1;
  try {
    cuda::streamWait(c.stream, compute);  // wait 1: the inputs (and the fusion copies) are written
    AXN_NCCL_CHECK(c.api, issue(c, buf, total), op);
    watch(c, std::string("NCCL ") + op + " #" + std::to_string(++c.calls) + " (" + std::to_string(total) + " floats)");
    cuda::streamWait(compute, c.stream);  // wait 2: the compute stream sees the result
    if (scale != 1.0f) ops::scale_cuda(buf, static_cast<int64_t>(total), scale);
    unfuse(buf, ptrs, counts);
  } catch (...) {
    if (fused) cuda::deviceFree(buf);
    throw;
  }
  if (fused) cuda::deviceFree(buf);  // in compute-stream order, after wait 2
}

}  // namespace

bool ncclAvailable(std::string* reason) { return load(reason) != nullptr; }

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
  ncclUniqueId id;
  std::memset(&id, 0, sizeof id);
  if (rank == 0) AXN_NCCL_CHECK(api, api->getUniqueId(&id), op);
  const int rc = MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
  if (rc != MPI_SUCCESS) fail(op, "MPI_Bcast of the NCCL unique id failed", __FILE__, __LINE__);
  AXN_NCCL_CHECK(api, api->commInitRank(&c->comm, world, id, rank), op);
  c->stream = cuda::commStream();
  c->watchdog = std::thread(watchdogLoop, c);
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
  {
    std::lock_guard<std::mutex> lock(c->mu);
    c->stop = true;
  }
  c->wake.notify_all();
  c->watchdog.join();
  for (Watched& w : c->pending) cudaEventDestroy(w.event);
  if (deviceOk) c->api->commDestroy(c->comm);
  else c->api->commAbort(c->comm);
  delete c;
}

// NCCL's all-reduce sums in an order fixed by the topology, the rank count and the size (ring or tree), the
// same on every run of the same job, and leaves the same bits on every rank.
void allReduceCuda(const std::vector<float*>& ptrs, const std::vector<size_t>& counts, bool mean) {
  const float scale = mean ? 1.0f / static_cast<float>(ready("allReduce").world) : 1.0f;
  collective(
      "allReduce", ptrs, counts,
      [](Comm& c, float* buf, size_t n) { return c.api->allReduce(buf, buf, n, ncclFloat32, ncclSum, c.comm, c.stream); },
      scale);
}

void broadcastCuda(const std::vector<float*>& ptrs, const std::vector<size_t>& counts, int root) {
  collective(
      "broadcast", ptrs, counts,
      [root](Comm& c, float* buf, size_t n) { return c.api->broadcast(buf, buf, n, ncclFloat32, root, c.comm, c.stream); },
      1.0f);
}

}  // namespace axn::dist
#endif  // AXN_WITH_CUDA
