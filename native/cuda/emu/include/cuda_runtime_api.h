// Emulated-device build (AXN_CUDA=EMU) only: the host API subset (native/cuda/emu/runtime.h).
#pragma once
#include "../runtime.h"
