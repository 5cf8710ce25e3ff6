// The packed data set ("pack"): one file holding every image of a data set, resized once, with an index,
// read through mmap (FFCV's choice; README "Packed data sets" says why not LMDB). Written by
// lib/data/pack.ts, read here (random access by index, shared through the page cache by every process that
// maps it) and by lib/data/packed.ts. All integers little-endian. Version 1:
//
//   header   128 bytes at offset 0
//     0  char[8] magic "AXPACK\r\n"          8  u32 version (1)        12 u32 header bytes (128)
//     16 u64 record count                     24 u64 data offset (128)   32 u64 data bytes
//     40 u64 index offset                     48 u64 index bytes (count·32)
//     56 u64 meta offset                      64 u64 meta bytes
//     72 u64 names offset                     80 u64 names bytes
//     88 u32 index CRC   92 u32 meta CRC   96 u32 names CRC   100..123 zero   124 u32 header CRC (of 0..123)
//   data     the records' bytes, back to back, in index order
//   index    count entries of 32 bytes:
//     0 u64 offset (from the start of the file)   8 u32 bytes   12 u32 CRC of the record's bytes
//     16 i32 label   20 u16 width   22 u16 height   24 u8 channels (1 or 3)   25 u8 format (0 JPEG, 1 raw)
//     26 u16 zero    28 u32 zero
//   meta     UTF-8 JSON: { "classes": [names], "settings": { how it was packed }, "skipped": [...], ... }
//   names    one line per record: the JSON string of its source path, relative to the source folder
// Every CRC is CRC-32C (native/data/crc32c.h). A raw record is height·width·channels bytes of HWC uint8;
// a JPEG record decodes to width×height with `channels` channels (native/data/jpeg.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace axn::data {

constexpr uint32_t kStoreVersion = 1;
constexpr size_t kHeaderBytes = 128;
constexpr size_t kIndexEntryBytes = 32;
constexpr char kStoreMagic[8] = {'A', 'X', 'P', 'A', 'C', 'K', '\r', '\n'};
// The largest image a record may hold: stored images are resized already (README "Untrusted input").
constexpr uint64_t kMaxRecordPixels = uint64_t(1) << 24;  // 16,777,216 pixels

enum class Format : uint8_t { Jpeg = 0, Raw = 1 };

struct Record {
  uint64_t offset;
  uint32_t bytes;
  uint32_t crc;
  int32_t label;
  uint16_t width, height;
  uint8_t channels;
  Format format;
};

// A store opened read-only and mapped. Every check that does not need the records' bytes runs at open:
// magic, version, header CRC, the sections inside the file and in order, the index and meta CRCs, and every
// index entry (inside the data section, sizes, channels, format, raw sizes, label ≥ 0). A record's own
// CRC is checked when it is read (`checkedBytes`). Errors name the file and the record.
class Store {
 public:
  explicit Store(const std::string& path);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::string& path() const { return path_; }
  size_t size() const { return records_.size(); }
  const Record& record(size_t i) const { return records_[i]; }
  // The record's bytes after checking its CRC (throws naming the record when they disagree).
  const uint8_t* checkedBytes(size_t i) const;
  const uint8_t* base() const { return base_; }
  uint64_t fileBytes() const { return fileBytes_; }
  std::string meta() const;   // the meta section (JSON)
  std::string names() const;  // the names section

 private:
  std::string path_;
  int fd_ = -1;
  const uint8_t* base_ = nullptr;
  uint64_t fileBytes_ = 0;
  uint64_t metaOff_ = 0, metaBytes_ = 0, namesOff_ = 0, namesBytes_ = 0;
  std::vector<Record> records_;
};

}  // namespace axn::data
