// N-API bindings of the communicator (native/dist/; lib/distributed.ts validates first). The `dist`
// object of the addon:
//   support() -> { mpi, reason?, nccl? }
//   init() -> { rank, world, localRank, localWorld, backend }
//   allReduce(storages[], counts[], mean)      enqueued: a CPU-stream task, or NCCL on the comm stream
//   broadcast(storages[], counts[], root)      enqueued, the same
//   allReduceHost(Float64Array, op 0|1|2) -> Promise<Float64Array>   (sum, max, min)
//   allGatherString(string) -> Promise<string[]>
//   barrier() -> Promise<void>
//   abort(code, message)                       never returns
//   finalize() -> Promise<void>; finalizeSync()
//   initialised(), finalized()
//   ncclSelfTest() -> Promise<{ library, version, checks[] }>   a diagnostic; CUDA builds, MPI or not
// Without MPI (AXN_MPI unset) only support(), initialised(), finalized() and ncclSelfTest() answer; the rest
// throw.
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "bind/util.h"
#if defined(AXN_MPI) || defined(AXN_WITH_CUDA)
#include "dist/comm.h"
#endif
#ifdef AXN_WITH_CUDA
#include "cuda/context.h"
#endif

#ifndef AXN_MPI_REASON
#define AXN_MPI_REASON "built without MPI"
#endif
#ifndef AXN_CUDA_REASON
#define AXN_CUDA_REASON "built without CUDA"
#endif

namespace axn::bind {
namespace {

#ifdef AXN_MPI
// The state a host collective's task fills on the CPU stream's worker and the promise reads.
struct HostJob {
  std::vector<double> values;
  std::string str;
  std::vector<std::string> strings;
  std::string error;
};

enum class HostKind { AllReduce, Gather, Barrier };

// Waits (on a libuv thread) for the CPU-stream task that ran the collective, then settles the promise.
class HostWorker : public Napi::AsyncWorker {
 public:
  HostWorker(Napi::Env env, uint64_t seq, std::shared_ptr<HostJob> job, HostKind kind)
      : Napi::AsyncWorker(env, "alexnet-cuda.dist"), deferred_(Napi::Promise::Deferred::New(env)), seq_(seq), job_(std::move(job)),
        kind_(kind) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override { cpu::waitFor(seq_); }
  void OnOK() override {
    Napi::Env env = Env();
    if (!job_->error.empty()) {
      deferred_.Reject(Napi::Error::New(env, job_->error).Value());
      return;
    }
    if (kind_ == HostKind::AllReduce) {
      Napi::Float64Array out = Napi::Float64Array::New(env, job_->values.size());
      std::copy(job_->values.begin(), job_->values.end(), out.Data());
      deferred_.Resolve(out);
    } else if (kind_ == HostKind::Gather) {
      Napi::Array out = Napi::Array::New(env, job_->strings.size());
      for (size_t i = 0; i < job_->strings.size(); i++) out.Set(static_cast<uint32_t>(i), Napi::String::New(env, job_->strings[i]));
      deferred_.Resolve(out);
    } else {
      deferred_.Resolve(env.Undefined());
    }
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  uint64_t seq_;
  std::shared_ptr<HostJob> job_;
  HostKind kind_;
};

template <class Fn>
Napi::Value hostCollective(Napi::Env env, const char* op, std::shared_ptr<HostJob> job, HostKind kind, Fn fn) {
  if (!dist::initialised()) fail(op, "initDistributed() has not been called", __FILE__, __LINE__);
  if (dist::finalized()) fail(op, "finalizeDistributed() was already called", __FILE__, __LINE__);
  // A Memory task: it runs even after an earlier op failed, so that every rank stays in step.
  const uint64_t seq = cpu::enqueue(op, cpu::TaskKind::Memory, [job, fn]() mutable {
    try {
      fn(*job);
    } catch (const std::exception& e) {
      job->error = e.what();
    }
  });
  auto* w = new HostWorker(env, seq, job, kind);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// The storages and element counts of a tensor collective.
struct TensorArgs {
  std::vector<Storage*> storages;
  std::vector<float*> ptrs;
  std::vector<size_t> counts;
};

TensorArgs tensorArgs(const Napi::CallbackInfo& info, const char* op) {
  if (!dist::initialised()) fail(op, "initDistributed() has not been called", __FILE__, __LINE__);
  if (dist::finalized()) fail(op, "finalizeDistributed() was already called", __FILE__, __LINE__);
  if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsArray()) fail(op, "expected (storages[], counts[], ...)", __FILE__, __LINE__);
  Napi::Array st = info[0].As<Napi::Array>(), ct = info[1].As<Napi::Array>();
  if (st.Length() != ct.Length()) fail(op, "storages and counts differ in length", __FILE__, __LINE__);
  TensorArgs a;
  for (uint32_t i = 0; i < st.Length(); i++) {
    const std::string what = "tensors[" + std::to_string(i) + "]";
    Storage* s = Storage::From(st.Get(i), op, what.c_str());
    Napi::Value c = ct.Get(i);
    if (!c.IsNumber() || c.As<Napi::Number>().DoubleValue() < 0) fail(op, "bad count for " + what, __FILE__, __LINE__);
    const size_t n = static_cast<size_t>(c.As<Napi::Number>().Int64Value());
    if (s->bytes() < n * sizeof(float))
      fail(op, what + " holds " + std::to_string(s->bytes()) + " bytes, needs " + std::to_string(n * sizeof(float)), __FILE__, __LINE__);
    argRoles().written.push_back(s);
    a.storages.push_back(s);
    a.ptrs.push_back(static_cast<float*>(s->data(op)));
    a.counts.push_back(n);
  }
  return a;
}

// Enqueues a tensor collective: on CUDA (NCCL, comm stream) or as a CPU-stream Memory task (it runs even
// after an earlier op failed, so that every rank makes the same MPI calls), marking the storages.
template <class CpuFn>
void enqueueTensorCollective(const char* op, TensorArgs& a, CpuFn cpuFn, bool mean, int root) {
  const bool cuda = onCuda(op, a.storages);
#ifdef AXN_WITH_CUDA
  if (cuda) {
    opStorages().clear();
    if (root < 0) dist::allReduceCuda(a.ptrs, a.counts, mean);
    else dist::broadcastCuda(a.ptrs, a.counts, root);
    return;
  }
#endif
  (void)cuda;
  (void)mean;
  (void)root;
  const uint64_t seq = cpu::enqueue(op, cpu::TaskKind::Memory, cpuFn);
  for (const OpStorage& o : opStorages()) {
    o.s->usedBy(seq);
    o.s->writtenBy(seq);
  }
  opStorages().clear();
}
#endif

Napi::Value Support(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
#ifdef AXN_MPI
  o.Set("mpi", true);
#else
  o.Set("mpi", false);
  o.Set("reason", AXN_MPI_REASON);
#endif
#if defined(AXN_WITH_CUDA) && defined(AXN_MPI)
  std::string why;
  if (dist::ncclAvailable(&why)) o.Set("nccl", true);
  else o.Set("nccl", why);
#endif
  return o;
}

Napi::Value Init(const Napi::CallbackInfo& info) {
#ifdef AXN_MPI
  const dist::Info d = dist::init();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("rank", d.rank);
  o.Set("world", d.world);
  o.Set("localRank", d.localRank);
  o.Set("localWorld", d.localWorld);
  o.Set("backend", d.nccl ? "nccl" : "mpi");
  return o;
#else
  fail("initDistributed", "this addon was built without MPI: " AXN_MPI_REASON, __FILE__, __LINE__);
#endif
}

#ifdef AXN_MPI
Napi::Value AllReduce(const Napi::CallbackInfo& info) {
  const char* op = "allReduce";
  TensorArgs a = tensorArgs(info, op);
  const bool mean = flag(info, 2);
  std::vector<float*> ptrs = a.ptrs;
  std::vector<size_t> counts = a.counts;
  enqueueTensorCollective(op, a, [ptrs, counts, mean] { dist::allReduceCpu(ptrs, counts, mean); }, mean, -1);
  return info.Env().Undefined();
}

Napi::Value Broadcast(const Napi::CallbackInfo& info) {
  const char* op = "broadcast";
  TensorArgs a = tensorArgs(info, op);
  const int root = i32(info, 2, op, "root");
  AXN_CHECK(root >= 0, op, "root must be >= 0");
  std::vector<float*> ptrs = a.ptrs;
  std::vector<size_t> counts = a.counts;
  enqueueTensorCollective(op, a, [ptrs, counts, root] { dist::broadcastCpu(ptrs, counts, root); }, false, root);
  return info.Env().Undefined();
}

Napi::Value AllReduceHost(const Napi::CallbackInfo& info) {
  const char* op = "allReduceHost";
  if (info.Length() < 2 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    fail(op, "expected (Float64Array, op)", __FILE__, __LINE__);
  Napi::Float64Array v = info[0].As<Napi::Float64Array>();
  const int code = i32(info, 1, op, "op");
  AXN_CHECK(code >= 0 && code <= 2, op, "op must be 0 (sum), 1 (max) or 2 (min)");
  auto job = std::make_shared<HostJob>();
  job->values.assign(v.Data(), v.Data() + v.ElementLength());  // copied: JS may change its array meanwhile
  const dist::HostOp hop = code == 0 ? dist::HostOp::Sum : code == 1 ? dist::HostOp::Max : dist::HostOp::Min;
  return hostCollective(info.Env(), op, job, HostKind::AllReduce,
                        [hop](HostJob& j) { dist::allReduceHost(j.values.data(), j.values.size(), hop); });
}

Napi::Value AllGatherString(const Napi::CallbackInfo& info) {
  const char* op = "allGatherString";
  if (info.Length() < 1 || !info[0].IsString()) fail(op, "expected a string", __FILE__, __LINE__);
  auto job = std::make_shared<HostJob>();
  job->str = info[0].As<Napi::String>().Utf8Value();
  return hostCollective(info.Env(), op, job, HostKind::Gather, [](HostJob& j) { j.strings = dist::allGatherString(j.str); });
}

Napi::Value Barrier(const Napi::CallbackInfo& info) {
  return hostCollective(info.Env(), "barrier", std::make_shared<HostJob>(), HostKind::Barrier, [](HostJob&) { dist::barrier(); });
}

class FinalizeWorker : public Napi::AsyncWorker {
 public:
  explicit FinalizeWorker(Napi::Env env)
      : Napi::AsyncWorker(env, "alexnet-cuda.dist"), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override {
    try {
      dist::finalize();
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override { deferred_.Resolve(Env().Undefined()); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
};

Napi::Value Finalize(const Napi::CallbackInfo& info) {
  auto* w = new FinalizeWorker(info.Env());
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

Napi::Value FinalizeSync(const Napi::CallbackInfo& info) {
  dist::finalize();
  return info.Env().Undefined();
}
#endif

Napi::Value Abort(const Napi::CallbackInfo& info) {
  const int code = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 1;
  const std::string msg = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
#ifdef AXN_MPI
  dist::abortJob(code, msg);
#else
  std::fprintf(stderr, "%s\n", msg.c_str());
  std::fflush(stderr);
  std::_Exit(code);
#endif
}

Napi::Value Initialised(const Napi::CallbackInfo& info) {
#ifdef AXN_MPI
  return Napi::Boolean::New(info.Env(), dist::initialised());
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

Napi::Value Finalized(const Napi::CallbackInfo& info) {
#ifdef AXN_MPI
  return Napi::Boolean::New(info.Env(), dist::finalized());
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

#ifdef AXN_WITH_CUDA
// Runs dist::ncclSelfTest on a libuv thread (NCCL's init and the host waits take a second or more).
class NcclSelfTestWorker : public Napi::AsyncWorker {
 public:
  explicit NcclSelfTestWorker(Napi::Env env)
      : Napi::AsyncWorker(env, "alexnet-cuda.ncclSelfTest"), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override {
    try {
      result_ = dist::ncclSelfTest();
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("library", result_.library);
    o.Set("version", result_.version);
    Napi::Array checks = Napi::Array::New(env, result_.checks.size());
    for (size_t i = 0; i < result_.checks.size(); i++) checks.Set(static_cast<uint32_t>(i), Napi::String::New(env, result_.checks[i]));
    o.Set("checks", checks);
    deferred_.Resolve(o);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  dist::NcclSelfTestResult result_;
};
#endif

Napi::Value NcclSelfTest(const Napi::CallbackInfo& info) {
  const char* op = "ncclSelfTest";
#ifdef AXN_WITH_CUDA
  std::string why;
  if (cuda::deviceCount(&why) == 0) fail(op, "no usable CUDA device: " + why, __FILE__, __LINE__);
  cuda::stream();  // the context is created here, on the JS thread, not on the worker
  auto* w = new NcclSelfTestWorker(info.Env());
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
#else
  fail(op, "NCCL reduces CUDA tensors, and this addon was built without the CUDA backend: " AXN_CUDA_REASON, __FILE__,
       __LINE__);
#endif
}

}  // namespace
}  // namespace axn::bind

namespace axn {
Napi::Object DistExports(Napi::Env env) {
  using namespace axn::bind;
  Napi::Object o = Napi::Object::New(env);
  o.Set("support", Napi::Function::New(env, Support, "support"));
  o.Set("init", Napi::Function::New(env, Init, "init"));
  o.Set("abort", Napi::Function::New(env, Abort, "abort"));
  o.Set("initialised", Napi::Function::New(env, Initialised, "initialised"));
  o.Set("finalized", Napi::Function::New(env, Finalized, "finalized"));
  o.Set("ncclSelfTest", Napi::Function::New(env, NcclSelfTest, "ncclSelfTest"));
#ifdef AXN_MPI
  o.Set("allReduce", Napi::Function::New(env, AllReduce, "allReduce"));
  o.Set("broadcast", Napi::Function::New(env, Broadcast, "broadcast"));
  o.Set("allReduceHost", Napi::Function::New(env, AllReduceHost, "allReduceHost"));
  o.Set("allGatherString", Napi::Function::New(env, AllGatherString, "allGatherString"));
  o.Set("barrier", Napi::Function::New(env, Barrier, "barrier"));
  o.Set("finalize", Napi::Function::New(env, Finalize, "finalize"));
  o.Set("finalizeSync", Napi::Function::New(env, FinalizeSync, "finalizeSync"));
#endif
  return o;
}
}  // namespace axn
