// The data loader's native half (lib/data/packed.ts is the other): a packed data set (store.h) mapped once,
// a pool of decode threads (one per core by default) that decode the images of a batch — only the window
// each one needs (jpeg.h) — straight into a staging buffer of uint8 HWC slots, and the upload of a staging
// buffer into a uint8 tensor on the device in use:
//   - CUDA: staging buffers are pinned (cudaMallocHost), so the copy is one DMA on the copy stream; the
//     copy stream first waits for the compute stream (the destination block may be one the caching
//     allocator recycled from work still queued there), and the compute stream then waits for the copy (so
//     the augmentation kernel, and the block's later free and reuse in compute-stream order, come after
//     it). The allocator itself stays single-stream (native/cuda/context.h). Before a decode thread
//     writes a staging buffer again it waits for the event recorded after that buffer's last copy.
//   - CPU: the copy is a task on the CPU stream; a staging buffer is rewritten only after that task ran.
// No JavaScript runs per image: one call decodes a whole batch, and its promise resolves (through a
// thread-safe function) when the last image of the batch is done. A failed image rejects the batch with
// the record's number and the reason.
#pragma once
#include <napi.h>

namespace axn::data {
// The addon's `data` export: { Loader, crc32c, crc32cImpl, jpeg, jpegReason, jpegVersion }.
Napi::Object DataExports(Napi::Env env);
}
