/** alexnet-cuda: AlexNet for Node.js on hand-written CUDA kernels, with a CPU backend beside each. */
export { Tensor, cudaAvailable, devices, backendInfo, memoryStats, resetPeakMemoryStats, synchronize, emptyCache, parseDevice, setPoison, bf16Bits, bf16Value, roundBf16 } from './tensor.js';
export type { DType, Device, MemoryStats } from './tensor.js';
export { DisposedError } from './errors.js';
export { readSafetensors, writeSafetensors, parseSafetensors, serializeSafetensors } from './io/safetensors.js';
export { readPth, parsePth, type PthTensor } from './io/pth.js';
export { readWeights, type WeightsFormat } from './io/weights.js';
export { lockFolder, holdUntilExit, LOCK_FILE, type FolderLock } from './io/lock.js';
export { proveWritableFolder, checkRegularFile } from './io/files.js';
export * as ops from './ops/index.js';
export { setDefaultPrecision, getDefaultPrecision, type Precision } from './ops/util.js';
export * as nn from './nn/index.js';
export { AlexNet, createAlexNet, alexnetParameterShapes, type AlexNetOptions, type AlexNetConfig, type Arch, type StepResult } from './models/alexnet.js';
export { modelSpecFromWeights, MAX_INPUT_SIDE, type WeightsModelSpec } from './models/from-weights.js';
export { SGD, type SGDOptions } from './optim/sgd.js';
export { StepLR, ReduceLROnPlateau, WarmupCosineLR, type LRSchedule } from './optim/schedule.js';
export { train, type TrainOptions, type TrainResult, type EpochRecord, type ProgressInfo } from './train.js';
export { evaluate, type EvalResult } from './eval.js';
export { GradientBuckets, DEFAULT_BUCKET_BYTES, type DistributedOptions } from './data-parallel.js';
export type { DataParallelHooks } from './models/alexnet.js';
export { saveCheckpoint, loadCheckpoint, readCheckpointMeta, type CheckpointMeta } from './checkpoint.js';
export * as data from './data/index.js';
export {
  distributedSupport, launchedByMpi, initDistributed, distributedInfo, allReduce, broadcast, allReduceHost, allGatherString, barrier,
  abortDistributed, finalizeDistributed, mpirunArgs, ncclSelfTest, type DistInfo, type DistributedSupport, type NcclSelfTestReport,
} from './distributed.js';
export { trainingCurvePng, filterGridPng } from './viz.js';
