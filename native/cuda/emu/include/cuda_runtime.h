// Emulated-device build (AXN_CUDA=EMU) only: stands in for the CUDA toolkit's header, which is not on the
// include path of that build. Host API plus the device-side model of the .cu sources.
#pragma once
#include "../runtime.h"
#include "../device.h"
