// The CPU stream: an in-order queue of CPU work run by one native worker thread, so that CPU ops leave
// the Node event loop free (the CUDA backend's stream, for the CPU; sharp's and node-llama-cpp's pattern).
//
// - Op bindings validate their arguments on the calling (JS) thread and throw there; the kernel itself is
//   enqueued with the raw pointers and sizes it needs and runs later, in call order, on the worker.
// - Every CPU Storage remembers the sequence number of the last task that used it (`lastTask`). The JS
//   thread touches a storage's bytes directly only once that task has finished (reads, writes into a
//   storage nothing pending uses, small zero-fills); otherwise its access is a task too, or waits.
// - Memory is returned in stream order: a storage freed while a pending task still uses it is freed by a
//   task after that one, so the allocator never hands out bytes a queued kernel will still touch.
// - A kernel that throws (a bad index found inside it, out of memory) records the error; the compute
//   tasks after it are skipped (their outputs are left as they were) until the error is reported, which
//   happens at the next synchronisation: a read (rejects / throws), `synchronize()`, a cross-device copy.
//   Memory tasks (frees, copies for reads and writes) always run. This is CUDA's asynchronous-error model.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace axn::cpu {

enum class TaskKind { Compute, Memory };

// Enqueues `fn` after all earlier tasks; returns its sequence number (≥ 1). Blocks only when the queue is
// full (kMaxPending tasks), as a CUDA launch does when its queue is: a caller that never waits cannot pile
// up unbounded work. `op` names the task in a recorded error.
uint64_t enqueue(const char* op, TaskKind kind, std::function<void()> fn);

// The sequence number of the last finished task (tasks finish in order).
uint64_t completed();
inline bool done(uint64_t seq) { return completed() >= seq; }

// Blocks the calling thread until task `seq` has finished. Call reportError() after it where the wait is a
// synchronisation point.
void waitFor(uint64_t seq);
void drain();  // waitFor(the last enqueued task)

// Throws (and clears) the first error a task recorded since the last report; no-op when there is none.
void reportError();
// The same, for a task on the worker: returns the message and clears it ("" when there is none).
std::string takeError();

// Returns host::alloc'd memory after every task enqueued so far (host::free as a Memory task).
void freeAfterPending(void* ptr, size_t bytes);

struct Stats {
  uint64_t enqueued = 0;        // tasks ever enqueued
  uint64_t completed = 0;       // tasks finished
  uint64_t skipped = 0;         // compute tasks skipped after an error
  size_t pending = 0;           // enqueued − completed
  size_t deferredFreeBytes = 0;  // frees still waiting for the queue
  uint64_t stagedWrites = 0;    // host writes into a busy storage that went through a staging copy
  uint64_t waits = 0;           // times the JS thread blocked on the queue (readSync, copies, full queue)
};
Stats stats();
void countStagedWrite();

}  // namespace axn::cpu
