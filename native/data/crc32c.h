// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78: iSCSI, ext4, LevelDB, RocksDB), the checksum of the
// packed data set's records and sections (native/data/store.h). SSE4.2's crc32 instruction where the CPU
// has it (checked once at run time), else a slice-by-8 table; both give the same value.
#pragma once
#include <cstddef>
#include <cstdint>

namespace axn::data {

// crc32c("123456789") == 0xE3069283. `crc` continues an earlier value (0 to start).
uint32_t crc32c(const void* data, size_t n, uint32_t crc = 0);
// Which implementation runs here: "sse4.2" or "table".
const char* crc32cImpl();

}  // namespace axn::data
