// The few NCCL declarations this addon uses, with NCCL's names, values and signatures (checked against
// NVIDIA/nccl src/nccl.h.in), so that the CUDA build never needs NCCL's headers or library: libnccl.so.2
// is loaded at run time (nccl.cc) and its functions reached through the table below. On the emulated
// device the same table points at an NCCL emulated over MPI (native/cuda/emu/nccl.cc).
#pragma once
#include <cstddef>

#include <cuda_runtime_api.h>

extern "C" {
typedef struct ncclComm* ncclComm_t;
#define AXN_NCCL_UNIQUE_ID_BYTES 128
typedef struct {
  char internal[AXN_NCCL_UNIQUE_ID_BYTES];
} ncclUniqueId;
typedef enum {
  ncclSuccess = 0,
  ncclUnhandledCudaError = 1,
  ncclSystemError = 2,
  ncclInternalError = 3,
  ncclInvalidArgument = 4,
  ncclInvalidUsage = 5,
  ncclRemoteError = 6,
  ncclInProgress = 7,
} ncclResult_t;
typedef enum { ncclFloat32 = 7 } ncclDataType_t;  // the one type used (ncclFloat = ncclFloat32 = 7)
typedef enum { ncclSum = 0 } ncclRedOp_t;         // the one operation used
}

namespace axn::dist {

struct NcclApi {
  ncclResult_t (*getUniqueId)(ncclUniqueId* uniqueId);
  ncclResult_t (*commInitRank)(ncclComm_t* comm, int nranks, ncclUniqueId commId, int rank);
  ncclResult_t (*allReduce)(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, ncclRedOp_t op,
                            ncclComm_t comm, cudaStream_t stream);
  ncclResult_t (*broadcast)(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, int root,
                            ncclComm_t comm, cudaStream_t stream);
  ncclResult_t (*commGetAsyncError)(ncclComm_t comm, ncclResult_t* asyncError);
  ncclResult_t (*commAbort)(ncclComm_t comm);
  ncclResult_t (*commDestroy)(ncclComm_t comm);
  const char* (*getErrorString)(ncclResult_t result);
  // NCCL_VERSION_CODE of the library: major * 10000 + minor * 100 + patch (major * 1000 + minor * 100 +
  // patch before 2.9); the emulated NCCL answers 0.
  ncclResult_t (*getVersion)(int* version);
};

}  // namespace axn::dist

#ifdef AXN_CUDA_EMU
namespace axn::emu {
// The emulated NCCL's table (native/cuda/emu/nccl.cc); null (and *reason) when it is not built.
const axn::dist::NcclApi* ncclApi(const char** reason);
}  // namespace axn::emu
#endif
