// The packed data set reader: see store.h for the format.
#include "data/store.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common.h"
#include "data/crc32c.h"

namespace axn::data {
namespace {

template <typename T>
T rd(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);  // little-endian hosts
  return v;
}

std::string hex(uint32_t v) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%08x", v);
  return b;
}

}  // namespace

Store::Store(const std::string& path) : path_(path) {
  auto bad = [&](const std::string& why) { throw Error("packed data set " + path_ + ": " + why); };
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) bad(std::string("cannot open: ") + std::strerror(errno));
  struct stat st;
  if (::fstat(fd_, &st) != 0) {
    const int e = errno;
    ::close(fd_);
    fd_ = -1;
    bad(std::string("cannot stat: ") + std::strerror(e));
  }
  try {
    if (!S_ISREG(st.st_mode)) bad("not a regular file");
    fileBytes_ = static_cast<uint64_t>(st.st_size);
    if (fileBytes_ < kHeaderBytes)
      bad("the file has " + std::to_string(fileBytes_) + " bytes, fewer than the 128-byte header: not a packed data set, or truncated");
    void* m = ::mmap(nullptr, fileBytes_, PROT_READ, MAP_SHARED, fd_, 0);
    if (m == MAP_FAILED) bad(std::string("cannot map: ") + std::strerror(errno));
    base_ = static_cast<const uint8_t*>(m);
    const uint8_t* h = base_;
    if (std::memcmp(h, kStoreMagic, 8) != 0) bad("not a packed data set (expected the magic \"AXPACK\\r\\n\" at byte 0)");
    const uint32_t version = rd<uint32_t>(h + 8);
    if (version != kStoreVersion)
      bad("format version " + std::to_string(version) + ", this package reads version " + std::to_string(kStoreVersion));
    const uint32_t headerCrc = rd<uint32_t>(h + 124), gotHeader = crc32c(h, 124);
    if (headerCrc != gotHeader) bad("the header's checksum is wrong (stored " + hex(headerCrc) + ", computed " + hex(gotHeader) + "): the header is damaged");
    if (rd<uint32_t>(h + 12) != kHeaderBytes) bad("header size " + std::to_string(rd<uint32_t>(h + 12)) + ", expected 128");
    const uint64_t count = rd<uint64_t>(h + 16), dataOff = rd<uint64_t>(h + 24), dataBytes = rd<uint64_t>(h + 32);
    const uint64_t indexOff = rd<uint64_t>(h + 40), indexBytes = rd<uint64_t>(h + 48);
    metaOff_ = rd<uint64_t>(h + 56);
    metaBytes_ = rd<uint64_t>(h + 64);
    namesOff_ = rd<uint64_t>(h + 72);
    namesBytes_ = rd<uint64_t>(h + 80);
    // Sections in order, each inside the file: data, index, meta, names, end of file.
    struct Sec {
      const char* name;
      uint64_t off, bytes;
    } secs[] = {{"data", dataOff, dataBytes}, {"index", indexOff, indexBytes}, {"meta", metaOff_, metaBytes_}, {"names", namesOff_, namesBytes_}};
    uint64_t at = kHeaderBytes;
    for (const Sec& s : secs) {
      if (s.off != at || s.bytes > fileBytes_ || s.off > fileBytes_ - s.bytes)
        bad(std::string("the ") + s.name + " section (bytes " + std::to_string(s.off) + " to " + std::to_string(s.off + s.bytes) +
            ") does not follow the previous section at byte " + std::to_string(at) + " inside the file's " +
            std::to_string(fileBytes_) + " bytes: the file is truncated or damaged");
      at = s.off + s.bytes;
    }
    if (at != fileBytes_)
      bad("the file has " + std::to_string(fileBytes_) + " bytes, its sections end at byte " + std::to_string(at) + ": truncated or damaged");
    if (count > (uint64_t(1) << 32) || indexBytes != count * kIndexEntryBytes)
      bad("the index holds " + std::to_string(indexBytes) + " bytes for " + std::to_string(count) + " records, expected " +
          std::to_string(count * kIndexEntryBytes));
    if (count > dataBytes) bad(std::to_string(count) + " records in " + std::to_string(dataBytes) + " bytes of data: the index is damaged");
    const uint32_t indexCrc = rd<uint32_t>(h + 88), gotIndex = crc32c(base_ + indexOff, indexBytes);
    if (indexCrc != gotIndex) bad("the index's checksum is wrong (stored " + hex(indexCrc) + ", computed " + hex(gotIndex) + "): the index is damaged");
    const uint32_t metaCrc = rd<uint32_t>(h + 92), gotMeta = crc32c(base_ + metaOff_, metaBytes_);
    if (metaCrc != gotMeta) bad("the meta section's checksum is wrong (stored " + hex(metaCrc) + ", computed " + hex(gotMeta) + ")");
    const uint32_t namesCrc = rd<uint32_t>(h + 96), gotNames = crc32c(base_ + namesOff_, namesBytes_);
    if (namesCrc != gotNames) bad("the names section's checksum is wrong (stored " + hex(namesCrc) + ", computed " + hex(gotNames) + ")");
    // entries are kept as they pass their checks: a damaged index fails at its first bad entry, before its
    // apparent size is allocated
    records_.reserve(static_cast<size_t>(count < (uint64_t(1) << 20) ? count : (uint64_t(1) << 20)));
    for (uint64_t i = 0; i < count; i++) {
      const uint8_t* e = base_ + indexOff + i * kIndexEntryBytes;
      Record r;
      r.offset = rd<uint64_t>(e);
      r.bytes = rd<uint32_t>(e + 8);
      r.crc = rd<uint32_t>(e + 12);
      r.label = rd<int32_t>(e + 16);
      r.width = rd<uint16_t>(e + 20);
      r.height = rd<uint16_t>(e + 22);
      r.channels = e[24];
      const uint8_t fmt = e[25];
      auto badRec = [&](const std::string& why) { bad("record " + std::to_string(i) + ": " + why); };
      if (r.offset < dataOff || r.bytes > dataBytes || r.offset - dataOff > dataBytes - r.bytes)
        badRec("bytes " + std::to_string(r.offset) + " to " + std::to_string(r.offset + r.bytes) + " lie outside the data section (" +
               std::to_string(dataOff) + " to " + std::to_string(dataOff + dataBytes) + ")");
      if (r.bytes == 0) badRec("holds no bytes");
      if (r.width == 0 || r.height == 0 || uint64_t(r.width) * r.height > kMaxRecordPixels)
        badRec("an image of " + std::to_string(r.width) + "×" + std::to_string(r.height) + " pixels, expected 1 to " +
               std::to_string(kMaxRecordPixels) + " pixels");
      if (r.channels != 1 && r.channels != 3) badRec(std::to_string(r.channels) + " channels, expected 1 or 3");
      if (fmt > 1) badRec("format " + std::to_string(fmt) + ", expected 0 (JPEG) or 1 (raw)");
      r.format = static_cast<Format>(fmt);
      if (r.format == Format::Raw && uint64_t(r.bytes) != uint64_t(r.width) * r.height * r.channels)
        badRec("a raw " + std::to_string(r.width) + "×" + std::to_string(r.height) + "×" + std::to_string(r.channels) + " image needs " +
               std::to_string(uint64_t(r.width) * r.height * r.channels) + " bytes, the index says " + std::to_string(r.bytes));
      if (r.label < 0) badRec("label " + std::to_string(r.label) + ", expected ≥ 0");
      records_.push_back(r);
    }
  } catch (...) {
    if (base_) ::munmap(const_cast<uint8_t*>(base_), fileBytes_);
    base_ = nullptr;
    ::close(fd_);
    fd_ = -1;
    throw;
  }
}

Store::~Store() {
  if (base_) ::munmap(const_cast<uint8_t*>(base_), fileBytes_);
  if (fd_ >= 0) ::close(fd_);
}

const uint8_t* Store::checkedBytes(size_t i) const {
  const Record& r = records_.at(i);
  const uint8_t* p = base_ + r.offset;
  const uint32_t got = crc32c(p, r.bytes);
  if (got != r.crc)
    throw Error("packed data set " + path_ + ": record " + std::to_string(i) + " is damaged: its checksum is " + hex(got) +
                ", the index says " + hex(r.crc));
  return p;
}

std::string Store::meta() const { return std::string(reinterpret_cast<const char*>(base_ + metaOff_), metaBytes_); }
std::string Store::names() const { return std::string(reinterpret_cast<const char*>(base_ + namesOff_), namesBytes_); }

}  // namespace axn::data
