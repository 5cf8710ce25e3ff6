// The `emulator` export of the emulated-device build (AXN_CUDA=EMU) only: thread order, counters, the
// execution-model probes of native/cuda/selftest.cu and the planted missing stream wait, for
// test/emulator.test.ts and test/streams.test.ts.
#if defined(AXN_CUDA_EMU)
#include <napi.h>

#include <string>
#include <vector>

#include "../common.h"
#include "../cuda/context.h"
#include "../cuda/emu/runtime.h"
#include "../cuda/selftest.h"
#include "../runtime.h"

namespace axn {
namespace {

Napi::Value SetOrder(const Napi::CallbackInfo& info) {
  const std::string o = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  if (o != "forward" && o != "reverse" && o != "shuffle")
    throw Napi::TypeError::New(info.Env(), "emulator.setOrder: expected 'forward', 'reverse' or 'shuffle', got '" + o + "'");
  const double seed = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : 1;
  emu::setOrder(o == "forward" ? emu::Order::Forward : o == "reverse" ? emu::Order::Reverse : emu::Order::Shuffle,
                static_cast<uint64_t>(seed));
  return info.Env().Undefined();
}

Napi::Value GetOrder(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("order", emu::orderName(emu::order()));
  o.Set("seed", static_cast<double>(emu::seed()));
  return o;
}

Napi::Value Counters(const Napi::CallbackInfo& info) {
  const emu::Counters c = emu::counters();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("kernelLaunches", static_cast<double>(c.kernelLaunches));
  o.Set("threadsRun", static_cast<double>(c.threadsRun));
  o.Set("cublasCalls", static_cast<double>(c.cublasCalls));
  o.Set("cublasMisaligned", static_cast<double>(c.cublasMisaligned));
  o.Set("lastMisalignedGemm", emu::lastMisalignedGemm());
  o.Set("deviceMallocs", static_cast<double>(c.deviceMallocs));
  o.Set("deviceFrees", static_cast<double>(c.deviceFrees));
  o.Set("pinnedMallocs", static_cast<double>(c.pinnedMallocs));
  o.Set("pinnedFrees", static_cast<double>(c.pinnedFrees));
  o.Set("hostSyncs", static_cast<double>(c.hostSyncs));
  o.Set("copies", static_cast<double>(c.copies));
  o.Set("eventWaits", static_cast<double>(c.eventWaits));
  o.Set("streamChoices", static_cast<double>(c.streamChoices));
  o.Set("deviceBytes", static_cast<double>(c.deviceBytes));
  o.Set("pinnedBytes", static_cast<double>(c.pinnedBytes));
  return o;
}

// The planted defect: cuda::streamWait enqueues nothing while set (a test proves it then fails).
Napi::Value SetDropStreamWaits(const Napi::CallbackInfo& info) {
  // true / false, or 'intoCompute' / 'intoSide' (only the waits whose waiter is that stream)
  int which = info.Length() > 0 && info[0].ToBoolean().Value() ? cuda::kDropAll : cuda::kDropNone;
  if (info.Length() > 0 && info[0].IsString()) {
    const std::string w = info[0].As<Napi::String>().Utf8Value();
    which = w == "intoCompute" ? cuda::kDropIntoCompute : w == "intoSide" ? cuda::kDropIntoSide : w == "all" ? cuda::kDropAll : -1;
    if (which < 0) throw Napi::TypeError::New(info.Env(), "emulator.setDropStreamWaits: expected a boolean, 'all', 'intoCompute' or 'intoSide'");
  }
  cuda::setDropStreamWaits(which);
  return info.Env().Undefined();
}

// Planted defects in the real kernels (cuda::Planted): a name, or null / '' for none.
Napi::Value SetPlanted(const Napi::CallbackInfo& info) {
  const bool none = info.Length() == 0 || info[0].IsNull() || info[0].IsUndefined();
  if (!none && !info[0].IsString())
    throw Napi::TypeError::New(info.Env(), "emulator.setPlanted: expected null, 'lrnShortWindow', 'biasGradDropLastChunk', 'reluWritesNothing' or 'convUnpaddedK'");
  const std::string w = none ? "" : info[0].As<Napi::String>().Utf8Value();
  const int which = w.empty() ? cuda::kPlantNone
                    : w == "lrnShortWindow" ? cuda::kPlantLrnShortWindow
                    : w == "biasGradDropLastChunk" ? cuda::kPlantBiasGradDropLastChunk
                    : w == "reluWritesNothing"     ? cuda::kPlantReluWritesNothing
                    : w == "convUnpaddedK"         ? cuda::kPlantConvUnpaddedK
                                                   : -1;
  if (which < 0)
    throw Napi::TypeError::New(info.Env(), "emulator.setPlanted: expected null, 'lrnShortWindow', 'biasGradDropLastChunk', 'reluWritesNothing' or 'convUnpaddedK', got '" + w + "'");
  cuda::setPlanted(which);
  return info.Env().Undefined();
}

// Traffic per operation (runtime.h): countTraffic(true | false) starts or stops counting for what is
// enqueued from then on (throws, saying why, where this build cannot count); trafficSupported() says
// whether it can; trafficRecords() returns the completed operations' records and clears them.
Napi::Value CountTraffic(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsBoolean())
    throw Napi::TypeError::New(info.Env(), "emulator.countTraffic: expected true or false");
  std::string why;
  if (!emu::setTrafficCounting(info[0].As<Napi::Boolean>().Value(), &why))
    throw Napi::Error::New(info.Env(), "emulator.countTraffic: " + why);
  return info.Env().Undefined();
}

Napi::Value TrafficSupported(const Napi::CallbackInfo& info) {
  std::string why;
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("supported", emu::trafficSupported(&why));
  o.Set("reason", why);
  o.Set("pageBytes", static_cast<double>(emu::kTrafficPageBytes));
  return o;
}

Napi::Value TrafficRecords(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::vector<emu::TrafficRecord> recs = emu::takeTrafficRecords();
  Napi::Array out = Napi::Array::New(env, recs.size());
  const double page = static_cast<double>(emu::kTrafficPageBytes);
  for (size_t i = 0; i < recs.size(); i++) {
    const emu::TrafficRecord& r = recs[i];
    Napi::Object o = Napi::Object::New(env);
    static const char* kinds[] = {"kernel", "cublas", "copy", "memset"};
    o.Set("kind", kinds[r.kind]);
    o.Set("name", r.name);
    if (r.kind == emu::TrafficRecord::Kernel) {
      o.Set("op", r.op);
      Napi::Array g = Napi::Array::New(env, 3), b = Napi::Array::New(env, 3);
      for (uint32_t j = 0; j < 3; j++) {
        g.Set(j, r.grid[j]);
        b.Set(j, r.block[j]);
      }
      o.Set("grid", g);
      o.Set("block", b);
    }
    if (r.kind == emu::TrafficRecord::Kernel || r.kind == emu::TrafficRecord::Cublas) {
      o.Set("pagesValid", r.pagesValid);
      o.Set("readPages", static_cast<double>(r.readPages));
      o.Set("writePages", static_cast<double>(r.writePages));
      o.Set("readBytes", r.readPages * page);
      o.Set("writeBytes", r.writePages * page);
    }
    if (r.kind == emu::TrafficRecord::Cublas) {
      o.Set("transA", r.ta);
      o.Set("transB", r.tb);
      o.Set("m", r.m);
      o.Set("n", r.n);
      o.Set("k", r.k);
      o.Set("lda", r.lda);
      o.Set("ldb", r.ldb);
      o.Set("ldc", r.ldc);
      o.Set("batch", r.batch);
      o.Set("strideA", static_cast<double>(r.strideA));
      o.Set("strideB", static_cast<double>(r.strideB));
      o.Set("strideC", static_cast<double>(r.strideC));
      o.Set("alpha", r.alpha);
      o.Set("beta", r.beta);
      o.Set("tf32", r.tf32);
      o.Set("bf16", r.bf16);
      o.Set("flops", r.flops);
      o.Set("overlap", r.overlap);
    }
    if (r.kind != emu::TrafficRecord::Kernel) {
      o.Set("argReadBytes", r.argReadBytes);
      o.Set("argWriteBytes", r.argWriteBytes);
    }
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

Napi::Value SelfTest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "emulator.selfTest: expected a probe name");
  std::vector<double> args;
  if (info.Length() > 1 && info[1].IsArray()) {
    Napi::Array a = info[1].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) args.push_back(a.Get(i).ToNumber().DoubleValue());
  }
  const cuda::selftest::Result r = cuda::selftest::run(info[0].As<Napi::String>().Utf8Value(), args);
  Napi::Object o = Napi::Object::New(env);
  Napi::Array values = Napi::Array::New(env, r.values.size());
  for (size_t i = 0; i < r.values.size(); i++) values.Set(static_cast<uint32_t>(i), r.values[i]);
  o.Set("values", values);
  o.Set("error", r.error);
  return o;
}

}  // namespace

Napi::Object EmulatorExports(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("setOrder", Napi::Function::New(env, SetOrder, "setOrder"));
  o.Set("order", Napi::Function::New(env, GetOrder, "order"));
  o.Set("counters", Napi::Function::New(env, Counters, "counters"));
  o.Set("selfTest", Napi::Function::New(env, SelfTest, "selfTest"));
  o.Set("setDropStreamWaits", Napi::Function::New(env, SetDropStreamWaits, "setDropStreamWaits"));
  o.Set("setPlanted", Napi::Function::New(env, SetPlanted, "setPlanted"));
  o.Set("countTraffic", Napi::Function::New(env, CountTraffic, "countTraffic"));
  o.Set("trafficSupported", Napi::Function::New(env, TrafficSupported, "trafficSupported"));
  o.Set("trafficRecords", Napi::Function::New(env, TrafficRecords, "trafficRecords"));
  return o;
}

}  // namespace axn
#endif  // AXN_CUDA_EMU
