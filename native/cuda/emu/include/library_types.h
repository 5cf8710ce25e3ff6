// The emulated device's <library_types.h>: the data types cublasGemmEx takes, with the toolkit's values.
// Only float32 operands are implemented by the emulated cuBLAS (the others answer NOT_SUPPORTED).
#pragma once
typedef enum cudaDataType_t {
  CUDA_R_16F = 2,
  CUDA_R_32F = 0,
  CUDA_R_64F = 1,
  CUDA_R_16BF = 14
} cudaDataType_t;
typedef cudaDataType_t cudaDataType;
