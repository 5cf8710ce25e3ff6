// Shared by every native file: the error type that crosses into JS, and checks.
// Never exit() or abort(): every failure is a C++ exception that node-addon-api turns into a JS Error.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace axn {

// An error raised by native code. `what()` is the full message shown in JS.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

// A device allocation that failed even after the allocator's cache was emptied.
class OutOfMemory : public Error {
 public:
  explicit OutOfMemory(const std::string& msg) : Error(msg) {}
};

[[noreturn]] inline void fail(const std::string& op, const std::string& msg, const char* file, int line) {
  throw Error(op + ": " + msg + " (" + file + ":" + std::to_string(line) + ")");
}

// Test aid: when on, every new Storage and op workspace is filled with 0xFF bytes (NaN as float32), so a
// kernel that leaves part of its output unwritten is caught (defined in storage.cc).
void setPoison(bool on);
bool poisonEnabled();

}  // namespace axn

// A cheap guard inside native code (TypeScript validates first; these catch what slips through).
#define AXN_CHECK(cond, op, msg)                                    \
  do {                                                              \
    if (!(cond)) ::axn::fail((op), (msg), __FILE__, __LINE__);      \
  } while (0)
