export { Tensor, cudaAvailable, devices, backendInfo, memoryStats, synchronize, emptyCache, parseDevice, setPoison } from './tensor.js';
export { readSafetensors, writeSafetensors, parseSafetensors, serializeSafetensors } from './io/safetensors.js';
export type { DType, Device, MemoryStats } from './tensor.js';
export { DisposedError } from './errors.js';
