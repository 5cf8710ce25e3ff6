// The addon's export list, and nothing else (sharp's src/sharp.cc).
#include <napi.h>

#include "cpu_stream.h"
#include "data/loader.h"
#include "ops_binding.h"
#include "runtime.h"
#include "storage.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // Before the environment goes (exit, a worker thread ending), let the CPU stream finish its tasks: they
  // use memory and a thread team that must not vanish under them.
  napi_add_env_cleanup_hook(env, [](void*) { axn::cpu::drain(); }, nullptr);
  exports.Set("Storage", axn::Storage::Init(env));
  exports.Set("backendInfo", Napi::Function::New(env, axn::BackendInfo, "backendInfo"));
  exports.Set("cudaDevices", Napi::Function::New(env, axn::CudaDevices, "cudaDevices"));
  exports.Set("memoryStats", Napi::Function::New(env, axn::NativeMemoryStats, "memoryStats"));
  exports.Set("cudaSynchronize", Napi::Function::New(env, axn::CudaSynchronize, "cudaSynchronize"));
  exports.Set("cudaEmptyCache", Napi::Function::New(env, axn::CudaEmptyCache, "cudaEmptyCache"));
  exports.Set("resetPeakMemory", Napi::Function::New(env, axn::ResetPeakMemory, "resetPeakMemory"));
  exports.Set("setPoison", Napi::Function::New(env, axn::SetPoison, "setPoison"));
  exports.Set("ops", axn::OpsExports(env));
  exports.Set("data", axn::data::DataExports(env));
  exports.Set("dist", axn::DistExports(env));
#ifdef AXN_CUDA_EMU
  exports.Set("emulator", axn::EmulatorExports(env));
#endif
  return exports;
}

NODE_API_MODULE(alexnet_cuda, Init)
