/** Typed functional ops: validated in TypeScript, run by the addon on the tensors' device. */
export * from './conv.js';
export * from './linear.js';
export * from './pool.js';
export * from './lrn.js';
export * from './activation.js';
export * from './dropout.js';
export * from './loss.js';
export * from './optim.js';
export * from './elementwise.js';
export * from './resize.js';
export * from './augment.js';
