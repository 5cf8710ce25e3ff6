// JPEG decoding with libjpeg-turbo: see jpeg.h.
#include "data/jpeg.h"

#include "common.h"

#ifdef AXN_WITH_JPEG
#include <csetjmp>
#include <cstdio>
#include <cstring>

#include <jpeglib.h>
#endif

namespace axn::data {

bool readJpegFrame(const uint8_t* p, size_t n, JpegFrame* out, std::string* why) {
  auto fail = [&](const std::string& w) {
    if (why) *why = w;
    return false;
  };
  if (n < 4 || p[0] != 0xFF || p[1] != 0xD8) return fail("not a JPEG (no SOI marker at its start)");
  out->endsWithEoi = n >= 2 && p[n - 2] == 0xFF && p[n - 1] == 0xD9;
  size_t i = 2;
  while (i + 4 <= n) {
    if (p[i] != 0xFF) return fail("a marker was expected at byte " + std::to_string(i));
    uint8_t m = p[i + 1];
    if (m == 0xFF) {  // fill byte
      i++;
      continue;
    }
    if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) {  // TEM, RSTn: no length
      i += 2;
      continue;
    }
    if (m == 0xD9 || m == 0xDA) return fail("no frame header (SOF) before the image data");
    const size_t len = (static_cast<size_t>(p[i + 2]) << 8) | p[i + 3];
    if (len < 2 || i + 2 + len > n) return fail("a marker segment runs past the end of the data");
    const bool sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
    if (sof) {
      if (len < 8) return fail("a frame header (SOF) is too short");
      out->sof = m - 0xC0;
      out->precision = p[i + 4];
      out->height = (p[i + 5] << 8) | p[i + 6];
      out->width = (p[i + 7] << 8) | p[i + 8];
      out->components = p[i + 9];
      return true;
    }
    i += 2 + len;
  }
  return fail("no frame header (SOF) in the data");
}

void checkJpegRecord(const uint8_t* src, size_t n, int expectW, int expectH) {
  JpegFrame f;
  std::string why;
  if (!readJpegFrame(src, n, &f, &why)) throw Error("JPEG: " + why);
  if (f.sof != 0 && f.sof != 1)
    throw Error("JPEG: a " + std::string(f.sof == 2 ? "progressive" : f.sof == 9 || f.sof == 10 ? "arithmetic-coded" : "non-baseline") +
                " JPEG (SOF" + std::to_string(f.sof) + "); packed records are baseline or extended-sequential Huffman JPEGs");
  if (f.precision != 8) throw Error("JPEG: " + std::to_string(f.precision) + "-bit samples; packed records are 8-bit");
  if (f.components != 1 && f.components != 3)
    throw Error("JPEG: " + std::to_string(f.components) + " components (e.g. CMYK); packed records are grey or colour (1 or 3)");
  if (f.width != expectW || f.height != expectH)
    throw Error("JPEG: the image is " + std::to_string(f.width) + "×" + std::to_string(f.height) + ", the index says " +
                std::to_string(expectW) + "×" + std::to_string(expectH));
  if (!f.endsWithEoi) throw Error("JPEG: the data does not end with the EOI marker: the record is truncated");
}

#ifndef AXN_WITH_JPEG
#ifndef AXN_JPEG_REASON
#define AXN_JPEG_REASON "built without libjpeg-turbo"
#endif
bool jpegAvailable() { return false; }
std::string jpegReason() { return AXN_JPEG_REASON; }
std::string jpegVersion() { return ""; }
void decodeJpegWindow(const uint8_t*, size_t, int, int, int, int, int, int, int, uint8_t*, size_t, std::vector<uint8_t>&) {
  throw Error(std::string("JPEG decoding: ") + AXN_JPEG_REASON);
}
#else

bool jpegAvailable() { return true; }
std::string jpegReason() { return ""; }
std::string jpegVersion() {
#ifdef LIBJPEG_TURBO_VERSION
#define AXN_STR2(x) #x
#define AXN_STR(x) AXN_STR2(x)
  return std::string("libjpeg-turbo ") + AXN_STR(LIBJPEG_TURBO_VERSION);
#else
  return "libjpeg " + std::to_string(JPEG_LIB_VERSION);
#endif
}

namespace {

// libjpeg reports through these: a fatal error or a warning (corrupt data) longjmps back to the decode (no
// C++ object with a destructor lives between the setjmp and the longjmp).
struct ErrorMgr {
  jpeg_error_mgr pub;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  int warnings;
};

void onError(j_common_ptr cinfo) {
  ErrorMgr* e = reinterpret_cast<ErrorMgr*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->message);
  longjmp(e->jump, 1);
}

void onMessage(j_common_ptr cinfo, int level) {
  if (level >= 0) return;  // trace messages
  // A warning means corrupt data: stop at once (decoding on would only cost time), as an error.
  ErrorMgr* e = reinterpret_cast<ErrorMgr*>(cinfo->err);
  e->warnings++;
  (*cinfo->err->format_message)(cinfo, e->message);
  longjmp(e->jump, 1);
}

// Returns 0 on success; else the message is in err->message. Plain C in effect: see ErrorMgr.
int decodeC(jpeg_decompress_struct* cinfo, ErrorMgr* err, const uint8_t* src, size_t n, int expectW, int expectH,
            int channels, int top, int left, int h, int w, uint8_t* dst, size_t dstStride, uint8_t* row,
            size_t rowBytes, int* gotW, int* gotH, int* gotC) {
  if (setjmp(err->jump)) return 1;
  jpeg_create_decompress(cinfo);
  jpeg_mem_src(cinfo, src, static_cast<unsigned long>(n));
  jpeg_read_header(cinfo, TRUE);
  *gotW = static_cast<int>(cinfo->image_width);
  *gotH = static_cast<int>(cinfo->image_height);
  *gotC = cinfo->num_components;
  if (*gotW != expectW || *gotH != expectH || (cinfo->jpeg_color_space != JCS_YCbCr && cinfo->jpeg_color_space != JCS_GRAYSCALE &&
                                               cinfo->jpeg_color_space != JCS_RGB))
    return 2;
  cinfo->out_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  cinfo->dct_method = JDCT_ISLOW;  // libjpeg's default, as PIL's and libvips's decodes
  jpeg_start_decompress(cinfo);
  // The decoded columns: the window and one column more on each side where the image has one, widened by
  // jpeg_crop_scanline to iMCU boundaries. Fancy (triangle) chroma upsampling treats the region's edge as
  // the image's edge, so a window column on the region's edge would differ from a whole-image decode; with
  // the margin every window column has its real neighbours, and the window equals the whole image cropped.
  const int x0 = left > 0 ? left - 1 : 0, x1 = left + w < expectW ? left + w + 1 : expectW;
  JDIMENSION xoff = static_cast<JDIMENSION>(x0), cw = static_cast<JDIMENSION>(x1 - x0);
  if (cw < cinfo->output_width) jpeg_crop_scanline(cinfo, &xoff, &cw);
  if (static_cast<size_t>(cinfo->output_width) * cinfo->output_components > rowBytes) return 3;
  if (top > 0 && jpeg_skip_scanlines(cinfo, static_cast<JDIMENSION>(top)) != static_cast<JDIMENSION>(top)) return 4;
  const size_t skipBytes = static_cast<size_t>(left - static_cast<int>(xoff)) * channels;
  const size_t copyBytes = static_cast<size_t>(w) * channels;
  for (int y = 0; y < h; y++) {
    JSAMPROW rp = row;
    if (jpeg_read_scanlines(cinfo, &rp, 1) != 1) return 4;
    std::memcpy(dst + static_cast<size_t>(y) * dstStride, row + skipBytes, copyBytes);
  }
  if (err->warnings) return 1;
  jpeg_abort_decompress(cinfo);  // the rows below the window are never decoded
  return 0;
}

}  // namespace

void decodeJpegWindow(const uint8_t* src, size_t n, int expectW, int expectH, int channels, int top, int left, int h,
                      int w, uint8_t* dst, size_t dstStride, std::vector<uint8_t>& scratch) {
  if (channels != 1 && channels != 3) throw Error("JPEG: expected 1 or 3 channels, got " + std::to_string(channels));
  if (top < 0 || left < 0 || h < 1 || w < 1 || h > expectH || w > expectW || top > expectH - h || left > expectW - w)
    throw Error("JPEG: the " + std::to_string(w) + "×" + std::to_string(h) + " window at (" + std::to_string(left) + ", " +
                std::to_string(top) + ") is not inside the " + std::to_string(expectW) + "×" + std::to_string(expectH) + " image");
  checkJpegRecord(src, n, expectW, expectH);
  const size_t rowBytes = static_cast<size_t>(expectW) * 3 + 64;
  if (scratch.size() < rowBytes) scratch.resize(rowBytes);
  jpeg_decompress_struct cinfo;
  std::memset(&cinfo, 0, sizeof cinfo);  // jpeg_destroy_decompress frees only what was created
  ErrorMgr err;
  std::memset(&err, 0, sizeof err);
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = onError;
  err.pub.emit_message = onMessage;
  int gw = 0, gh = 0, gc = 0;
  const int rc = decodeC(&cinfo, &err, src, n, expectW, expectH, channels, top, left, h, w, dst, dstStride, scratch.data(),
                         scratch.size(), &gw, &gh, &gc);
  jpeg_destroy_decompress(&cinfo);
  switch (rc) {
    case 0:
      return;
    case 1:
      throw Error(std::string("JPEG: ") + err.message);
    case 2:
      if (gw != expectW || gh != expectH)
        throw Error("JPEG: the image is " + std::to_string(gw) + "×" + std::to_string(gh) + ", the index says " + std::to_string(expectW) +
                    "×" + std::to_string(expectH));
      throw Error("JPEG: its colour space is not grey, RGB or YCbCr (" + std::to_string(gc) + " components)");
    case 3:
      throw Error("JPEG: a decoded row is wider than the " + std::to_string(expectW) + "-pixel image");
    default:
      throw Error("JPEG: the data ended before the window's last row");
  }
}

#endif

}  // namespace axn::data
