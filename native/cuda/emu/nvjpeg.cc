// The emulated nvJPEG (native/cuda/emu/include/nvjpeg.h): batched decoding on the emulated device by the
// CPU decoder (libjpeg-turbo, native/data/jpeg.h), in stream order like the real library's GPU phase. The
// destinations are checked as the emulated device checks any kernel's pointers (inside live device
// allocations, for pitch × height bytes); a bitstream that does not decode makes the call fail with
// NVJPEG_STATUS_BAD_JPEG (its header) or becomes a device fault (its body), sticky as a kernel fault.
// Pixels: exactly the CPU decoder's (the same library and settings), so on the emulated device the GPU
// path's batches equal the CPU path's bit for bit; a real GPU's nvJPEG may differ (the GPU check says by
// how much: scripts/gpu-check.sh).
#include <memory>
#include <string>
#include <vector>

#include "data/jpeg.h"
#include "include/nvjpeg.h"
#include "internal.h"

#ifdef AXN_WITH_JPEG
#include <csetjmp>
#include <cstdio>

#include <jpeglib.h>
#endif

struct nvjpegHandle {
  int magic = 0x6e766a;
};
struct nvjpegJpegState {
  int batch = 0;
  nvjpegOutputFormat_t format = NVJPEG_OUTPUT_RGBI;
};

namespace {

struct Info {
  int width = 0, height = 0, components = 0;
};

#ifdef AXN_WITH_JPEG
struct HeaderErr {
  jpeg_error_mgr pub;
  jmp_buf jump;
};
void headerError(j_common_ptr c) { longjmp(reinterpret_cast<HeaderErr*>(c->err)->jump, 1); }
void headerQuiet(j_common_ptr, int) {}

bool readHeader(const unsigned char* data, size_t n, Info* out) {
  jpeg_decompress_struct cinfo;
  HeaderErr err;
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = headerError;
  err.pub.emit_message = headerQuiet;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(n));
  jpeg_read_header(&cinfo, TRUE);
  out->width = static_cast<int>(cinfo.image_width);
  out->height = static_cast<int>(cinfo.image_height);
  out->components = cinfo.num_components;
  jpeg_destroy_decompress(&cinfo);
  return true;
}
#else
bool readHeader(const unsigned char*, size_t, Info*) { return false; }
#endif

}  // namespace

extern "C" {

nvjpegStatus_t nvjpegCreateSimple(nvjpegHandle_t* handle) {
  if (!handle) return NVJPEG_STATUS_INVALID_PARAMETER;
  if (!axn::data::jpegAvailable()) return NVJPEG_STATUS_IMPLEMENTATION_NOT_SUPPORTED;
  *handle = new nvjpegHandle();
  return NVJPEG_STATUS_SUCCESS;
}

nvjpegStatus_t nvjpegCreateEx(nvjpegBackend_t backend, nvjpegDevAllocator_t* dev_allocator, nvjpegPinnedAllocator_t* pinned_allocator,
                              unsigned int flags, nvjpegHandle_t* handle) {
  // The emulation has one implementation and its own memory: custom allocators are not emulated.
  if (dev_allocator || pinned_allocator || (flags & ~(unsigned)(NVJPEG_FLAGS_UPSAMPLING_WITH_INTERPOLATION))) return NVJPEG_STATUS_INVALID_PARAMETER;
  if (backend != NVJPEG_BACKEND_DEFAULT && backend != NVJPEG_BACKEND_HYBRID && backend != NVJPEG_BACKEND_GPU_HYBRID)
    return NVJPEG_STATUS_IMPLEMENTATION_NOT_SUPPORTED;
  return nvjpegCreateSimple(handle);
}

nvjpegStatus_t nvjpegDestroy(nvjpegHandle_t handle) {
  if (!handle) return NVJPEG_STATUS_INVALID_PARAMETER;
  delete handle;
  return NVJPEG_STATUS_SUCCESS;
}

nvjpegStatus_t nvjpegJpegStateCreate(nvjpegHandle_t handle, nvjpegJpegState_t* state) {
  if (!handle || !state) return NVJPEG_STATUS_INVALID_PARAMETER;
  *state = new nvjpegJpegState();
  return NVJPEG_STATUS_SUCCESS;
}

nvjpegStatus_t nvjpegJpegStateDestroy(nvjpegJpegState_t state) {
  if (!state) return NVJPEG_STATUS_INVALID_PARAMETER;
  delete state;
  return NVJPEG_STATUS_SUCCESS;
}

nvjpegStatus_t nvjpegGetImageInfo(nvjpegHandle_t handle, const unsigned char* data, size_t length, int* nComponents,
                                  nvjpegChromaSubsampling_t* subsampling, int* widths, int* heights) {
  if (!handle || !data || !nComponents || !subsampling || !widths || !heights) return NVJPEG_STATUS_INVALID_PARAMETER;
  Info info;
  if (!readHeader(data, length, &info)) return NVJPEG_STATUS_BAD_JPEG;
  *nComponents = info.components;
  *subsampling = info.components == 1 ? NVJPEG_CSS_GRAY : NVJPEG_CSS_UNKNOWN;  // not needed by our code
  for (int c = 0; c < NVJPEG_MAX_COMPONENT; c++) {
    widths[c] = c < info.components ? info.width : 0;
    heights[c] = c < info.components ? info.height : 0;
  }
  return NVJPEG_STATUS_SUCCESS;
}

nvjpegStatus_t nvjpegDecodeBatchedInitialize(nvjpegHandle_t handle, nvjpegJpegState_t state, int batch_size, int,
                                             nvjpegOutputFormat_t output_format) {
  if (!handle || !state || batch_size < 1) return NVJPEG_STATUS_INVALID_PARAMETER;
  if (output_format != NVJPEG_OUTPUT_RGBI && output_format != NVJPEG_OUTPUT_Y) return NVJPEG_STATUS_IMPLEMENTATION_NOT_SUPPORTED;
  state->batch = batch_size;
  state->format = output_format;
  return NVJPEG_STATUS_SUCCESS;
}

nvjpegStatus_t nvjpegDecodeBatched(nvjpegHandle_t handle, nvjpegJpegState_t state, const unsigned char* const* data,
                                   const size_t* lengths, nvjpegImage_t* destinations, cudaStream_t stream) {
  if (!handle || !state || !data || !lengths || !destinations || state->batch < 1) return NVJPEG_STATUS_INVALID_PARAMETER;
  struct Job {
    std::vector<unsigned char> bytes;
    Info info;
    unsigned char* dst;
    size_t pitch;
  };
  auto jobs = std::make_shared<std::vector<Job>>(static_cast<size_t>(state->batch));
  const int channels = state->format == NVJPEG_OUTPUT_Y ? 1 : 3;
  for (int i = 0; i < state->batch; i++) {
    Job& j = (*jobs)[i];
    if (!data[i] || !readHeader(data[i], lengths[i], &j.info)) return NVJPEG_STATUS_BAD_JPEG;
    j.dst = destinations[i].channel[0];
    j.pitch = destinations[i].pitch[0];
    std::string why;
    if (j.pitch < static_cast<size_t>(j.info.width) * channels ||
        !axn::emu::inDeviceMemory(j.dst, j.pitch * (j.info.height - 1) + static_cast<size_t>(j.info.width) * channels, false, &why))
      return NVJPEG_STATUS_INVALID_PARAMETER;
    j.bytes.assign(data[i], data[i] + lengths[i]);
  }
  const cudaError_t e = axn::emu::enqueue(stream, [jobs, channels](axn::emu::ExecError& err) {
    std::vector<uint8_t> scratch;
    for (size_t i = 0; i < jobs->size(); i++) {
      Job& j = (*jobs)[i];
      try {
        axn::data::decodeJpegWindow(j.bytes.data(), j.bytes.size(), j.info.width, j.info.height, channels, 0, 0, j.info.height,
                                    j.info.width, j.dst, j.pitch, scratch);
      } catch (const std::exception& ex) {
        err.code = cudaErrorLaunchFailure;
        err.detail = std::string("nvjpegDecodeBatched (emulated): image ") + std::to_string(i) + ": " + ex.what();
        return false;
      }
    }
    return true;
  });
  return e == cudaSuccess ? NVJPEG_STATUS_SUCCESS : NVJPEG_STATUS_EXECUTION_FAILED;
}

}  // extern "C"
