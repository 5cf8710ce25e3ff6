// JPEG decoding for the data loader: libjpeg-turbo's libjpeg API (found at build time, like CUDA:
// AXN_WITH_JPEG), decoding only what a crop needs — the rows above the window are skipped
// (jpeg_skip_scanlines: entropy decoding only, no IDCT or colour conversion), the rows below are never
// decoded (the decode is abandoned), and only the iMCU columns that hold the window are decoded
// (jpeg_crop_scanline). libjpeg's warnings (corrupt or truncated data) are errors, as sharp's
// failOn: 'warning'; its fatal errors come back as exceptions (never exit()).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace axn::data {

// True when the addon was built with libjpeg-turbo; else `jpegReason()` says why not.
bool jpegAvailable();
std::string jpegReason();
std::string jpegVersion();

// What a JPEG's frame header says, read without decoding anything (native/data/jpeg.cc's own small marker
// parser, so the GPU path checks records as the CPU path does).
struct JpegFrame {
  int sof = -1;          // the SOF marker's type: 0 baseline, 1 extended sequential, 2 progressive, ...
  int width = 0, height = 0, components = 0, precision = 0;
  bool endsWithEoi = false;  // the data ends with the EOI marker (FF D9): not truncated
};
// False (with *why) when the data does not start with SOI and reach an SOF marker in bounds.
bool readJpegFrame(const uint8_t* src, size_t n, JpegFrame* out, std::string* why);
// The checks every packed JPEG record passes before it is decoded, on the CPU or the GPU (throws
// axn::Error saying what was wrong): a baseline or extended-sequential Huffman JPEG (what `pack` writes;
// the decoding work is then linear in the pixels — a progressive file may repeat scans without bound),
// 8-bit, 1 or 3 components, of exactly expectW×expectH pixels, ending with EOI (a record truncated and
// given a matching checksum is refused, whichever rows a crop needs).
void checkJpegRecord(const uint8_t* src, size_t n, int expectW, int expectH);

// Decodes the h×w window whose top-left pixel is (top, left) of a JPEG of expectW×expectH pixels into
// dst (h rows of dstStride bytes, `channels` = 1 (grey) or 3 (RGB) bytes a pixel). The JPEG's own header
// must say expectW×expectH (the packed index's values, bounded at open: no image larger than that is ever
// decoded). `scratch` is reused between calls (one per thread). Throws axn::Error saying what was wrong.
void decodeJpegWindow(const uint8_t* src, size_t n, int expectW, int expectH, int channels, int top, int left, int h,
                      int w, uint8_t* dst, size_t dstStride, std::vector<uint8_t>& scratch);

}  // namespace axn::data
