// JPEG decoding on the GPU: see gpu_decode.h.
#include "data/gpu_decode.h"

#include <vector>

#include "common.h"

namespace axn::data {

#ifndef AXN_WITH_NVJPEG
#ifndef AXN_NVJPEG_REASON
#define AXN_NVJPEG_REASON "built without nvJPEG"
#endif
bool gpuDecodeAvailable() { return false; }
std::string gpuDecodeReason() { return AXN_NVJPEG_REASON; }
#else

bool gpuDecodeAvailable() { return true; }
std::string gpuDecodeReason() { return ""; }

namespace {
const char* statusName(nvjpegStatus_t s) {
  switch (s) {
    case NVJPEG_STATUS_SUCCESS: return "NVJPEG_STATUS_SUCCESS";
    case NVJPEG_STATUS_NOT_INITIALIZED: return "NVJPEG_STATUS_NOT_INITIALIZED";
    case NVJPEG_STATUS_INVALID_PARAMETER: return "NVJPEG_STATUS_INVALID_PARAMETER";
    case NVJPEG_STATUS_BAD_JPEG: return "NVJPEG_STATUS_BAD_JPEG";
    case NVJPEG_STATUS_JPEG_NOT_SUPPORTED: return "NVJPEG_STATUS_JPEG_NOT_SUPPORTED";
    case NVJPEG_STATUS_ALLOCATOR_FAILURE: return "NVJPEG_STATUS_ALLOCATOR_FAILURE";
    case NVJPEG_STATUS_EXECUTION_FAILED: return "NVJPEG_STATUS_EXECUTION_FAILED";
    case NVJPEG_STATUS_ARCH_MISMATCH: return "NVJPEG_STATUS_ARCH_MISMATCH";
    case NVJPEG_STATUS_INTERNAL_ERROR: return "NVJPEG_STATUS_INTERNAL_ERROR";
    case NVJPEG_STATUS_IMPLEMENTATION_NOT_SUPPORTED: return "NVJPEG_STATUS_IMPLEMENTATION_NOT_SUPPORTED";
    default: return "an nvJPEG error";
  }
}
void check(nvjpegStatus_t s, const char* call) {
  if (s != NVJPEG_STATUS_SUCCESS) throw Error(std::string("nvJPEG: ") + call + " failed: " + statusName(s) + " (" + std::to_string(static_cast<int>(s)) + ")");
}
}  // namespace

GpuDecoder::GpuDecoder(int channels) : channels_(channels) {
#ifdef NVJPEG_FLAGS_UPSAMPLING_WITH_INTERPOLATION
  // Chroma upsampled by interpolation, as libjpeg's "fancy" upsampling (the CPU decoder's) does; nvJPEG's
  // default replicates chroma samples, which moves pixels at colour edges (nvJPEG 12.1 and later).
  check(nvjpegCreateEx(NVJPEG_BACKEND_DEFAULT, nullptr, nullptr, NVJPEG_FLAGS_UPSAMPLING_WITH_INTERPOLATION, &handle_), "nvjpegCreateEx");
#else
  check(nvjpegCreateSimple(&handle_), "nvjpegCreateSimple");
#endif
  const nvjpegStatus_t s = nvjpegJpegStateCreate(handle_, &state_);
  if (s != NVJPEG_STATUS_SUCCESS) {
    nvjpegDestroy(handle_);
    check(s, "nvjpegJpegStateCreate");
  }
}

GpuDecoder::~GpuDecoder() {
  if (state_) nvjpegJpegStateDestroy(state_);
  if (handle_) nvjpegDestroy(handle_);
}

void GpuDecoder::decode(const uint8_t* const* data, const size_t* lengths, uint8_t* const* dst, const size_t* pitch, int n,
                        cudaStream_t stream) {
  if (n <= 0) return;
  if (n != batch_) {
    check(nvjpegDecodeBatchedInitialize(handle_, state_, n, 1, channels_ == 1 ? NVJPEG_OUTPUT_Y : NVJPEG_OUTPUT_RGBI),
          "nvjpegDecodeBatchedInitialize");
    batch_ = n;
  }
  std::vector<nvjpegImage_t> out(static_cast<size_t>(n));
  for (int i = 0; i < n; i++) {
    for (int c = 0; c < NVJPEG_MAX_COMPONENT; c++) {
      out[i].channel[c] = nullptr;
      out[i].pitch[c] = 0;
    }
    out[i].channel[0] = dst[i];
    out[i].pitch[0] = pitch[i];
  }
  check(nvjpegDecodeBatched(handle_, state_, reinterpret_cast<const unsigned char* const*>(data), lengths, out.data(), stream),
        "nvjpegDecodeBatched");
}

#endif

}  // namespace axn::data
