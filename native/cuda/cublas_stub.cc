// A stand-in cuBLAS for building the real CUDA addon (nvcc, libcudart) on a machine whose toolkit has no
// cuBLAS: CI and the development machines (AXN_CUBLAS_STUB=ON). It defines the entry points that
// native/cuda/cublas_compat.h declares, so the addon links and loads and the whole CUDA build is checked
// there; every call fails with CUBLAS_STATUS_NOT_INITIALIZED. It is built into the build folder only,
// never installed or shipped, and an addon linked against it says so in backendInfo().
#include "cublas_compat.h"

extern "C" {

#define AXN_STUB_FAIL return CUBLAS_STATUS_NOT_INITIALIZED

cublasStatus_t cublasCreate_v2(cublasHandle_t*) { AXN_STUB_FAIL; }
cublasStatus_t cublasDestroy_v2(cublasHandle_t) { AXN_STUB_FAIL; }
cublasStatus_t cublasSetStream_v2(cublasHandle_t, cudaStream_t) { AXN_STUB_FAIL; }
cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) { AXN_STUB_FAIL; }
cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t, void*, size_t) { AXN_STUB_FAIL; }
const char* cublasGetStatusString(cublasStatus_t) {
  return "stub cuBLAS: this addon was built without cuBLAS (AXN_CUBLAS_STUB=ON, for CI) and cannot run GEMMs";
}
cublasStatus_t cublasSgemm_v2(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const float*,
                              const float*, int, const float*, int, const float*, float*, int) {
  AXN_STUB_FAIL;
}
cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                                         const float*, const float*, int, long long, const float*, int, long long,
                                         const float*, float*, int, long long, int) {
  AXN_STUB_FAIL;
}

cublasStatus_t cublasGemmEx(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void*,
                            const void*, cudaDataType, int, const void*, cudaDataType, int, const void*, void*,
                            cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t) {
  AXN_STUB_FAIL;
}
cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                                          const void*, const void*, cudaDataType, int, long long, const void*,
                                          cudaDataType, int, long long, const void*, void*, cudaDataType, int,
                                          long long, int, cublasComputeType_t, cublasGemmAlgo_t) {
  AXN_STUB_FAIL;
}

}  // extern "C"
