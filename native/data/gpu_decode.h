// JPEG decoding on the GPU for the data loader (PackedDataset `decode: 'gpu'`): NVIDIA's nvJPEG batched
// decoder, found at build time like cuBLAS (AXN_WITH_NVJPEG; CMakeLists.txt). On the emulated device
// nvJPEG is emulated by the CPU decoder (native/cuda/emu/nvjpeg.cc). A batch's images are decoded whole
// into a device arena on the copy stream; the loader then copies each crop window into its uint8 slot with
// cudaMemcpy2DAsync on the same stream (native/data/loader.cc).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#ifdef AXN_WITH_NVJPEG
#include <cuda_runtime_api.h>
#include <nvjpeg.h>
#endif

namespace axn::data {

// True when this addon can decode JPEG on the GPU; else gpuDecodeReason() says why not.
bool gpuDecodeAvailable();
std::string gpuDecodeReason();

#ifdef AXN_WITH_NVJPEG
class GpuDecoder {
 public:
  explicit GpuDecoder(int channels);  // 3: interleaved RGB; 1: grey (luma)
  ~GpuDecoder();
  GpuDecoder(const GpuDecoder&) = delete;
  GpuDecoder& operator=(const GpuDecoder&) = delete;
  // Decodes n whole images into dst[i] (device memory, rows of pitch[i] bytes), asynchronously on `stream`.
  // The bitstreams may be reused when it returns. Throws axn::Error naming the nvJPEG status.
  void decode(const uint8_t* const* data, const size_t* lengths, uint8_t* const* dst, const size_t* pitch, int n,
              cudaStream_t stream);

 private:
  nvjpegHandle_t handle_ = nullptr;
  nvjpegJpegState_t state_ = nullptr;
  int batch_ = 0;
  int channels_;
};
#endif

}  // namespace axn::data
