// The communicator of data-parallel training (DESIGN.md "Distributed"): MPI launches and bootstraps the
// job and reduces CPU tensors (mpi.cc); NCCL reduces CUDA tensors (nccl.cc, loaded at run time with
// dlopen; emulated over MPI on the emulated device, native/cuda/emu/nccl.cc). mpi.cc is compiled only
// when CMake found MPI (AXN_MPI), and with it nccl.cc's job communicator; native/bind/dist.cc says so
// otherwise. nccl.cc's loader and ncclSelfTest() (a communicator of one rank) are in every CUDA build, MPI
// or not. JS API: lib/distributed.ts.
//
// Ordering. Every rank must make the same collective calls in the same order (allReduce, broadcast and
// the host collectives alike; the tensors of a call in the same order with the same sizes). MPI calls
// after init() run on ONE thread, the CPU stream's worker (native/cpu_stream.h), in the order JS made the
// calls, so that order is the order on the wire on every rank and MPI_THREAD_SERIALIZED suffices. NCCL
// work goes on the communication stream in call order. (The emulated NCCL calls MPI from the emulated
// device's thread, on a communicator of its own: that build asks for MPI_THREAD_MULTIPLE.)
//
// Determinism. allReduce on the CPU (and the emulated NCCL) sums every element once, in rank order
// 0..N-1, in float32, in our code: each rank receives its block of every rank's buffer (MPI_Alltoallv:
// a copy, no arithmetic), adds them in rank order, and MPI_Allgatherv hands the reduced blocks to every
// rank (a copy). So every rank holds the same bits, and the same inputs give the same bits run to run,
// whatever MPI's own reduction algorithms would do. Real NCCL's all-reduce is deterministic for a fixed
// topology, rank count and size (its ring/tree order is fixed by them) and leaves the same bits on every
// rank; its order is not rank order, so a CUDA result may differ from the CPU's in the last bits.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace axn::dist {

struct Info {
  int rank = 0, world = 1, localRank = 0, localWorld = 1;
  bool nccl = false;  // CUDA tensors go through NCCL
};

// Lazily MPI_Init_thread; rank and world from MPI_COMM_WORLD, local rank and world from
// MPI_Comm_split_type(MPI_COMM_TYPE_SHARED). On a CUDA build with a device: selects device
// localRank % deviceCount (before the CUDA context exists), then loads NCCL and creates its
// communicator (unique id from rank 0 by MPI_Bcast). Idempotent. Throws axn::Error.
Info init();
bool initialised();
bool finalized();
// Drains the streams, destroys the NCCL communicator, MPI_Finalize. Idempotent.
void finalize();
// Prints `message` to stderr, ncclCommAbort (when a communicator exists), MPI_Abort(code). Never returns.
[[noreturn]] void abortJob(int code, const std::string& message);

// CPU collectives, run ON the CPU stream's worker (the bindings enqueue them). In place.
// allReduce: the tensors are fused into one buffer, reduced as above, scaled by 1/world when `mean`.
void allReduceCpu(const std::vector<float*>& ptrs, const std::vector<size_t>& counts, bool mean);
void broadcastCpu(const std::vector<float*>& ptrs, const std::vector<size_t>& counts, int root);
enum class HostOp { Sum, Max, Min };
void allReduceHost(double* values, size_t n, HostOp op);
std::vector<std::string> allGatherString(const std::string& s);
void barrier();

// The deterministic float32 sum all-reduce (in place) over an MPI communicator, passed as a pointer to
// its MPI_Comm (so that this header needs no mpi.h). Shared with the emulated NCCL.
void allReduceSumDeterministic(float* buf, size_t n, const void* mpiComm);

// NCCL (nccl.cc). Whether it could be loaded (false and *reason when not: every name tried, and how to
// install it). AXN_NCCL_LIB alone when set; else libnccl.so.2 on the loader's path, then in each folder of
// AXN_NCCL_DIRS (':'-separated), then libnccl.so.
bool ncclAvailable(std::string* reason);
#ifdef AXN_WITH_CUDA
// A diagnostic of the NCCL layer on one GPU, without MPI: loads NCCL, reads its version, creates a
// communicator of one rank (ncclGetUniqueId, ncclCommInitRank(1, id, 0)) on this process's device, and
// runs on the communication stream, ordered with the compute stream as the job's collectives are:
// ncclAllReduce (sum, float32) and ncclBroadcast (root 0) out of place on 1, 7 and 1000003 floats (the
// receive buffer must hold the input bit for bit, and the 16 floats past it stay untouched), then the job's
// own allReduce and broadcast code (fusion, waits, watchdog) in place; polls ncclCommGetAsyncError after
// each, destroys the communicator. With one rank the reduction operation itself is not observable (sum,
// max, ... of one value are the value): several ranks are not covered. Throws axn::Error naming the failed
// check. Call it from one thread at a time; it creates the CUDA context (on the device selectDevice chose).
struct NcclSelfTestResult {
  std::string library;  // the file loaded (or the emulated NCCL)
  int version = 0;      // ncclGetVersion (0 for the emulated NCCL)
  std::vector<std::string> checks;
};
NcclSelfTestResult ncclSelfTest();
// The job's communicator (builds with MPI):
// Init part: load NCCL, create the communicator (collective over MPI_COMM_WORLD; called by init()).
void ncclInit(int rank, int world);
void ncclShutdown(bool abort);
bool ncclReady();
// CUDA collectives, enqueued (the JS thread calls them): see native/cuda/context.h for the streams.
void allReduceCuda(const std::vector<float*>& ptrs, const std::vector<size_t>& counts, bool mean);
void broadcastCuda(const std::vector<float*>& ptrs, const std::vector<size_t>& counts, int root);
#endif

// Called by nccl.cc's watchdog and abortJob: MPI_Abort(MPI_COMM_WORLD, code) (mpi.cc).
[[noreturn]] void mpiAbort(int code);
int worldRank();

}  // namespace axn::dist
