// The emulated NCCL (native/dist/nccl_api.h's table, AXN_CUDA=EMU builds): the subset of NCCL the
// communicator uses, with NCCL's names, signatures and error codes, implemented over MPI on host memory
// (the emulated device's memory is host memory), enqueued on the given emulated stream like the real
// library's kernels. So CI runs the CUDA path of data-parallel training in several processes.
//  - ncclCommInitRank: a communicator of one rank (nranks 1, rank 0) is local, as in NCCL: no MPI, no
//    peers (builds without MPI have only these; the NCCL self-test, native/dist/nccl.cc, uses one).
//    Several ranks: collective over MPI_COMM_WORLD (nranks and rank must be MPI's; every rank must pass
//    the same unique id, else ncclInvalidArgument); the communicator is an MPI_Comm_dup of it.
//  - ncclAllReduce (float32, sum): the communicator's deterministic rank-order sum (dist::
//    allReduceSumDeterministic), so the emulated CUDA path gives the CPU path's bits exactly;
//    ncclBroadcast: MPI_Bcast. Both run on the emulated device's thread when the stream reaches them
//    (hence MPI_THREAD_MULTIPLE: the CPU stream's worker may be in MPI at the same time, on another
//    communicator); the buffers are checked as kernel arguments are (inside live device allocations).
//    One rank: a copy from the send to the receive buffer (none in place).
//  - an MPI failure inside a collective is a device fault (sticky) and the communicator's async error.
//  - ncclGetVersion answers 0: this is not a release of NCCL.
#ifdef AXN_MPI
#include <mpi.h>
#endif

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>
#include <unistd.h>

#include "dist/comm.h"
#include "dist/nccl_api.h"
#include "internal.h"

struct ncclComm {
#ifdef AXN_MPI
  MPI_Comm comm = MPI_COMM_NULL;  // MPI_COMM_NULL for a communicator of one rank
#endif
  int rank = 0, nranks = 1;
  std::atomic<int> asyncError{ncclSuccess};
  std::atomic<bool> aborted{false};
};

namespace {

#ifdef AXN_MPI
constexpr size_t kChunk = size_t(1) << 28;  // MPI_Bcast counts are int
#endif

// NCCL's own values (NVIDIA/nccl src/nccl.h.in), written out here rather than taken from nccl_api.h, so
// that a wrong value there makes the emulated collectives fail (ncclInvalidArgument) instead of agreeing
// with itself.
constexpr int kNcclFloat32 = 7, kNcclSum = 0;
static_assert(sizeof(ncclUniqueId) == 128, "NCCL_UNIQUE_ID_BYTES is 128");

ncclResult_t emuGetUniqueId(ncclUniqueId* id) {
  if (!id) return ncclInvalidArgument;
  static std::atomic<unsigned> counter{0};
  std::memset(id, 0, sizeof *id);
  std::snprintf(id->internal, sizeof id->internal, "axn-emu-nccl pid %d #%u", static_cast<int>(getpid()), counter++);
  return ncclSuccess;
}

ncclResult_t emuCommInitRank(ncclComm_t* out, int nranks, ncclUniqueId id, int rank) {
  if (!out) return ncclInvalidArgument;
  if (nranks < 1 || rank < 0 || rank >= nranks) return ncclInvalidArgument;
  if (nranks == 1) {  // one rank: nothing to agree on with anyone
    *out = new ncclComm();
    return ncclSuccess;
  }
#ifdef AXN_MPI
  int init = 0, provided = 0, size = 0, me = 0;
  MPI_Initialized(&init);
  if (!init) return ncclInvalidUsage;
  MPI_Query_thread(&provided);
  if (provided < MPI_THREAD_MULTIPLE) return ncclInvalidUsage;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Comm_rank(MPI_COMM_WORLD, &me);
  if (nranks != size || rank != me) return ncclInvalidUsage;  // the emulation spans MPI_COMM_WORLD
  std::string all(static_cast<size_t>(size) * sizeof id.internal, '\0');
  if (MPI_Allgather(id.internal, sizeof id.internal, MPI_BYTE, &all[0], sizeof id.internal, MPI_BYTE, MPI_COMM_WORLD) != MPI_SUCCESS)
    return ncclSystemError;
  bool same = true;
  for (int i = 0; i < size; i++) same = same && std::memcmp(all.data() + i * sizeof id.internal, id.internal, sizeof id.internal) == 0;
  auto* c = new ncclComm();
  if (MPI_Comm_dup(MPI_COMM_WORLD, &c->comm) != MPI_SUCCESS) {
    delete c;
    return ncclSystemError;
  }
  if (!same) {  // every rank saw the mismatch (the same gathered ids): all fail alike
    MPI_Comm_free(&c->comm);
    delete c;
    return ncclInvalidArgument;
  }
  c->rank = rank;
  c->nranks = nranks;
  *out = c;
  return ncclSuccess;
#else
  return ncclInvalidUsage;  // several ranks need MPI, which this build does not have
#endif
}

bool onDevice(const void* p, size_t bytes, std::string* why) { return axn::emu::inDeviceMemory(p, bytes, false, why); }

ncclResult_t fault(ncclComm_t c, axn::emu::ExecError& err, const char* call, const std::string& what) {
  err.code = cudaErrorLaunchFailure;
  err.detail = std::string(call) + " (emulated NCCL): " + what;
  c->asyncError.store(ncclSystemError);
  return ncclSystemError;
}

ncclResult_t emuAllReduce(const void* send, void* recv, size_t count, ncclDataType_t type, ncclRedOp_t op, ncclComm_t c,
                          cudaStream_t stream) {
  if (!c || c->aborted.load()) return ncclInvalidArgument;
  if (static_cast<int>(type) != kNcclFloat32 || static_cast<int>(op) != kNcclSum) return ncclInvalidArgument;  // the emulated subset
  if (count == 0) return ncclSuccess;
  std::string why;
  if (!onDevice(send, count * 4, &why) || !onDevice(recv, count * 4, &why)) return ncclInvalidArgument;
  const cudaError_t e = axn::emu::enqueue(stream, [=](axn::emu::ExecError& err) {
    try {
      if (send != recv) std::memmove(recv, send, count * sizeof(float));
#ifdef AXN_MPI
      if (c->nranks > 1) axn::dist::allReduceSumDeterministic(static_cast<float*>(recv), count, &c->comm);
#endif
    } catch (const std::exception& ex) {
      fault(c, err, "ncclAllReduce", ex.what());
      return false;
    }
    return true;
  });
  return e == cudaSuccess ? ncclSuccess : ncclUnhandledCudaError;
}

ncclResult_t emuBroadcast(const void* send, void* recv, size_t count, ncclDataType_t type, int root, ncclComm_t c,
                          cudaStream_t stream) {
  if (!c || c->aborted.load()) return ncclInvalidArgument;
  if (static_cast<int>(type) != kNcclFloat32 || root < 0 || root >= c->nranks) return ncclInvalidArgument;
  if (count == 0) return ncclSuccess;
  std::string why;
  if ((c->rank == root && !onDevice(send, count * 4, &why)) || !onDevice(recv, count * 4, &why)) return ncclInvalidArgument;
  const cudaError_t e = axn::emu::enqueue(stream, [=](axn::emu::ExecError& err) {
    float* buf = static_cast<float*>(recv);
    if (c->rank == root && send != recv) std::memmove(recv, send, count * sizeof(float));
#ifdef AXN_MPI
    for (size_t off = 0; off < count && c->nranks > 1; off += kChunk) {
      const int m = static_cast<int>(std::min(kChunk, count - off));
      if (MPI_Bcast(buf + off, m, MPI_FLOAT, root, c->comm) != MPI_SUCCESS) {
        fault(c, err, "ncclBroadcast", "MPI_Bcast failed");
        return false;
      }
    }
#else
    (void)buf;
    (void)err;
#endif
    return true;
  });
  return e == cudaSuccess ? ncclSuccess : ncclUnhandledCudaError;
}

ncclResult_t emuCommGetAsyncError(ncclComm_t c, ncclResult_t* err) {
  if (!c || !err) return ncclInvalidArgument;
  *err = static_cast<ncclResult_t>(c->asyncError.load());
  return ncclSuccess;
}

ncclResult_t emuCommAbort(ncclComm_t c) {
  // Leaves the MPI communicator alone: the device thread may be blocked in it. The process ends next.
  if (c) c->aborted.store(true);
  return ncclSuccess;
}

ncclResult_t emuCommDestroy(ncclComm_t c) {
  if (!c) return ncclInvalidArgument;
  cudaDeviceSynchronize();  // like NCCL: the communicator's queued work completes first
#ifdef AXN_MPI
  if (c->comm != MPI_COMM_NULL) MPI_Comm_free(&c->comm);
#endif
  delete c;
  return ncclSuccess;
}

ncclResult_t emuGetVersion(int* version) {
  if (!version) return ncclInvalidArgument;
  *version = 0;  // not a release of NCCL
  return ncclSuccess;
}

const char* emuGetErrorString(ncclResult_t r) {
  switch (r) {
    case ncclSuccess: return "no error";
    case ncclUnhandledCudaError: return "unhandled cuda error (run with NCCL_DEBUG=INFO for details)";
    case ncclSystemError: return "unhandled system error (run with NCCL_DEBUG=INFO for details)";
    case ncclInternalError: return "internal error - please report this issue to the NCCL developers";
    case ncclInvalidArgument: return "invalid argument (run with NCCL_DEBUG=WARN for details)";
    case ncclInvalidUsage: return "invalid usage (run with NCCL_DEBUG=WARN for details)";
    case ncclRemoteError: return "remote process exited or there was a network error";
    case ncclInProgress: return "NCCL operation in progress";
    default: return "unknown result code";
  }
}

const axn::dist::NcclApi kTable = {emuGetUniqueId,       emuCommInitRank, emuAllReduce,   emuBroadcast,     emuCommGetAsyncError,
                                   emuCommAbort,         emuCommDestroy,  emuGetErrorString, emuGetVersion};

}  // namespace

namespace axn::emu {
const axn::dist::NcclApi* ncclApi(const char** reason) {
  if (reason) *reason = nullptr;
  return &kTable;
}
}  // namespace axn::emu
