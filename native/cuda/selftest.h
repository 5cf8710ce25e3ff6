// Kernels with planted defects, and probes of the execution model, for the tests of the emulated CUDA
// device (test/emulator.test.ts). Compiled only into the emulator build (AXN_CUDA_SELFTEST); written
// in plain CUDA, so they mean the same on a GPU.
#pragma once
#include <string>
#include <vector>

namespace axn::cuda::selftest {

struct Result {
  std::vector<double> values;  // what the probe computed
  std::string error;           // the CUDA error a probe provoked ("" when none)
};

// Runs one probe by name (see selftest.cu for the list); `args` are its numeric arguments.
Result run(const std::string& name, const std::vector<double>& args);

}  // namespace axn::cuda::selftest
