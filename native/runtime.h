// Backend-wide functions exported to JS: what was built, devices, memory stats, synchronisation.
#pragma once
#include <napi.h>

namespace axn {
Napi::Value BackendInfo(const Napi::CallbackInfo& info);   // { cuda, cudaReason, blas, openmp, cudaRuntime, archs }
Napi::Value CudaDevices(const Napi::CallbackInfo& info);   // [{ index, name, totalBytes, computeCapability, smCount }]
Napi::Value NativeMemoryStats(const Napi::CallbackInfo& info);
Napi::Value CudaSynchronize(const Napi::CallbackInfo& info);
Napi::Value CudaEmptyCache(const Napi::CallbackInfo& info);
Napi::Value ResetPeakMemory(const Napi::CallbackInfo& info);
Napi::Value SetPoison(const Napi::CallbackInfo& info);  // (on: boolean) test aid, see storage.h
Napi::Object DistExports(Napi::Env env);  // native/bind/dist.cc: data-parallel communication (native/dist/)
#ifdef AXN_CUDA_EMU
Napi::Object EmulatorExports(Napi::Env env);  // native/bind/emulator.cc: the emulated device's controls
#endif
}  // namespace axn
