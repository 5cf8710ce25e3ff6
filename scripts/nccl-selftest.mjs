#!/usr/bin/env node
// node scripts/nccl-selftest.mjs — runs ncclSelfTest() (lib/distributed.ts; native/dist/nccl.cc) from the
// compiled package (dist/, `npm run build:ts`): NCCL loaded as data-parallel training loads it
// (AXN_NCCL_LIB, else libnccl.so.2 on the loader's path, else the folders of AXN_NCCL_DIRS), a communicator
// of one rank on this process's GPU, its collectives checked bit for bit. No MPI needed. The GPU check
// (scripts/gpu-check.sh, call 2) runs it with AXN_NCCL_LIB pointing at the libnccl.so.2 of PyTorch's wheel.
// Prints each check, then one line `nccl-selftest: PASS|FAIL|SKIP: ...`. Exit 0 passed, 1 failed, 3 NCCL
// could not be loaded (SKIP). ALEXNET_CUDA_ADDON picks the addon, as everywhere (the emulated device runs
// it against the emulated NCCL).
import { ncclSelfTest } from '../dist/distributed.js';

/** NCCL_VERSION_CODE as major.minor.patch (X * 10000 + Y * 100 + Z since 2.9, X * 1000 + Y * 100 + Z before). */
const versionText = (v) =>
  v >= 10000 ? `${Math.floor(v / 10000)}.${Math.floor(v / 100) % 100}.${v % 100}` : `${Math.floor(v / 1000)}.${Math.floor(v / 100) % 10}.${v % 100}`;

const t0 = Date.now();
try {
  const r = await ncclSelfTest();
  for (const c of r.checks) console.log(`  ok  ${c}`);
  const version = r.version ? `NCCL ${versionText(r.version)} (${r.version})` : 'NCCL emulated';
  console.log(`nccl-selftest: PASS: ${version}, ${r.library}: ${r.checks.length} checks (1 rank; 1, 7 and 1000003 floats) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
} catch (e) {
  const message = e instanceof Error ? e.message : String(e);
  const skip = /could not load NCCL \(tried: /.test(message); // not found; a library found but unusable is a FAIL
  console.log(`nccl-selftest: ${skip ? 'SKIP' : 'FAIL'}: ${message}`);
  process.exit(skip ? 3 : 1);
}
