// The emulated device's block scheduler: runs every CUDA thread of a block as a fiber on the device
// thread, one at a time, switching only at barriers and warp intrinsics.
//
// Fibers are Boost.Context's fcontext (make_fcontext / jump_fcontext: a register save and a stack switch,
// a few nanoseconds), on stacks from a pool with a guard page each. Debian ships the library; we use its
// lowest layer so that the AddressSanitizer annotations of every switch are ours and exact
// (__sanitizer_start/finish_switch_fiber), which the higher Boost layers only do with ucontext.
//
// A block runs in phases. In a phase every runnable thread runs, in the phase's order (forward, reverse
// or shuffled by the seed: runtime.h), until it exits or reaches a barrier or a warp intrinsic. Then:
//  - a warp intrinsic completes when every lane its mask names waits at one with the same mask: the
//    values are exchanged with CUDA's semantics and those lanes run on in the same phase. A named lane
//    that exited, waits at __syncthreads, or waits at an intrinsic with another mask is a fault; so is a
//    lane executing an intrinsic whose mask leaves it out, and a mask naming a lane the block lacks;
//  - when every thread waits at __syncthreads (the same one: same file and line), they are released and
//    a new phase begins, in a new order. A thread that exited while others wait is a fault.
// So a kernel whose result depends on the order of its threads between two barriers (a race, a missing
// __syncthreads) gives different results under different orders, and a misused barrier or shuffle is an
// error at the next synchronisation, never a hang.
#include <sys/mman.h>
#include <unistd.h>

#include <boost/context/detail/fcontext.hpp>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "device.h"
#include "internal.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define AXN_EMU_ASAN 1
#endif

// The linker's bounds of the section that holds every kernel's __shared__ variables (device.h).
extern "C" char __start_axn_emu_shared[] __attribute__((weak));
extern "C" char __stop_axn_emu_shared[] __attribute__((weak));

namespace axn::emu {

uint3 g_threadIdx{0, 0, 0};
uint3 g_blockIdx{0, 0, 0};
dim3 g_blockDim;
dim3 g_gridDim;

namespace {

namespace bctx = boost::context::detail;

constexpr size_t kStackBytes = 256 * 1024;  // generous: sanitizer builds have large frames

struct Stack {
  char* bottom = nullptr;  // lowest usable address (above the guard page)
  size_t size = 0;
};

// Fiber stacks, reused across blocks and launches (only the device thread touches the pool).
class StackPool {
 public:
  Stack get() {
    if (!free_.empty()) {
      Stack s = free_.back();
      free_.pop_back();
      return s;
    }
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    void* m = mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return Stack{};
    mprotect(m, page, PROT_NONE);  // a stack overflow faults instead of overwriting the next stack
    return Stack{static_cast<char*>(m) + page, kStackBytes};
  }
  // A stack whose fiber was abandoned mid-kernel still carries that fiber's stack poisoning.
  void put(Stack s, bool abandoned) {
#ifdef AXN_EMU_ASAN
    if (abandoned) ASAN_UNPOISON_MEMORY_REGION(s.bottom, s.size);
#endif
    (void)abandoned;
    free_.push_back(s);
  }

 private:
  std::vector<Stack> free_;
};

enum class State { Ready, Barrier, Warp, Done };

struct EThread {
  uint3 idx;
  State st = State::Ready;
  bool started = false;
  bctx::fcontext_t ctx = nullptr;
  Stack stack;
  // at a barrier
  int barKind = 0, barPred = 0, barResult = 0;
  // at a warp intrinsic
  int wKind = 0, wBytes = 4, wB = 0, wWidth = 32;
  unsigned wMask = 0;
  uint64_t wValue = 0, wResult = 0;
  // where it waits (barrier or intrinsic)
  const char* file = "";
  int line = 0;
};

struct Block {
  const KernelLaunch* launch = nullptr;
  std::vector<EThread> th;
  unsigned n = 0, done = 0;
  bool failed = false;
  ExecError* err = nullptr;
  EThread* cur = nullptr;
  bctx::fcontext_t sched = nullptr;
  const void* schedBottom = nullptr;  // the device thread's own stack, for the sanitizer
  size_t schedSize = 0;
};

Block* gBlock = nullptr;  // the block being run (device thread only)
StackPool gStacks;
unsigned char* gDynShared = nullptr;  // this launch's dynamic shared memory

std::string tidStr(const uint3& t) {
  return "(" + std::to_string(t.x) + "," + std::to_string(t.y) + "," + std::to_string(t.z) + ")";
}

std::string site(const char* file, int line) {
  const char* slash = std::strrchr(file, '/');
  return std::string(slash ? slash + 1 : file) + ":" + std::to_string(line);
}

const char* warpName(int k) {
  switch (k) {
    case kShflIdx: return "__shfl_sync";
    case kShflUp: return "__shfl_up_sync";
    case kShflDown: return "__shfl_down_sync";
    case kShflXor: return "__shfl_xor_sync";
    case kVoteAny: return "__any_sync";
    case kVoteAll: return "__all_sync";
    case kVoteBallot: return "__ballot_sync";
    default: return "__syncwarp";
  }
}

std::string hex32(unsigned v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

// The kernel fault that ends this block (and makes the device's error sticky).
void failBlock(Block& b, cudaError_t code, const std::string& msg) {
  if (b.failed) return;
  b.failed = true;
  b.err->code = code;
  b.err->detail = std::string(b.launch->name) + ", block " + tidStr(g_blockIdx) + ": " + msg;
}

// ---- switching ---------------------------------------------------------------------------------------

void fiberMain(bctx::transfer_t t) {
  Block* b = gBlock;
  b->sched = t.fctx;
#ifdef AXN_EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &b->schedBottom, &b->schedSize);
#endif
  b->launch->body();
  b->cur->st = State::Done;
#ifdef AXN_EMU_ASAN
  __sanitizer_start_switch_fiber(nullptr, b->schedBottom, b->schedSize);  // this fiber ends here
#endif
  bctx::jump_fcontext(b->sched, nullptr);
  __builtin_unreachable();
}

// Scheduler side: run thread t until it blocks or exits.
void resume(Block& b, EThread& t) {
  g_threadIdx = t.idx;
  b.cur = &t;
  if (!t.started) {
    t.stack = gStacks.get();
    if (!t.stack.bottom) {
      failBlock(b, cudaErrorLaunchOutOfResources, "the emulator could not map a stack for thread " + tidStr(t.idx));
      return;
    }
    t.ctx = bctx::make_fcontext(t.stack.bottom + t.stack.size, t.stack.size, fiberMain);
    t.started = true;
  }
#ifdef AXN_EMU_ASAN
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, t.stack.bottom, t.stack.size);
#endif
  bctx::transfer_t r = bctx::jump_fcontext(t.ctx, nullptr);
#ifdef AXN_EMU_ASAN
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
  t.ctx = r.fctx;
  if (t.st == State::Done) {
    gStacks.put(t.stack, false);
    t.started = false;
    b.done++;
  }
}

// Thread side: give control back to the scheduler; returns when the scheduler resumes this thread.
void yieldToScheduler(Block& b) {
#ifdef AXN_EMU_ASAN
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, b.schedBottom, b.schedSize);
#endif
  bctx::transfer_t r = bctx::jump_fcontext(b.sched, nullptr);
#ifdef AXN_EMU_ASAN
  __sanitizer_finish_switch_fiber(fake, &b.schedBottom, &b.schedSize);
#endif
  b.sched = r.fctx;
}

// ---- order -------------------------------------------------------------------------------------------

uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void makeOrder(std::vector<unsigned>& perm, unsigned n, Order o, uint64_t seed) {
  perm.resize(n);
  for (unsigned i = 0; i < n; i++) perm[i] = o == Order::Reverse ? n - 1 - i : i;
  if (o != Order::Shuffle) return;
  uint64_t s = seed;
  for (unsigned i = n; i > 1; i--) std::swap(perm[i - 1], perm[splitmix(s) % i]);
}

// ---- warp intrinsics and barriers ----------------------------------------------------------------------

// Source lane of `lane` for a shuffle (CUDA's rules for width < 32), or -1 when it keeps its own value.
int shuffleSource(int kind, int lane, int b, int width) {
  const int segStart = lane & ~(width - 1), segEnd = segStart + width - 1;
  switch (kind) {
    case kShflIdx: return segStart | (b & (width - 1));
    case kShflUp: return lane - segStart >= b && b >= 0 ? lane - b : -1;
    case kShflDown: return b >= 0 && lane + b <= segEnd ? lane + b : -1;
    default: {  // xor: may reach an earlier segment, never a later one
      const int s = lane ^ b;
      return s >= 0 && s <= segEnd ? s : -1;
    }
  }
}

// After a phase's pass: complete every warp intrinsic whose lanes have all arrived. True if any did.
bool resolveWarps(Block& b) {
  const unsigned lanesTotal = b.n;
  bool released = false;
  for (unsigned base = 0; base < lanesTotal && !b.failed; base += 32) {
    const unsigned lanes = std::min(32u, lanesTotal - base);
    for (unsigned l = 0; l < lanes && !b.failed; l++) {
      EThread& t = b.th[base + l];
      if (t.st != State::Warp) continue;
      const unsigned mask = t.wMask;
      std::string what = std::string(warpName(t.wKind)) + "(" + hex32(mask) + ") at " + site(t.file, t.line) +
                         " in thread " + tidStr(t.idx) + " (lane " + std::to_string(l) + ")";
      for (unsigned j = 0; j < 32; j++) {
        if (!(mask >> j & 1)) continue;
        if (j >= lanes) {
          failBlock(b, cudaErrorIllegalInstruction,
                    what + ": the mask names lane " + std::to_string(j) + ", which this warp does not have (" +
                        std::to_string(lanes) + " threads)");
          return false;
        }
        EThread& o = b.th[base + j];
        if (o.st == State::Done) {
          failBlock(b, cudaErrorIllegalInstruction,
                    what + ": lane " + std::to_string(j) + " (thread " + tidStr(o.idx) + ") named in the mask has exited");
          return false;
        }
        if (o.st == State::Barrier) {
          failBlock(b, cudaErrorIllegalInstruction,
                    what + ": lane " + std::to_string(j) + " named in the mask waits at __syncthreads at " +
                        site(o.file, o.line) + " (deadlock)");
          return false;
        }
        if (o.wKind != t.wKind || o.wMask != mask || o.wWidth != t.wWidth) {
          failBlock(b, cudaErrorIllegalInstruction,
                    what + ": lane " + std::to_string(j) + " named in the mask waits at " + warpName(o.wKind) + "(" +
                        hex32(o.wMask) + ") at " + site(o.file, o.line) + " instead");
          return false;
        }
      }
      // Every lane of the mask is here: exchange.
      unsigned ballot = 0;
      for (unsigned j = 0; j < 32; j++)
        if (mask >> j & 1 && b.th[base + j].wValue) ballot |= 1u << j;
      for (unsigned j = 0; j < 32; j++) {
        if (!(mask >> j & 1)) continue;
        EThread& o = b.th[base + j];
        switch (o.wKind) {
          case kVoteAny: o.wResult = ballot != 0; break;
          case kVoteAll: o.wResult = ballot == mask; break;
          case kVoteBallot: o.wResult = ballot; break;
          case kSyncWarp: o.wResult = 0; break;
          default: {
            int src = shuffleSource(o.wKind, (int)j, o.wB, o.wWidth);
            if (src < 0) src = (int)j;
            if ((unsigned)src < 32 && (mask >> src & 1)) {
              o.wResult = b.th[base + src].wValue;
            } else {
              // Reading a lane that does not take part is undefined: a value of all one bits (NaN).
              o.wResult = o.wBytes == 8 ? ~0ull : 0xffffffffull;
            }
          }
        }
      }
      for (unsigned j = 0; j < 32; j++)
        if (mask >> j & 1) b.th[base + j].st = State::Ready;
      released = true;
    }
  }
  return released;
}

// Every unfinished thread waits at a barrier: release them, or fail if the barrier is misused.
void resolveBarrier(Block& b) {
  const EThread* first = nullptr;
  const EThread* exited = nullptr;
  for (const EThread& t : b.th) {
    if (t.st == State::Done) {
      if (!exited) exited = &t;
      continue;
    }
    if (t.st != State::Barrier) {
      failBlock(b, cudaErrorIllegalInstruction, "thread " + tidStr(t.idx) + " is stuck (internal scheduler error)");
      return;
    }
    if (!first) {
      first = &t;
    } else if (t.line != first->line || std::strcmp(t.file, first->file) != 0 || t.barKind != first->barKind) {
      failBlock(b, cudaErrorIllegalInstruction,
                "threads wait at different barriers: thread " + tidStr(first->idx) + " at " +
                    site(first->file, first->line) + ", thread " + tidStr(t.idx) + " at " + site(t.file, t.line));
      return;
    }
  }
  if (!first) return;
  if (exited) {
    failBlock(b, cudaErrorIllegalInstruction,
              "__syncthreads at " + site(first->file, first->line) + " is not reached by every thread of the block: thread " +
                  tidStr(exited->idx) + " exited while " + std::to_string(b.n - b.done) + " threads wait there");
    return;
  }
  int count = 0;
  for (const EThread& t : b.th) count += t.barPred != 0;
  const int n = (int)b.n;
  for (EThread& t : b.th) {
    t.barResult = t.barKind == kBarCount ? count : t.barKind == kBarAnd ? count == n : t.barKind == kBarOr ? count > 0 : 0;
    t.st = State::Ready;
  }
}

bool runBlock(Block& b, Order order, uint64_t seed) {
  const KernelLaunch& l = *b.launch;
  // Shared memory holds garbage at the start of a block: all one bits (NaN as float).
  char* const shBegin = __start_axn_emu_shared;
  char* const shEnd = __stop_axn_emu_shared;
  if (shBegin && shEnd > shBegin) std::memset(shBegin, 0xFF, (size_t)(shEnd - shBegin));
  if (gDynShared) std::memset(gDynShared, 0xFF, l.dynShared);
  b.n = l.block.x * l.block.y * l.block.z;
  b.th.assign(b.n, EThread());
  unsigned i = 0;
  for (unsigned z = 0; z < l.block.z; z++)
    for (unsigned y = 0; y < l.block.y; y++)
      for (unsigned x = 0; x < l.block.x; x++) b.th[i++].idx = uint3{x, y, z};
  b.done = 0;
  std::vector<unsigned> perm;
  uint64_t phase = 0, s = seed;
  makeOrder(perm, b.n, order, splitmix(s));
  while (b.done < b.n && !b.failed) {
    for (unsigned k : perm) {
      if (b.th[k].st != State::Ready) continue;
      resume(b, b.th[k]);
      if (b.failed) break;
    }
    if (b.failed || b.done == b.n) break;
    if (resolveWarps(b)) continue;
    if (b.failed) break;
    resolveBarrier(b);
    s = seed + 0x632be59bd9b4e019ull * ++phase;
    makeOrder(perm, b.n, order, splitmix(s));
  }
  // Threads left suspended by a fault: their stacks go back to the pool, cleaned.
  for (EThread& t : b.th)
    if (t.started) {
      gStacks.put(t.stack, true);
      t.started = false;
    }
  return !b.failed;
}

EThread& current() { return *gBlock->cur; }

}  // namespace

int barrier(int kind, int pred, const char* file, int line) {
  Block& b = *gBlock;
  EThread& t = current();
  t.st = State::Barrier;
  t.barKind = kind;
  t.barPred = pred;
  t.file = file;
  t.line = line;
  yieldToScheduler(b);
  return t.barResult;
}

uint64_t warpOp(int kind, unsigned mask, uint64_t value, int bytes, int bArg, int width, const char* file, int line) {
  Block& b = *gBlock;
  EThread& t = current();
  const unsigned linear = (unsigned)(&t - b.th.data());
  const unsigned lane = linear & 31;
  if (!(mask >> lane & 1)) {
    failBlock(b, cudaErrorIllegalInstruction,
              std::string(warpName(kind)) + "(" + hex32(mask) + ") at " + site(file, line) + ": thread " + tidStr(t.idx) +
                  " (lane " + std::to_string(lane) + ") executes it but the mask leaves it out");
    t.st = State::Warp;
    yieldToScheduler(b);  // never resumed: the block has failed
  }
  if (width < 1 || width > 32 || (width & (width - 1)) != 0) {
    failBlock(b, cudaErrorIllegalInstruction,
              std::string(warpName(kind)) + " at " + site(file, line) + ": width " + std::to_string(width) +
                  " is not a power of 2 from 1 to 32");
    t.st = State::Warp;
    yieldToScheduler(b);
  }
  t.st = State::Warp;
  t.wKind = kind;
  t.wMask = mask;
  t.wValue = value;
  t.wBytes = bytes;
  t.wB = bArg;
  t.wWidth = width;
  t.file = file;
  t.line = line;
  yieldToScheduler(b);
  return t.wResult;
}

unsigned activeMask() {
  Block& b = *gBlock;
  const unsigned linear = (unsigned)(&current() - b.th.data());
  const unsigned base = linear & ~31u;
  unsigned m = 0;
  for (unsigned j = 0; j < 32 && base + j < b.n; j++)
    if (b.th[base + j].st != State::Done) m |= 1u << j;
  return m;
}

void* dynamicShared() { return gDynShared; }

bool runKernel(const KernelLaunch& l, Order order, uint64_t seed, uint64_t launchId, ExecError* err) {
  g_gridDim = l.grid;
  g_blockDim = l.block;
  std::vector<unsigned char> dyn(l.dynShared ? l.dynShared : 0);
  gDynShared = l.dynShared ? dyn.data() : nullptr;
  Block b;
  b.launch = &l;
  b.err = err;
  gBlock = &b;
  const uint64_t blocks = (uint64_t)l.grid.x * l.grid.y * l.grid.z;
  uint64_t ks = seed * 0x9e3779b97f4a7c15ull + launchId;
  const uint64_t kernelSeed = splitmix(ks);
  // Blocks in the same order family as threads; shuffled by a strided walk (no table for huge grids).
  uint64_t stride = 1, offset = 0;
  if (order == Order::Shuffle && blocks > 1) {
    uint64_t s = kernelSeed;
    offset = splitmix(s) % blocks;
    do stride = splitmix(s) % blocks; while (stride == 0 || std::gcd(stride, blocks) != 1);
  }
  bool ok = true;
  for (uint64_t k = 0; k < blocks && ok; k++) {
    const uint64_t idx = order == Order::Reverse   ? blocks - 1 - k
                         : order == Order::Shuffle ? (uint64_t)((offset + (unsigned __int128)k * stride) % blocks)
                                                   : k;
    g_blockIdx = uint3{(unsigned)(idx % l.grid.x), (unsigned)(idx / l.grid.x % l.grid.y),
                       (unsigned)(idx / ((uint64_t)l.grid.x * l.grid.y))};
    ok = runBlock(b, order, kernelSeed ^ (idx * 0xd1342543de82ef95ull));
  }
  countThreads(blocks * l.block.x * l.block.y * l.block.z);
  gBlock = nullptr;
  gDynShared = nullptr;
  return ok;
}

}  // namespace axn::emu
