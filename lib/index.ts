export { Tensor, cudaAvailable, devices, backendInfo, memoryStats, synchronize, emptyCache, parseDevice } from './tensor.js';
export type { DType, Device, MemoryStats } from './tensor.js';
export { DisposedError } from './errors.js';
