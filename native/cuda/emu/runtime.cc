// The emulated device's runtime API: memory registry, the device's streams and its worker thread, events,
// errors. See runtime.h for what is modelled and why.
#include "runtime.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "internal.h"

#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define AXN_EMU_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define AXN_EMU_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define AXN_EMU_POISON(p, n) ((void)(p), (void)(n))
#define AXN_EMU_UNPOISON(p, n) ((void)(p), (void)(n))
// Without AddressSanitizer device memory is mapped page by page (cudaMalloc): every allocation owns its
// pages, which the traffic counter needs (traffic.cc). With it, from the heap, where ASan checks bounds.
#define AXN_EMU_PAGE_EXCLUSIVE 1
#endif

namespace axn::emu {
struct EventState {
  double ms = -1;  // when the device passed it (steady clock), -1 before
};
}  // namespace axn::emu

struct CUstream_st {
  unsigned flags = 0;
  uint64_t lane = 0;  // its queue of work on the device (Device::lanes), which outlives the handle
};
struct CUevent_st {
  unsigned flags = 0;
  uint64_t seq = 0;  // the operation that records it; 0: never recorded (complete)
  std::shared_ptr<axn::emu::EventState> state = std::make_shared<axn::emu::EventState>();
};

namespace axn::emu {
namespace {

constexpr size_t kDefaultSharedPerBlock = 48 * 1024;
constexpr size_t kMaxSharedPerBlockOptin = 227 * 1024;
// The host runs ahead of the device by at most this many operations, as a real launch queue blocks the
// host when it is full (about a thousand launches deep on current GPUs).
constexpr size_t kMaxQueue = 1024;
constexpr uint64_t kAll = std::numeric_limits<uint64_t>::max();

struct Allocation {
  size_t bytes;   // what cudaMalloc / cudaMallocHost gave
  size_t usable;  // what may be used now: the caching allocator's view of its block (markBlock)
  bool live;      // false while the caching allocator holds the block (freed to its cache)
  bool pinned;
};

struct Op {
  uint64_t seq;                // its place in the order the host enqueued everything, from 1
  std::vector<uint64_t> after;  // operations of other streams it must follow (event waits, legacy stream)
  DeviceWork work;
};

// One stream's work, in order. Lane 0 is the legacy default stream (handle 0); a created stream's lane
// stays after cudaStreamDestroy until its work has run.
struct Lane {
  bool blocking = true;    // synchronises with the legacy stream (created without cudaStreamNonBlocking)
  bool destroyed = false;  // its handle is gone
  std::deque<Op> ops;      // enqueued, not yet started
  uint64_t last = 0;       // the last operation enqueued on it (0: none)
  uint64_t prio = 0, prioEpoch = 0;  // its priority in the shuffled interleaving (Device::pick)
};

// What a waiting host thread waits for: every operation of `ops`, and every operation up to `upTo`.
struct Wait {
  std::vector<uint64_t> ops;
  uint64_t upTo = 0;
};

#if defined(AXN_EMU_PAGE_EXCLUSIVE)
size_t pageRound(size_t bytes) { return (bytes + kTrafficPageBytes - 1) / kTrafficPageBytes * kTrafficPageBytes; }
#endif

double nowMs() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

const char* envOr(const char* name, const char* dflt) {
  const char* v = std::getenv(name);
  return v && *v ? v : dflt;
}

std::atomic<int> gOrder{-1};
std::atomic<uint64_t> gSeed{1};

void initOrder() {
  if (gOrder.load() >= 0) return;
  const std::string o = envOr("AXN_EMU_ORDER", "shuffle");
  gOrder = o == "forward" ? (int)Order::Forward : o == "reverse" ? (int)Order::Reverse : (int)Order::Shuffle;
  gSeed = std::strtoull(envOr("AXN_EMU_SEED", "1"), nullptr, 10);
}

// The device runs one operation at a time, on its worker thread, lazily: only while a host thread waits
// for work not yet done (and then only work enqueued no later than what it waits for), or while the
// queue is long, or always under AXN_EMU_EAGER=1. Each stream keeps its order; between streams only
// their dependencies (event waits, the legacy stream's implicit ones) order the work, and where several
// streams have a runnable first operation, `pick` chooses among them by the thread-order setting.
struct Device {
  std::mutex mu;
  std::condition_variable cvWork, cvDone, cvRoom;
  std::map<uintptr_t, Allocation> allocs;
  std::set<const CUstream_st*> streams;
  std::set<const CUevent_st*> events;
  std::map<const void*, int> smemOptin;  // kernel -> opted-in dynamic shared bytes
  std::map<uint64_t, Lane> lanes;        // by id, in creation order; 0: the legacy default stream
  uint64_t nextLane = 1;
  std::set<uint64_t> pending;            // enqueued and not yet completed (started or not)
  std::vector<const Wait*> waits;        // the host threads waiting now
  uint64_t enqueued = 0;
  uint64_t rng = 1, epoch = 1;           // the shuffled interleaving's generator and priority epoch
  bool seeded = false;
  std::atomic<cudaError_t> sticky{cudaSuccess};
  std::string stickyDetail;
  Counters c;
  bool eager = false;
  bool skipKernels = false;  // AXN_EMU_SKIP_KERNELS=1: launches and GEMMs are checked and recorded, not run
  size_t capacity = 0;
  bool present = true;
  uint64_t launchId = 0;
  std::thread worker;

  Device() {
    eager = std::strcmp(envOr("AXN_EMU_EAGER", "0"), "1") == 0;
    skipKernels = std::strcmp(envOr("AXN_EMU_SKIP_KERNELS", "0"), "1") == 0;
    present = std::strcmp(envOr("AXN_EMU_DEVICES", "1"), "0") != 0;
    capacity = static_cast<size_t>(std::strtoull(envOr("AXN_EMU_MEMORY_MIB", "8192"), nullptr, 10)) << 20;
    lanes[0];  // the legacy default stream
    worker = std::thread([this] { loop(); });
    worker.detach();  // the device lives as long as the process (never destroyed: see dev())
  }

  bool done(uint64_t seq) const { return seq == 0 || pending.count(seq) == 0; }

  bool satisfied(const Wait& w) const {
    for (uint64_t s : w.ops)
      if (!done(s)) return false;
    return pending.empty() || *pending.begin() > w.upTo;
  }

  // The newest operation the device may run now (0: none, it sleeps). A wait lets the device run only
  // what was enqueued up to the newest operation it waits for, so that work enqueued later stays
  // pending (a host wait for one stream does not run another stream's later work) and a read without
  // its wait stays stale. The oldest pending operation is always runnable (its stream predecessors and
  // dependencies are older still), so a wait always makes progress.
  uint64_t bound() const {
    if (pending.empty()) return 0;
    if (eager || pending.size() >= kMaxQueue) return kAll;
    uint64_t b = 0;
    for (const Wait* w : waits) {
      if (satisfied(*w)) continue;
      for (uint64_t s : w->ops) b = std::max(b, s);
      b = std::max(b, w->upTo);
    }
    return b;
  }

  uint64_t next() {  // splitmix64
    uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

  void reseed(uint64_t seed) {
    rng = seed;
    epoch++;
    seeded = true;
  }

  // The stream whose first operation runs next: one whose first operation was enqueued no later than
  // `b` and whose dependencies have completed. Where several are, the order setting decides:
  //  - forward: the oldest (the order the host enqueued: one FIFO, as if there were one stream);
  //  - reverse: the newest (the later of two unordered operations always runs first);
  //  - shuffle: priorities drawn by the seeded generator, one per stream; the highest runs, and after
  //    each choice, with probability 1/4, the priorities are drawn again at the next one. So for two
  //    unordered operations both orders occur across seeds however much other work either stream has
  //    (a fair coin per operation would almost never run a long stream's tail before another's head),
  //    and the switch points between streams still move.
  std::map<uint64_t, Lane>::iterator pick(uint64_t b) {
    std::vector<std::map<uint64_t, Lane>::iterator> ready;
    for (auto it = lanes.begin(); it != lanes.end(); ++it) {
      if (it->second.ops.empty()) continue;
      const Op& head = it->second.ops.front();
      if (head.seq > b) continue;
      bool ok = true;
      for (uint64_t a : head.after) ok = ok && done(a);
      if (ok) ready.push_back(it);
    }
    if (ready.size() == 1) return ready[0];
    c.streamChoices++;
    initOrder();
    const Order o = (Order)gOrder.load();
    auto headSeq = [](std::map<uint64_t, Lane>::iterator it) { return it->second.ops.front().seq; };
    if (o == Order::Forward)
      return *std::min_element(ready.begin(), ready.end(), [&](auto x, auto y) { return headSeq(x) < headSeq(y); });
    if (o == Order::Reverse)
      return *std::max_element(ready.begin(), ready.end(), [&](auto x, auto y) { return headSeq(x) < headSeq(y); });
    if (!seeded) reseed(gSeed.load());
    for (auto it : ready) {  // in creation order, so the draws are the same on every run
      if (it->second.prioEpoch == epoch) continue;
      it->second.prio = next();
      it->second.prioEpoch = epoch;
    }
    auto chosen = *std::max_element(ready.begin(), ready.end(), [](auto x, auto y) { return x->second.prio < y->second.prio; });
    if (next() % 4 == 0) epoch++;
    return chosen;
  }

  void loop() {
    std::unique_lock<std::mutex> lk(mu);
    for (;;) {
      uint64_t b = 0;
      cvWork.wait(lk, [&] { return (b = bound()) != 0; });
      const auto it = pick(b);
      const uint64_t laneId = it->first;
      Op op = std::move(it->second.ops.front());
      it->second.ops.pop_front();
      const bool skip = sticky != cudaSuccess;  // after a fault the device runs nothing more
      lk.unlock();
      ExecError err;
      const bool ok = skip || op.work(err);
      op.work = nullptr;  // release captured buffers outside the lock
      lk.lock();
      if (!ok) setStickyLocked(err.code, err.detail);
      pending.erase(op.seq);
      auto l = lanes.find(laneId);
      if (l != lanes.end() && l->second.destroyed && l->second.ops.empty() && done(l->second.last)) lanes.erase(l);
      cvDone.notify_all();
      cvRoom.notify_all();
    }
  }

  void setStickyLocked(cudaError_t code, const std::string& detail);
};

Device& dev() {
  static Device* d = new Device();  // never destroyed: the worker may still run at process exit
  return *d;
}

// Error details (what the emulator saw), per error code, appended by cudaGetErrorString.
std::mutex gDetailMu;
std::map<int, std::string> gDetail;
void setDetail(cudaError_t code, const std::string& detail) {
  std::lock_guard<std::mutex> lk(gDetailMu);
  gDetail[code] = detail;
}

void Device::setStickyLocked(cudaError_t code, const std::string& detail) {
  if (sticky != cudaSuccess) return;
  sticky = code;
  stickyDetail = detail;
  setDetail(code, detail);
}

thread_local cudaError_t tlLast = cudaSuccess;

// Every failing call ends here: the error becomes the thread's last error; one without a detail of its
// own clears the detail an earlier error of the same code left (a sticky error keeps its detail).
cudaError_t ret(cudaError_t e) {
  if (e == cudaSuccess) return e;
  tlLast = e;
  if (e != dev().sticky.load()) setDetail(e, "");
  return e;
}
cudaError_t ret(cudaError_t e, const std::string& detail) {
  tlLast = e;
  setDetail(e, detail);
  return e;
}

// Wait (host) until the device has completed `w`. Counts as one host synchronisation.
cudaError_t waitFor(Device& d, std::unique_lock<std::mutex>& lk, const Wait& w) {
  d.c.hostSyncs++;
  d.waits.push_back(&w);
  d.cvWork.notify_all();
  d.cvDone.wait(lk, [&] { return d.satisfied(w); });
  d.waits.erase(std::find(d.waits.begin(), d.waits.end(), &w));
  return d.sticky;
}
cudaError_t waitForOps(Device& d, std::unique_lock<std::mutex>& lk, std::vector<uint64_t> ops) {
  return waitFor(d, lk, Wait{std::move(ops), 0});
}
// Everything enqueued so far, on every stream.
cudaError_t waitForAll(Device& d, std::unique_lock<std::mutex>& lk) { return waitFor(d, lk, Wait{{}, d.enqueued}); }

bool streamValid(Device& d, cudaStream_t s) { return s == nullptr || d.streams.count(s) > 0; }

// What a wait for (or a query of) stream `s` covers: its last operation, which completes after all the
// stream's work. The legacy stream's operations wait for the blocking streams' earlier work (below), so
// waiting for its last one covers that too; not blocking-stream work enqueued after it, nor ever a
// non-blocking stream's.
uint64_t streamLast(Device& d, cudaStream_t s) { return d.lanes[s ? s->lane : 0].last; }

// Enqueue `work` on stream `s` (valid: the caller checked), after operation `after` of any stream (0:
// none). Keeps CUDA's legacy default stream semantics: an operation on the legacy stream waits for the
// work already enqueued on every blocking stream, and one on a blocking stream waits for the legacy
// stream's; non-blocking streams (cudaStreamNonBlocking, as the addon's) do neither.
uint64_t enqueueLocked(Device& d, std::unique_lock<std::mutex>& lk, cudaStream_t s, DeviceWork work,
                       uint64_t after = 0) {
  if (d.pending.size() >= 2 * kMaxQueue) {  // the launch queue is full: the host waits for room
    d.cvWork.notify_all();
    d.cvRoom.wait(lk, [&] { return d.pending.size() < 2 * kMaxQueue; });
  }
  const uint64_t id = s ? s->lane : 0;
  Op op{++d.enqueued, {}, std::move(work)};
  if (!d.done(after)) op.after.push_back(after);
  if (id == 0) {
    for (auto& [other, lane] : d.lanes)
      if (other != 0 && lane.blocking && !d.done(lane.last)) op.after.push_back(lane.last);
  } else if (d.lanes[id].blocking && !d.done(d.lanes[0].last)) {
    op.after.push_back(d.lanes[0].last);
  }
  const uint64_t seq = op.seq;
  Lane& lane = d.lanes[id];
  lane.last = seq;
  lane.ops.push_back(std::move(op));
  d.pending.insert(seq);
  d.cvWork.notify_all();
  return seq;
}

enum class Where { Device, Pinned, Host, Partial };

// Where [p, p + bytes) lies. Caller holds the mutex.
Where classify(Device& d, const void* p, size_t bytes, std::string* why) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  auto it = d.allocs.upper_bound(a);
  if (it == d.allocs.begin()) return Where::Host;
  --it;
  const uintptr_t base = it->first;
  if (a >= base + it->second.bytes) return Where::Host;
  const size_t size = it->second.live ? it->second.usable : 0;
  if (a + bytes > base + size) {
    if (why)
      *why = "the range " + hexPtr(p) + " + " + std::to_string(bytes) + " bytes runs " +
             std::to_string(a + bytes - (base + size)) + " bytes past the end of the " +
             (it->second.pinned ? "pinned" : "device") + " allocation at " + hexPtr((const void*)base) + " (" +
             std::to_string(size) + " bytes" +
             (!it->second.live ? " in use: a block the caching allocator holds, freed"
              : size != it->second.bytes ? " in use of a " + std::to_string(it->second.bytes) + "-byte block"
                                         : "") +
             ")";
    return Where::Partial;
  }
  return it->second.pinned ? Where::Pinned : Where::Device;
}

const char* whereName(Where w) {
  switch (w) {
    case Where::Device: return "device memory";
    case Where::Pinned: return "pinned host memory";
    case Where::Host: return "pageable host memory (no CUDA allocation)";
    default: return "a range that leaves its allocation";
  }
}

}  // namespace

std::string hexPtr(const void* p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%p", p);
  return buf;
}

void setOrder(Order o, uint64_t s) {
  Device& d = dev();
  std::lock_guard<std::mutex> lk(d.mu);
  gOrder = (int)o;
  gSeed = s;
  d.reseed(s);  // the interleaving of streams starts over too: the same program, the same choices
}
Order order() {
  initOrder();
  return (Order)gOrder.load();
}
uint64_t seed() {
  initOrder();
  return gSeed.load();
}
const char* orderName(Order o) {
  return o == Order::Forward ? "forward" : o == Order::Reverse ? "reverse" : "shuffle";
}

Counters counters() {
  Device& d = dev();
  std::lock_guard<std::mutex> lk(d.mu);
  return d.c;
}

const char* lastDetail() {
  thread_local std::string buf;
  Device& d = dev();
  std::lock_guard<std::mutex> lk(d.mu);
  buf = d.stickyDetail;
  return buf.c_str();
}

void markBlock(cudaStream_t s, void* p, bool live, size_t usable, size_t total) {
  {
    Device& d = dev();
    std::lock_guard<std::mutex> lk(d.mu);
    auto it = d.allocs.find(reinterpret_cast<uintptr_t>(p));
    if (it != d.allocs.end() && !it->second.pinned) {
      it->second.live = live;
      it->second.usable = live ? std::min(usable, it->second.bytes) : 0;
    }
  }
  if (!live) usable = 0;
#if defined(__SANITIZE_ADDRESS__)
  char* c = static_cast<char*>(p);
  enqueue(s, [c, usable, total](ExecError&) {
    AXN_EMU_UNPOISON(c, usable);
    AXN_EMU_POISON(c + usable, total - usable);
    return true;
  });
#else
  (void)s, (void)p, (void)usable, (void)total;
#endif
}

void deviceAllocations(std::vector<std::pair<uintptr_t, size_t>>& out) {
  Device& d = dev();
  std::lock_guard<std::mutex> lk(d.mu);
  out.clear();
  for (const auto& [base, a] : d.allocs)
    if (!a.pinned) out.emplace_back(base, a.bytes);
}

cudaError_t enqueue(cudaStream_t s, DeviceWork work) {
  Device& d = dev();
  std::unique_lock<std::mutex> lk(d.mu);
  if (d.sticky != cudaSuccess) return d.sticky;
  if (!streamValid(d, s)) return cudaErrorInvalidResourceHandle;
  enqueueLocked(d, lk, s, std::move(work));
  return cudaSuccess;
}

bool inDeviceMemory(const void* p, size_t bytes, bool allowPinned, std::string* why) {
  Device& d = dev();
  std::lock_guard<std::mutex> lk(d.mu);
  const Where w = classify(d, p, bytes, why);
  if (w == Where::Device || (allowPinned && w == Where::Pinned)) return true;
  if (why && w != Where::Partial) *why = hexPtr(p) + " lies in " + whereName(w);
  return false;
}

void fault(cudaError_t code, const std::string& detail) {
  Device& d = dev();
  std::lock_guard<std::mutex> lk(d.mu);
  d.setStickyLocked(code, detail);
}

cudaError_t stickyError() {
  Device& d = dev();
  std::lock_guard<std::mutex> lk(d.mu);
  return d.sticky;
}

bool skipKernels() { return dev().skipKernels; }

bool available(std::string* reason) {
  if (dev().present) return true;
  if (reason) *reason = "AXN_EMU_DEVICES=0: the emulator reports no device";
  return false;
}

void countCublasCall() {
  Device& d = dev();
  std::lock_guard<std::mutex> lk(d.mu);
  d.c.cublasCalls++;
}

namespace {
std::string gLastMisaligned;  // under dev().mu
}

void countMisalignedGemm(const std::string& what) {
  Device& d = dev();
  std::lock_guard<std::mutex> lk(d.mu);
  d.c.cublasMisaligned++;
  gLastMisaligned = what;
}

std::string lastMisalignedGemm() {
  Device& d = dev();
  std::lock_guard<std::mutex> lk(d.mu);
  return gLastMisaligned;
}

void countThreads(uint64_t n) {
  Device& d = dev();
  std::lock_guard<std::mutex> lk(d.mu);
  d.c.threadsRun += n;
}

cudaError_t submitKernel(KernelLaunch&& l, cudaStream_t s) {
  Device& d = dev();
  std::unique_lock<std::mutex> lk(d.mu);
  if (d.sticky != cudaSuccess) return ret(d.sticky);
  if (!streamValid(d, s)) return ret(cudaErrorInvalidResourceHandle, std::string(l.name) + ": launch on a destroyed or unknown stream");
  const std::string where = std::string(l.name) + "<<<(" + std::to_string(l.grid.x) + "," + std::to_string(l.grid.y) +
                            "," + std::to_string(l.grid.z) + "), (" + std::to_string(l.block.x) + "," +
                            std::to_string(l.block.y) + "," + std::to_string(l.block.z) + ")>>>";
  const uint64_t threads = (uint64_t)l.block.x * l.block.y * l.block.z;
  std::string bad;
  if (l.block.x == 0 || l.block.y == 0 || l.block.z == 0 || l.grid.x == 0 || l.grid.y == 0 || l.grid.z == 0)
    bad = "a grid or block dimension is 0";
  else if (threads > 1024)
    bad = std::to_string(threads) + " threads per block (at most 1024)";
  else if (l.block.x > 1024 || l.block.y > 1024 || l.block.z > 64)
    bad = "blockDim must be at most (1024, 1024, 64)";
  else if (l.grid.x > 2147483647u || l.grid.y > 65535 || l.grid.z > 65535)
    bad = "gridDim must be at most (2147483647, 65535, 65535)";
  if (!bad.empty()) return ret(cudaErrorInvalidConfiguration, where + ": " + bad);
  auto opt = d.smemOptin.find(l.func);
  const size_t smemLimit = opt == d.smemOptin.end() ? kDefaultSharedPerBlock : (size_t)opt->second;
  if (l.dynShared > smemLimit)
    return ret(cudaErrorInvalidValue, where + ": " + std::to_string(l.dynShared) + " bytes of dynamic shared memory, over the " +
                                          std::to_string(smemLimit) + " this kernel may use" +
                                          (opt == d.smemOptin.end() ? " (48 KiB unless raised with cudaFuncSetAttribute)" : ""));
  for (const PointerArg& a : l.pointers) {
    if (a.ptr == nullptr) continue;
    const uintptr_t p = reinterpret_cast<uintptr_t>(a.ptr);
    auto it = d.allocs.upper_bound(p);
    bool ok = false;
    if (it != d.allocs.begin()) {
      --it;
      ok = it->second.live && p <= it->first + it->second.usable;  // in use, or one past its end
    }
    if (!ok) {
      const std::string msg = where + ": argument " + std::to_string(a.index + 1) + " (" + hexPtr(a.ptr) +
                              ") lies in no live device allocation (a host pointer, or freed memory: a block the "
                              "caching allocator holds is not live)";
      d.setStickyLocked(cudaErrorIllegalAddress, msg);
      return ret(cudaErrorIllegalAddress);
    }
  }
  initOrder();
  const Order o = (Order)gOrder.load();
  const uint64_t sd = gSeed.load(), id = ++d.launchId;
  static const bool trace = std::strcmp(envOr("AXN_EMU_TRACE", "0"), "1") == 0;
  if (trace) std::fprintf(stderr, "axn-emu: launch %llu: %s, %llu threads\n", (unsigned long long)id, where.c_str(),
                          (unsigned long long)(threads * l.grid.x * l.grid.y * l.grid.z));
  auto launch = std::make_shared<KernelLaunch>(std::move(l));
  d.c.kernelLaunches++;
  if (d.skipKernels) {
    // The plan of a run (AXN_EMU_SKIP_KERNELS=1): every check above, the record, no execution.
    TrafficRecord rec;
    const bool counted = trafficCounting();
    if (counted) {
      rec.kind = TrafficRecord::Kernel;
      rec.name = launch->name;
      rec.op = launch->op;
      rec.pagesValid = false;
      const unsigned g[3] = {launch->grid.x, launch->grid.y, launch->grid.z}, bl[3] = {launch->block.x, launch->block.y, launch->block.z};
      std::copy(g, g + 3, rec.grid);
      std::copy(bl, bl + 3, rec.block);
    }
    enqueueLocked(d, lk, s, [rec, counted](ExecError&) {
      if (counted) addTrafficRecord(rec);
      return true;
    });
  } else if (trafficCounting()) {
    TrafficRecord rec;
    rec.kind = TrafficRecord::Kernel;
    rec.name = launch->name;
    rec.op = launch->op;
    const unsigned g[3] = {launch->grid.x, launch->grid.y, launch->grid.z}, bl[3] = {launch->block.x, launch->block.y, launch->block.z};
    std::copy(g, g + 3, rec.grid);
    std::copy(bl, bl + 3, rec.block);
    // Counted launches run their blocks and threads in forward order: the order changes no page a correct
    // kernel touches, and it keeps the pages each lifts contiguous (every protection boundary splits a
    // memory mapping, and Linux allows a process 65,530 of them: vm.max_map_count).
    enqueueLocked(d, lk, s, [launch, sd, id, rec](ExecError& err) {
      return runCounted(rec, [&] { return runKernel(*launch, Order::Forward, sd, id, &err); });
    });
  } else {
    enqueueLocked(d, lk, s, [launch, o, sd, id](ExecError& err) { return runKernel(*launch, o, sd, id, &err); });
  }
  return cudaSuccess;
}

}  // namespace axn::emu

using namespace axn::emu;

extern "C" {

const char* cudaGetErrorName(cudaError_t err) {
  switch (err) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInitializationError: return "cudaErrorInitializationError";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
    case cudaErrorIllegalInstruction: return "cudaErrorIllegalInstruction";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
  }
  return "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError_t err) {
  const char* base = "unrecognized error code";
  switch (err) {
    case cudaSuccess: base = "no error"; break;
    case cudaErrorInvalidValue: base = "invalid argument"; break;
    case cudaErrorMemoryAllocation: base = "out of memory"; break;
    case cudaErrorInitializationError: base = "initialization error"; break;
    case cudaErrorInvalidConfiguration: base = "invalid configuration argument"; break;
    case cudaErrorInvalidMemcpyDirection: base = "invalid copy direction for memcpy"; break;
    case cudaErrorInsufficientDriver: base = "CUDA driver version is insufficient for CUDA runtime version"; break;
    case cudaErrorNoDevice: base = "no CUDA-capable device is detected"; break;
    case cudaErrorInvalidDevice: base = "invalid device ordinal"; break;
    case cudaErrorInvalidResourceHandle: base = "invalid resource handle"; break;
    case cudaErrorNotReady: base = "device not ready"; break;
    case cudaErrorIllegalAddress: base = "an illegal memory access was encountered"; break;
    case cudaErrorLaunchOutOfResources: base = "too many resources requested for launch"; break;
    case cudaErrorIllegalInstruction: base = "an illegal instruction was encountered"; break;
    case cudaErrorLaunchFailure: base = "unspecified launch failure"; break;
  }
  thread_local std::string buf;
  buf = base;
  std::lock_guard<std::mutex> lk(gDetailMu);
  auto it = gDetail.find(err);
  if (err != cudaSuccess && it != gDetail.end() && !it->second.empty()) buf += " [emulated device: " + it->second + "]";
  return buf.c_str();
}

cudaError_t cudaGetLastError(void) {
  const cudaError_t s = stickyError();
  if (s != cudaSuccess) return s;
  const cudaError_t e = tlLast;
  tlLast = cudaSuccess;
  return e;
}

cudaError_t cudaPeekAtLastError(void) {
  const cudaError_t s = stickyError();
  return s != cudaSuccess ? s : tlLast;
}

cudaError_t cudaGetDeviceCount(int* count) {
  if (!count) return ret(cudaErrorInvalidValue);
  if (!dev().present) {
    *count = 0;
    return ret(cudaErrorNoDevice, "AXN_EMU_DEVICES=0");
  }
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  if (!dev().present) return ret(cudaErrorNoDevice);
  return device == 0 ? cudaSuccess : ret(cudaErrorInvalidDevice, "the emulator has one device, 0");
}

cudaError_t cudaGetDevice(int* device) {
  if (!device) return ret(cudaErrorInvalidValue);
  *device = 0;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp* p, int device) {
  if (!p) return ret(cudaErrorInvalidValue);
  if (!dev().present) return ret(cudaErrorNoDevice);
  if (device != 0) return ret(cudaErrorInvalidDevice);
  std::memset(p, 0, sizeof *p);
  std::snprintf(p->name, sizeof p->name, "alexnet-cuda emulated device (H200-like; not a GPU)");
  p->totalGlobalMem = dev().capacity;
  p->sharedMemPerBlock = kDefaultSharedPerBlock;
  p->sharedMemPerBlockOptin = kMaxSharedPerBlockOptin;
  p->regsPerBlock = 65536;
  p->warpSize = 32;
  p->maxThreadsPerBlock = 1024;
  p->maxThreadsDim[0] = 1024;
  p->maxThreadsDim[1] = 1024;
  p->maxThreadsDim[2] = 64;
  p->maxGridSize[0] = 2147483647;
  p->maxGridSize[1] = 65535;
  p->maxGridSize[2] = 65535;
  p->major = 9;
  p->minor = 0;
  p->multiProcessorCount = 132;
  p->maxThreadsPerMultiProcessor = 2048;
  p->l2CacheSize = 50 * 1024 * 1024;
  p->memoryBusWidth = 6144;
  return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int* v) {
  if (!v) return ret(cudaErrorInvalidValue);
  *v = 13000;
  return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int* v) {
  if (!v) return ret(cudaErrorInvalidValue);
  *v = 13000;
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* freeBytes, size_t* totalBytes) {
  Device& d = dev();
  std::lock_guard<std::mutex> lk(d.mu);
  if (d.sticky != cudaSuccess) return ret(d.sticky);
  if (freeBytes) *freeBytes = d.capacity - std::min(d.capacity, d.c.deviceBytes);
  if (totalBytes) *totalBytes = d.capacity;
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) {
  Device& d = dev();
  std::unique_lock<std::mutex> lk(d.mu);
  return ret(waitForAll(d, lk));
}

cudaError_t cudaMalloc(void** ptr, size_t bytes) {
  if (!ptr) return ret(cudaErrorInvalidValue);
  Device& d = dev();
  std::lock_guard<std::mutex> lk(d.mu);
  if (d.sticky != cudaSuccess) return ret(d.sticky);
  *ptr = nullptr;
  if (bytes == 0) return cudaSuccess;
  if (bytes > d.capacity - std::min(d.capacity, d.c.deviceBytes))
    return ret(cudaErrorMemoryAllocation, "cudaMalloc(" + std::to_string(bytes) + "): the emulated device has " +
                                              std::to_string(d.capacity >> 20) + " MiB (AXN_EMU_MEMORY_MIB), " +
                                              std::to_string(d.c.deviceBytes >> 20) + " MiB in use");
  void* p = nullptr;
#if defined(AXN_EMU_PAGE_EXCLUSIVE)
  // Each allocation on pages of its own, so that the traffic counter (traffic.cc) can protect it alone.
  p = mmap(nullptr, pageRound(bytes), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) p = nullptr;
  if (!p) return ret(cudaErrorMemoryAllocation, "cudaMalloc(" + std::to_string(bytes) + "): mmap failed");
#else
  // From the heap, so that AddressSanitizer sees a kernel that runs past an allocation.
  if (posix_memalign(&p, 256, bytes) != 0 || !p)
    return ret(cudaErrorMemoryAllocation, "cudaMalloc(" + std::to_string(bytes) + "): the host heap is exhausted");
#endif
  // Fresh device memory holds garbage: NaN shows a read of what no one wrote. Not when kernels are skipped
  // (a plan of the launches only): then it stays zero, untouched (not committed), and a loss read back is 0.
  if (!d.skipKernels) std::memset(p, 0xFF, bytes);
#if !defined(AXN_EMU_PAGE_EXCLUSIVE)
  else std::memset(p, 0, bytes);  // heap memory is not zero by itself
#endif
  d.allocs[reinterpret_cast<uintptr_t>(p)] = Allocation{bytes, bytes, true, false};
  d.c.deviceMallocs++;
  d.c.deviceBytes += bytes;
  *ptr = p;
  return cudaSuccess;
}

cudaError_t cudaFree(void* ptr) {
  if (!ptr) return cudaSuccess;
  Device& d = dev();
  std::unique_lock<std::mutex> lk(d.mu);
  if (d.sticky != cudaSuccess) return ret(d.sticky);
  waitForAll(d, lk);  // cudaFree synchronises the device
  auto it = d.allocs.find(reinterpret_cast<uintptr_t>(ptr));
  if (it == d.allocs.end() || it->second.pinned)
    return ret(cudaErrorInvalidValue, "cudaFree(" + hexPtr(ptr) + "): not the start of a live device allocation");
  d.c.deviceBytes -= it->second.bytes;
  d.c.deviceFrees++;
  AXN_EMU_UNPOISON(ptr, it->second.bytes);
#if defined(AXN_EMU_PAGE_EXCLUSIVE)
  munmap(ptr, pageRound(it->second.bytes));
#else
  std::free(ptr);
#endif
  d.allocs.erase(it);
  return cudaSuccess;
}

cudaError_t cudaMallocHost(void** ptr, size_t bytes) {
  if (!ptr) return ret(cudaErrorInvalidValue);
  Device& d = dev();
  std::lock_guard<std::mutex> lk(d.mu);
  if (d.sticky != cudaSuccess) return ret(d.sticky);
  *ptr = nullptr;
  void* p = nullptr;
  if (posix_memalign(&p, 4096, bytes ? bytes : 1) != 0 || !p)
    return ret(cudaErrorMemoryAllocation, "cudaMallocHost(" + std::to_string(bytes) + ")");
  d.allocs[reinterpret_cast<uintptr_t>(p)] = Allocation{bytes, bytes, true, true};
  d.c.pinnedMallocs++;
  d.c.pinnedBytes += bytes;
  *ptr = p;
  return cudaSuccess;
}

cudaError_t cudaFreeHost(void* ptr) {
  if (!ptr) return cudaSuccess;
  Device& d = dev();
  std::unique_lock<std::mutex> lk(d.mu);
  if (d.sticky != cudaSuccess) return ret(d.sticky);
  waitForAll(d, lk);  // cudaFreeHost synchronises the device
  auto it = d.allocs.find(reinterpret_cast<uintptr_t>(ptr));
  if (it == d.allocs.end() || !it->second.pinned)
    return ret(cudaErrorInvalidValue, "cudaFreeHost(" + hexPtr(ptr) + "): not a live pinned allocation");
  d.c.pinnedBytes -= it->second.bytes;
  d.c.pinnedFrees++;
  d.allocs.erase(it);
  std::free(ptr);
  return cudaSuccess;
}

namespace {

cudaError_t memcpyImpl(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s, bool blocking) {
  Device& d = dev();
  std::unique_lock<std::mutex> lk(d.mu);
  if (d.sticky != cudaSuccess) return ret(d.sticky);
  if (!streamValid(d, s)) return ret(cudaErrorInvalidResourceHandle, "cudaMemcpyAsync on an unknown stream");
  if (bytes == 0) return cudaSuccess;
  if (!dst || !src) return ret(cudaErrorInvalidValue, "cudaMemcpy with a null pointer");
  std::string why;
  const Where wd = classify(d, dst, bytes, &why);
  if (wd == Where::Partial) return ret(cudaErrorInvalidValue, "cudaMemcpy destination: " + why);
  const Where ws = classify(d, src, bytes, &why);
  if (ws == Where::Partial) return ret(cudaErrorInvalidValue, "cudaMemcpy source: " + why);
  const bool dDev = wd == Where::Device, sDev = ws == Where::Device;
  if (kind == cudaMemcpyDefault)
    kind = sDev ? (dDev ? cudaMemcpyDeviceToDevice : cudaMemcpyDeviceToHost)
                : (dDev ? cudaMemcpyHostToDevice : cudaMemcpyHostToHost);
  const bool wantSrcDev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  const bool wantDstDev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  if (kind < cudaMemcpyHostToHost || kind > cudaMemcpyDeviceToDevice)
    return ret(cudaErrorInvalidMemcpyDirection, "cudaMemcpy kind " + std::to_string((int)kind));
  if (wantSrcDev != sDev || wantDstDev != dDev)
    return ret(cudaErrorInvalidValue, std::string("cudaMemcpy ") +
                                          (kind == cudaMemcpyHostToDevice   ? "HostToDevice"
                                           : kind == cudaMemcpyDeviceToHost ? "DeviceToHost"
                                           : kind == cudaMemcpyDeviceToDevice ? "DeviceToDevice"
                                                                              : "HostToHost") +
                                          ": the source " + hexPtr(src) + " is " + whereName(ws) + ", the destination " +
                                          hexPtr(dst) + " is " + whereName(wd));
  d.c.copies++;
  // Counted: the device bytes its arguments name (a host side is not device memory traffic).
  std::shared_ptr<TrafficRecord> rec;
  if (trafficCounting()) {
    rec = std::make_shared<TrafficRecord>();
    rec->kind = TrafficRecord::Copy;
    rec->name = std::string("memcpy ") + (sDev ? "D" : "H") + "to" + (dDev ? "D" : "H");
    rec->argReadBytes = sDev ? (double)bytes : 0;
    rec->argWriteBytes = dDev ? (double)bytes : 0;
  }
  uint64_t seq;
  if (ws == Where::Host) {
    // From pageable memory the data is staged before the call returns: the source may be reused at once.
    auto staged = std::make_shared<std::vector<unsigned char>>(static_cast<const unsigned char*>(src),
                                                               static_cast<const unsigned char*>(src) + bytes);
    seq = enqueueLocked(d, lk, s, [dst, staged, rec](ExecError&) {
      std::memcpy(dst, staged->data(), staged->size());
      if (rec) addTrafficRecord(*rec);
      return true;
    });
  } else {
    // From device or pinned memory the copy reads the source when the device gets to it.
    seq = enqueueLocked(d, lk, s, [dst, src, bytes, rec](ExecError&) {
      std::memcpy(dst, src, bytes);
      if (rec) addTrafficRecord(*rec);
      return true;
    });
  }
  // To pageable memory (and cudaMemcpy) the call returns when the copy is done.
  if (blocking || wd == Where::Host) return ret(waitForOps(d, lk, {seq}));
  return cudaSuccess;
}

// 2D copies: device to device only (what the data loader's GPU decoding uses). Each region, pitch ×
// (height − 1) + width bytes, must lie in one live device allocation.
cudaError_t memcpy2DImpl(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                         cudaMemcpyKind kind, cudaStream_t s) {
  Device& d = dev();
  std::unique_lock<std::mutex> lk(d.mu);
  if (d.sticky != cudaSuccess) return ret(d.sticky);
  if (!streamValid(d, s)) return ret(cudaErrorInvalidResourceHandle, "cudaMemcpy2DAsync on an unknown stream");
  if (width == 0 || height == 0) return cudaSuccess;
  if (kind != cudaMemcpyDeviceToDevice && kind != cudaMemcpyDefault)
    return ret(cudaErrorInvalidMemcpyDirection, "cudaMemcpy2DAsync: the emulated device copies device to device only");
  if (!dst || !src) return ret(cudaErrorInvalidValue, "cudaMemcpy2DAsync with a null pointer");
  if (width > dpitch || width > spitch) return ret(cudaErrorInvalidValue, "cudaMemcpy2DAsync: width " + std::to_string(width) + " is wider than a pitch");
  std::string why;
  if (classify(d, dst, dpitch * (height - 1) + width, &why) != Where::Device) return ret(cudaErrorInvalidValue, "cudaMemcpy2DAsync destination: " + why);
  if (classify(d, src, spitch * (height - 1) + width, &why) != Where::Device) return ret(cudaErrorInvalidValue, "cudaMemcpy2DAsync source: " + why);
  d.c.copies++;
  const bool counted = trafficCounting();
  enqueueLocked(d, lk, s, [dst, dpitch, src, spitch, width, height, counted](ExecError&) {
    for (size_t r = 0; r < height; r++)
      std::memcpy(static_cast<unsigned char*>(dst) + r * dpitch, static_cast<const unsigned char*>(src) + r * spitch, width);
    if (counted) {
      TrafficRecord rec;
      rec.kind = TrafficRecord::Copy;
      rec.name = "memcpy2D DtoD";
      rec.argReadBytes = rec.argWriteBytes = (double)width * height;
      addTrafficRecord(std::move(rec));
    }
    return true;
  });
  return cudaSuccess;
}

cudaError_t memsetImpl(void* dst, int value, size_t bytes, cudaStream_t s, bool blocking) {
  Device& d = dev();
  std::unique_lock<std::mutex> lk(d.mu);
  if (d.sticky != cudaSuccess) return ret(d.sticky);
  if (!streamValid(d, s)) return ret(cudaErrorInvalidResourceHandle, "cudaMemsetAsync on an unknown stream");
  if (bytes == 0) return cudaSuccess;
  std::string why;
  const Where w = classify(d, dst, bytes, &why);
  if (w != Where::Device)
    return ret(cudaErrorInvalidValue, "cudaMemset: " + (w == Where::Partial ? why : hexPtr(dst) + " is " + whereName(w)));
  d.c.copies++;
  const bool counted = trafficCounting();
  const uint64_t seq = enqueueLocked(d, lk, s, [dst, value, bytes, counted](ExecError&) {
    std::memset(dst, value, bytes);
    if (counted) {
      TrafficRecord rec;
      rec.kind = TrafficRecord::Memset;
      rec.name = "memset";
      rec.argWriteBytes = (double)bytes;
      addTrafficRecord(std::move(rec));
    }
    return true;
  });
  if (blocking) return ret(waitForOps(d, lk, {seq}));
  return cudaSuccess;
}

}  // namespace

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, enum cudaMemcpyKind kind) {
  return memcpyImpl(dst, src, bytes, kind, nullptr, true);
}
cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              enum cudaMemcpyKind kind, cudaStream_t s) {
  return memcpy2DImpl(dst, dpitch, src, spitch, width, height, kind, s);
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, enum cudaMemcpyKind kind, cudaStream_t s) {
  return memcpyImpl(dst, src, bytes, kind, s, false);
}
cudaError_t cudaMemset(void* dst, int value, size_t bytes) { return memsetImpl(dst, value, bytes, nullptr, true); }
cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t s) {
  return memsetImpl(dst, value, bytes, s, false);
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned int flags) {
  if (!s) return ret(cudaErrorInvalidValue);
  Device& d = dev();
  std::lock_guard<std::mutex> lk(d.mu);
  if (d.sticky != cudaSuccess) return ret(d.sticky);
  auto* st = new CUstream_st();
  st->flags = flags;
  st->lane = d.nextLane++;
  d.lanes[st->lane].blocking = (flags & cudaStreamNonBlocking) == 0;
  d.streams.insert(st);
  *s = st;
  return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, cudaStreamDefault); }

cudaError_t cudaStreamDestroy(cudaStream_t s) {
  Device& d = dev();
  std::lock_guard<std::mutex> lk(d.mu);
  if (!s || !d.streams.count(s)) return ret(cudaErrorInvalidResourceHandle, "cudaStreamDestroy of an unknown stream");
  d.streams.erase(s);
  // Work already enqueued on it still runs (and the legacy stream still waits for it): its lane stays
  // until then.
  auto lane = d.lanes.find(s->lane);
  lane->second.destroyed = true;
  if (lane->second.ops.empty() && d.done(lane->second.last)) d.lanes.erase(lane);
  delete s;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  Device& d = dev();
  std::unique_lock<std::mutex> lk(d.mu);
  if (!streamValid(d, s)) return ret(cudaErrorInvalidResourceHandle, "cudaStreamSynchronize of an unknown stream");
  return ret(waitForOps(d, lk, {streamLast(d, s)}));
}

cudaError_t cudaStreamQuery(cudaStream_t s) {
  Device& d = dev();
  std::lock_guard<std::mutex> lk(d.mu);
  if (!streamValid(d, s)) return ret(cudaErrorInvalidResourceHandle);
  if (d.sticky != cudaSuccess) return ret(d.sticky);
  return d.done(streamLast(d, s)) ? cudaSuccess : cudaErrorNotReady;
}

// The wait captures the event's record at the call, as CUDA's does: recording the event again later (on
// any stream) does not change what this wait waits for, so an event may be reused as soon as the wait
// is enqueued. An event never recorded, or whose record has completed, orders nothing.
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned int) {
  Device& d = dev();
  std::unique_lock<std::mutex> lk(d.mu);
  if (!streamValid(d, s) || !e || !d.events.count(e)) return ret(cudaErrorInvalidResourceHandle);
  if (d.sticky != cudaSuccess) return ret(d.sticky);
  d.c.eventWaits++;
  // On the legacy stream the wait is an action like any other (it waits for the blocking streams too).
  if (!d.done(e->seq) || s == nullptr) enqueueLocked(d, lk, s, [](ExecError&) { return true; }, e->seq);
  return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned int flags) {
  if (!e) return ret(cudaErrorInvalidValue);
  Device& d = dev();
  std::lock_guard<std::mutex> lk(d.mu);
  if (d.sticky != cudaSuccess) return ret(d.sticky);
  auto* ev = new CUevent_st();
  ev->flags = flags;
  d.events.insert(ev);
  *e = ev;
  return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t* e) { return cudaEventCreateWithFlags(e, cudaEventDefault); }

cudaError_t cudaEventDestroy(cudaEvent_t e) {
  Device& d = dev();
  std::lock_guard<std::mutex> lk(d.mu);
  if (!e || !d.events.count(e)) return ret(cudaErrorInvalidResourceHandle, "cudaEventDestroy of an unknown event");
  d.events.erase(e);
  delete e;  // a pending record keeps its own reference to the event's state, a pending wait its number
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  Device& d = dev();
  std::unique_lock<std::mutex> lk(d.mu);
  if (d.sticky != cudaSuccess) return ret(d.sticky);
  if (!e || !d.events.count(e) || !streamValid(d, s)) return ret(cudaErrorInvalidResourceHandle, "cudaEventRecord");
  auto state = e->state = std::make_shared<EventState>();
  e->seq = enqueueLocked(d, lk, s, [state](ExecError&) {
    state->ms = nowMs();
    return true;
  });
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  Device& d = dev();
  std::unique_lock<std::mutex> lk(d.mu);
  if (!e || !d.events.count(e)) return ret(cudaErrorInvalidResourceHandle, "cudaEventSynchronize of an unknown event");
  return ret(waitForOps(d, lk, {e->seq}));
}

cudaError_t cudaEventQuery(cudaEvent_t e) {
  Device& d = dev();
  std::lock_guard<std::mutex> lk(d.mu);
  if (!e || !d.events.count(e)) return ret(cudaErrorInvalidResourceHandle);
  if (d.sticky != cudaSuccess) return ret(d.sticky);
  return d.done(e->seq) ? cudaSuccess : cudaErrorNotReady;
}

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
  Device& d = dev();
  std::lock_guard<std::mutex> lk(d.mu);
  if (!ms) return ret(cudaErrorInvalidValue);
  if (!a || !b || !d.events.count(a) || !d.events.count(b)) return ret(cudaErrorInvalidResourceHandle);
  if ((a->flags | b->flags) & cudaEventDisableTiming)
    return ret(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime on an event created with cudaEventDisableTiming");
  if (!d.done(a->seq) || !d.done(b->seq) || a->state->ms < 0 || b->state->ms < 0) return cudaErrorNotReady;
  *ms = static_cast<float>(b->state->ms - a->state->ms);
  return cudaSuccess;
}

cudaError_t axnEmuFuncSetAttribute(const void* func, enum cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return ret(cudaErrorInvalidValue, "unsupported function attribute");
  if (value < 0 || (size_t)value > kMaxSharedPerBlockOptin)
    return ret(cudaErrorInvalidValue, "cudaFuncAttributeMaxDynamicSharedMemorySize " + std::to_string(value) +
                                          " is over the device's 227 KiB per block");
  Device& d = dev();
  std::lock_guard<std::mutex> lk(d.mu);
  d.smemOptin[func] = value;
  return cudaSuccess;
}

}  // extern "C"
