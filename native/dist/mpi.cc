// The MPI backend of the communicator: init/finalize/abort, the CPU collectives and the host
// collectives. See comm.h for the ordering and determinism rules.
#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>

#include "common.h"
#include "cpu_stream.h"
#include "host_alloc.h"
#include "dist/comm.h"
#ifdef AXN_WITH_CUDA
#include "cuda/context.h"
#endif

namespace axn::dist {

namespace {

struct State {
  std::mutex mu;  // init / finalize (JS thread, libuv thread, exit hook)
  // Read without the mutex by the CPU stream's worker and the bindings.
  std::atomic<bool> initialised{false};
  std::atomic<bool> finalized{false};
  bool weInitialisedMpi = false;
  Info info;
  MPI_Comm comm = MPI_COMM_NULL;  // a duplicate of MPI_COMM_WORLD for the collectives of the CPU stream
};
State& st() {
  static State* s = new State();  // never destroyed: the exit hook may run during static destruction
  return *s;
}

std::string mpiError(int code) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, buf, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(buf, static_cast<size_t>(len));
}

#define AXN_MPI_CHECK(call, what)                                                                    \
  do {                                                                                               \
    const int axn_rc_ = (call);                                                                      \
    if (axn_rc_ != MPI_SUCCESS) ::axn::fail((what), std::string(#call) + " failed: " + mpiError(axn_rc_), __FILE__, __LINE__); \
  } while (0)

MPI_Comm commOrThrow(const char* op) {
  State& s = st();
  if (s.finalized) fail(op, "finalizeDistributed() was already called", __FILE__, __LINE__);
  if (!s.initialised) fail(op, "initDistributed() has not been called", __FILE__, __LINE__);
  return s.comm;
}

// The block partition of n elements over w ranks: rank i holds counts[i] elements from displs[i].
void partition(size_t n, int w, std::vector<int>& counts, std::vector<int>& displs) {
  counts.assign(static_cast<size_t>(w), 0);
  displs.assign(static_cast<size_t>(w), 0);
  size_t off = 0;
  for (int i = 0; i < w; i++) {
    const size_t c = n / static_cast<size_t>(w) + (static_cast<size_t>(i) < n % static_cast<size_t>(w) ? 1 : 0);
    counts[i] = static_cast<int>(c);
    displs[i] = static_cast<int>(off);
    off += c;
  }
}

// Segments of at most this many floats: int counts for MPI, and a bounded receive buffer.
constexpr size_t kSegment = size_t(1) << 26;

// A float buffer from the host block cache (host_alloc.h): the same sizes every step come back without
// touching the OS. A fresh mapping per call costs its page faults in every collective: measured here (2
// ranks, Open MPI 4.1, shared memory), MPI_Alltoallv of 108 MB into a fresh buffer took 920–950 ms, into a
// reused one 25–35 ms.
struct HostFloats {
  float* p = nullptr;
  size_t n = 0;
  explicit HostFloats(size_t count) : p(count ? static_cast<float*>(host::alloc(count * sizeof(float))) : nullptr), n(count) {}
  ~HostFloats() {
    if (p) host::free(p, n * sizeof(float));
  }
  HostFloats(const HostFloats&) = delete;
  HostFloats& operator=(const HostFloats&) = delete;
};

}  // namespace

void allReduceSumDeterministic(float* buf, size_t n, const void* mpiComm) {
  const char* op = "allReduce";
  MPI_Comm comm = *static_cast<const MPI_Comm*>(mpiComm);
  int w = 1, r = 0;
  AXN_MPI_CHECK(MPI_Comm_size(comm, &w), op);
  AXN_MPI_CHECK(MPI_Comm_rank(comm, &r), op);
  if (w == 1 || n == 0) return;
  std::vector<int> counts, displs, rcounts(static_cast<size_t>(w)), rdispls(static_cast<size_t>(w));
  std::unique_ptr<HostFloats> recv;
  for (size_t off = 0; off < n; off += kSegment) {
    const size_t m = std::min(kSegment, n - off);
    float* seg = buf + off;
    partition(m, w, counts, displs);
    const int mine = counts[r];
    for (int i = 0; i < w; i++) {
      rcounts[i] = mine;
      rdispls[i] = i * mine;
    }
    const size_t need = static_cast<size_t>(mine) * static_cast<size_t>(w);
    if (!recv || need > recv->n) recv = std::make_unique<HostFloats>(need);
    // Rank i's block r arrives at recv[i * mine]: a copy, no arithmetic.
    AXN_MPI_CHECK(MPI_Alltoallv(seg, counts.data(), displs.data(), MPI_FLOAT, recv->p, rcounts.data(), rdispls.data(),
                                MPI_FLOAT, comm),
                  op);
    // Rank order 0..w-1, each element once, float32: ((x0 + x1) + x2) + ...
    float* acc = seg + displs[r];
    if (mine > 0) std::memcpy(acc, recv->p, static_cast<size_t>(mine) * sizeof(float));
    for (int i = 1; i < w && mine > 0; i++) {
      const float* src = recv->p + static_cast<size_t>(i) * static_cast<size_t>(mine);
      for (int j = 0; j < mine; j++) acc[j] += src[j];
    }
    // Every rank's reduced block to every rank (a copy).
    AXN_MPI_CHECK(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, seg, counts.data(), displs.data(), MPI_FLOAT, comm), op);
  }
}

Info init() {
  State& s = st();
  std::lock_guard<std::mutex> lock(s.mu);
  const char* op = "initDistributed";
  if (s.finalized) fail(op, "finalizeDistributed() was already called; MPI cannot be initialised twice", __FILE__, __LINE__);
  if (s.initialised) return s.info;
  int already = 0;
  AXN_MPI_CHECK(MPI_Initialized(&already), op);
#ifdef AXN_CUDA_EMU
  // The emulated NCCL calls MPI from the emulated device's thread while the CPU stream's worker may too.
  const int want = MPI_THREAD_MULTIPLE;
#else
  const int want = MPI_THREAD_SERIALIZED;
#endif
  int provided = 0;
  if (!already) {
    AXN_MPI_CHECK(MPI_Init_thread(nullptr, nullptr, want, &provided), op);
    s.weInitialisedMpi = true;
  } else {
    AXN_MPI_CHECK(MPI_Query_thread(&provided), op);
  }
  if (provided < want)
    fail(op, std::string("the MPI library provides thread level ") + std::to_string(provided) + ", this addon needs " +
                 (want == MPI_THREAD_MULTIPLE ? "MPI_THREAD_MULTIPLE" : "MPI_THREAD_SERIALIZED"),
         __FILE__, __LINE__);
  // Errors come back as return codes, which become JS errors; a dead peer is mpirun's to handle.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  Info info;
  AXN_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &info.rank), op);
  AXN_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &info.world), op);
  MPI_Comm local = MPI_COMM_NULL;
  AXN_MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, info.rank, MPI_INFO_NULL, &local), op);
  AXN_MPI_CHECK(MPI_Comm_rank(local, &info.localRank), op);
  AXN_MPI_CHECK(MPI_Comm_size(local, &info.localWorld), op);
  MPI_Comm_free(&local);
  AXN_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &s.comm), op);
#ifdef AXN_WITH_CUDA
  std::string why;
  const int devices = cuda::deviceCount(&why);
  if (devices > 0) {
    // Before the CUDA context exists: throws if a CUDA tensor was already created on another device.
    cuda::selectDevice(info.localRank % devices);
    // NCCL on every rank or on none (a rank without it would leave the others waiting in the bootstrap).
    int ok = ncclAvailable(nullptr) ? 1 : 0, all = 0;
    AXN_MPI_CHECK(MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD), op);
    if (all) {
      ncclInit(info.rank, info.world);
      info.nccl = true;
    }
  }
#endif
  s.info = info;
  s.initialised = true;
  return info;
}

bool initialised() { return st().initialised; }
bool finalized() { return st().finalized; }
int worldRank() { return st().info.rank; }

void finalize() {
  State& s = st();
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.finalized || !s.initialised) return;
  cpu::drain();  // collectives still queued on the CPU stream
#ifdef AXN_WITH_CUDA
  if (s.info.nccl) ncclShutdown(false);
#endif
  MPI_Comm_free(&s.comm);
  s.finalized = true;
  int done = 0;
  MPI_Finalized(&done);
  if (s.weInitialisedMpi && !done) MPI_Finalize();
}

void mpiAbort(int code) {
  int init = 0, done = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&done);
  if (init && !done) MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

void abortJob(int code, const std::string& message) {
  std::fprintf(stderr, "%s\n", message.c_str());
  std::fflush(stderr);
#ifdef AXN_WITH_CUDA
  if (st().info.nccl) ncclShutdown(true);
#endif
  mpiAbort(code);
}

void allReduceCpu(const std::vector<float*>& ptrs, const std::vector<size_t>& counts, bool mean) {
  MPI_Comm comm = commOrThrow("allReduce");
  size_t total = 0;
  for (size_t c : counts) total += c;
  const int w = st().info.world;
  if (total == 0 || w == 1) return;  // one rank: the sum is the tensor, the mean too
  const float scale = 1.0f / static_cast<float>(w);
  if (ptrs.size() == 1) {
    allReduceSumDeterministic(ptrs[0], total, &comm);
    if (mean)
      for (size_t j = 0; j < total; j++) ptrs[0][j] *= scale;
    return;
  }
  // Tensor fusion (Horovod): one buffer, one collective.
  HostFloats fusedBuf(total);
  float* const fusedPtr = fusedBuf.p;
  size_t off = 0;
  for (size_t i = 0; i < ptrs.size(); i++) {
    std::memcpy(fusedPtr + off, ptrs[i], counts[i] * sizeof(float));
    off += counts[i];
  }
  allReduceSumDeterministic(fusedPtr, total, &comm);
  off = 0;
  for (size_t i = 0; i < ptrs.size(); i++) {
    if (mean)
      for (size_t j = 0; j < counts[i]; j++) ptrs[i][j] = fusedPtr[off + j] * scale;
    else
      std::memcpy(ptrs[i], fusedPtr + off, counts[i] * sizeof(float));
    off += counts[i];
  }
}

void broadcastCpu(const std::vector<float*>& ptrs, const std::vector<size_t>& counts, int root) {
  MPI_Comm comm = commOrThrow("broadcast");
  if (st().info.world == 1) return;
  for (size_t i = 0; i < ptrs.size(); i++)
    for (size_t off = 0; off < counts[i]; off += kSegment) {
      const int m = static_cast<int>(std::min(kSegment, counts[i] - off));
      AXN_MPI_CHECK(MPI_Bcast(ptrs[i] + off, m, MPI_FLOAT, root, comm), "broadcast");
    }
}

void allReduceHost(double* values, size_t n, HostOp op) {
  MPI_Comm comm = commOrThrow("allReduceHost");
  const int w = st().info.world;
  if (n == 0 || w == 1) return;
  if (n > static_cast<size_t>(INT_MAX / w)) fail("allReduceHost", "too many values for a host reduction", __FILE__, __LINE__);
  // Gathered, then reduced in rank order: the same bits on every rank.
  std::vector<double> all(n * static_cast<size_t>(w));
  AXN_MPI_CHECK(MPI_Allgather(values, static_cast<int>(n), MPI_DOUBLE, all.data(), static_cast<int>(n), MPI_DOUBLE, comm),
                "allReduceHost");
  for (size_t j = 0; j < n; j++) {
    double a = all[j];
    for (int i = 1; i < w; i++) {
      const double v = all[static_cast<size_t>(i) * n + j];
      if (op == HostOp::Sum) a += v;
      else if (op == HostOp::Max) a = (v > a || std::isnan(v)) ? v : a;
      else a = (v < a || std::isnan(v)) ? v : a;
    }
    values[j] = a;
  }
}

std::vector<std::string> allGatherString(const std::string& s) {
  MPI_Comm comm = commOrThrow("allGatherString");
  const int w = st().info.world;
  if (s.size() > static_cast<size_t>(INT_MAX)) fail("allGatherString", "string too long", __FILE__, __LINE__);
  int len = static_cast<int>(s.size());
  std::vector<int> lens(static_cast<size_t>(w)), displs(static_cast<size_t>(w));
  AXN_MPI_CHECK(MPI_Allgather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, comm), "allGatherString");
  size_t total = 0;
  for (int i = 0; i < w; i++) {
    displs[i] = static_cast<int>(total);
    total += static_cast<size_t>(lens[i]);
  }
  if (total > static_cast<size_t>(INT_MAX)) fail("allGatherString", "strings too long", __FILE__, __LINE__);
  std::vector<char> all(std::max<size_t>(total, 1));
  AXN_MPI_CHECK(MPI_Allgatherv(s.data(), len, MPI_CHAR, all.data(), lens.data(), displs.data(), MPI_CHAR, comm),
                "allGatherString");
  std::vector<std::string> out;
  for (int i = 0; i < w; i++) out.emplace_back(all.data() + displs[i], static_cast<size_t>(lens[i]));
  return out;
}

void barrier() { AXN_MPI_CHECK(MPI_Barrier(commOrThrow("barrier")), "barrier"); }

#ifndef AXN_WITH_CUDA
bool ncclAvailable(std::string* reason) {
  if (reason) *reason = "this addon was built without the CUDA backend";
  return false;
}
#endif

}  // namespace axn::dist
