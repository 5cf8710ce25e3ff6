#!/usr/bin/env node
// npm run check:cuda — the real CUDA build, as a user's `npm install` runs it (scripts/install.mjs →
// cmake-js → CMakeLists.txt with AXN_CUDA=ON: nvcc with the build's own flags), on a machine that may
// have nvcc and libcudart but no cuBLAS and no GPU (the development and CI machines). Where cuBLAS is
// missing the addon links the stub cuBLAS (AXN_CUBLAS_STUB=ON, native/cuda/cublas_stub.cc), built into
// build-cuda/ and never shipped. Then the addon must load and say: CUDA backend built, and either a
// usable device or the reason there is none. Exit 1 on any failure.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const buildDir = process.env.AXN_CHECK_CUDA_DIR || 'build-cuda';
const addon = path.resolve(root, buildDir, 'Release', 'alexnet_cuda.node');
const fail = (m) => {
  console.error(`check:cuda: ${m}`);
  process.exit(1);
};

const env = { ...process.env, AXN_CUDA: 'ON', AXN_CUBLAS_STUB: process.env.AXN_CUBLAS_STUB ?? 'ON', AXN_BUILD_DIR: buildDir };
const b = spawnSync(process.execPath, [path.join(root, 'scripts', 'install.mjs')], { cwd: root, stdio: 'inherit', env });
if (b.status !== 0) fail('the CUDA build failed (see above)');

const probe = `
  const addon = require(${JSON.stringify(addon)});
  const i = addon.backendInfo();
  console.log(JSON.stringify(i));`;
const r = spawnSync(process.execPath, ['-e', probe], { cwd: root, encoding: 'utf8' });
if (r.status !== 0) fail(`the CUDA addon does not load: ${r.stderr}`);
const info = JSON.parse(r.stdout);
if (!info.cudaBuilt) fail(`the addon was built without the CUDA backend: ${info.cudaReason}`);
if (info.emulated) fail('the addon is the emulated device, not the CUDA build');
if (!info.cuda && !info.cudaReason) fail('no CUDA device, and no reason given');
console.log(`check:cuda: CUDA addon built by cmake-js (${buildDir}/Release/alexnet_cuda.node): sm_${info.cudaArchs}, ${info.cublas}, ` +
  `runtime ${info.cudaRuntime}; ${info.cuda ? 'a CUDA device is usable' : `no device: ${info.cudaReason}`}`);
