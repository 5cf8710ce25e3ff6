#include "cpu_stream.h"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "common.h"
#include "host_alloc.h"

namespace axn::cpu {

namespace {
constexpr size_t kMaxPending = 1024;

struct Task {
  uint64_t seq;
  const char* op;
  TaskKind kind;
  std::function<void()> fn;
};

struct Stream {
  std::mutex mu;
  std::condition_variable wake;  // the worker: a task arrived
  std::condition_variable done;  // waiters: a task finished
  std::deque<Task> q;
  uint64_t enqueued = 0;
  std::atomic<uint64_t> completed{0};
  std::string error;  // first unreported error ("" when none)
  bool started = false;
  Stats st;

  void run() {
    for (;;) {
      Task t;
      bool skip;
      {
        std::unique_lock<std::mutex> lock(mu);
        wake.wait(lock, [&] { return !q.empty(); });
        t = std::move(q.front());
        q.pop_front();
        skip = t.kind == TaskKind::Compute && !error.empty();
      }
      std::string failed;
      if (!skip) {
        try {
          t.fn();
        } catch (const std::exception& e) {
          failed = e.what();
        } catch (...) {
          failed = std::string(t.op) + ": unknown error";
        }
      }
      t.fn = nullptr;  // release captured state before waking waiters
      {
        std::lock_guard<std::mutex> lock(mu);
        if (skip) st.skipped++;
        if (!failed.empty() && error.empty()) error = failed;
        completed.store(t.seq, std::memory_order_release);
      }
      done.notify_all();
    }
  }
};

Stream& stream() {
  // Never destroyed: the worker may still be running while static destructors run at exit.
  static Stream* s = new Stream();
  return *s;
}
}  // namespace

uint64_t enqueue(const char* op, TaskKind kind, std::function<void()> fn) {
  Stream& s = stream();
  uint64_t seq;
  {
    std::unique_lock<std::mutex> lock(s.mu);
    if (!s.started) {
      std::thread([&s] { s.run(); }).detach();
      s.started = true;
    }
    if (s.q.size() >= kMaxPending) {
      s.st.waits++;
      s.done.wait(lock, [&] { return s.q.size() < kMaxPending; });
    }
    seq = ++s.enqueued;
    s.q.push_back(Task{seq, op, kind, std::move(fn)});
  }
  s.wake.notify_one();
  return seq;
}

uint64_t completed() { return stream().completed.load(std::memory_order_acquire); }

void waitFor(uint64_t seq) {
  Stream& s = stream();
  if (s.completed.load(std::memory_order_acquire) >= seq) return;
  std::unique_lock<std::mutex> lock(s.mu);
  s.st.waits++;
  s.done.wait(lock, [&] { return s.completed.load(std::memory_order_acquire) >= seq; });
}

void drain() {
  uint64_t last;
  {
    std::lock_guard<std::mutex> lock(stream().mu);
    last = stream().enqueued;
  }
  waitFor(last);
}

std::string takeError() {
  Stream& s = stream();
  std::lock_guard<std::mutex> lock(s.mu);
  std::string e;
  e.swap(s.error);
  return e;
}

void reportError() {
  std::string e = takeError();
  if (!e.empty()) throw Error("an earlier CPU op failed (reported at the next synchronisation): " + e);
}

namespace {
std::atomic<size_t> gDeferred{0};
std::atomic<uint64_t> gStaged{0};
}  // namespace

void freeAfterPending(void* ptr, size_t bytes) {
  gDeferred += bytes;
  enqueue("free", TaskKind::Memory, [ptr, bytes] {
    host::free(ptr, bytes);
    gDeferred -= bytes;
  });
}

void countStagedWrite() { gStaged++; }

Stats stats() {
  Stream& s = stream();
  std::lock_guard<std::mutex> lock(s.mu);
  Stats r = s.st;
  r.enqueued = s.enqueued;
  r.completed = s.completed.load();
  r.pending = static_cast<size_t>(r.enqueued - r.completed);
  r.deferredFreeBytes = gDeferred.load();
  r.stagedWrites = gStaged.load();
  return r;
}

}  // namespace axn::cpu
