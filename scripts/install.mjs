#!/usr/bin/env node
// Builds the native addon at install time (npm's "install" script), offline:
//  - with cmake on PATH: cmake-js (headers from the node-api-headers package, no download), which builds
//    the CUDA backend when nvcc and cuBLAS are found and a CPU-only addon otherwise;
//  - without cmake: node-gyp and binding.gyp, the CPU-only addon.
// AXN_BUILD=cmake|gyp forces one path (a failure is then final). AXN_SKIP_BUILD=1 skips (the addon
// then fails to load with a message saying so). AXN_CUDA=ON or EMU means cmake-js or nothing: a CPU-only
// fallback would hide the failure the caller asked to see.
// The output folder is build/ (what lib/native.ts loads), or AXN_BUILD_DIR; AXN_CUDA=EMU (the emulated
// CUDA device, for tests) builds into build-emu/ unless AXN_BUILD_DIR says otherwise, so that it never
// replaces the addon a user gets.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(root, 'package.json'));
const log = (msg) => console.error(`alexnet-cuda: ${msg}`);

if (process.env.AXN_SKIP_BUILD === '1') {
  log('AXN_SKIP_BUILD=1: not building the native addon');
  process.exit(0);
}

function onPath(cmd) {
  const r = spawnSync(cmd, ['--version'], { stdio: 'ignore' });
  return !r.error && r.status === 0;
}

function run(cmd, args) {
  log(`$ ${[cmd, ...args].join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: process.env });
  if (r.error) log(`could not start ${cmd}: ${r.error.message}`);
  return !r.error && r.status === 0;
}

function cmakeJs() {
  const cli = require.resolve('cmake-js/bin/cmake-js');
  // cmake-js reads "binary.napi_versions" from package.json and uses node-api-headers: no download.
  const parallel = String(Math.max(1, Math.min(8, require("node:os").availableParallelism())));
  return run(process.execPath, [cli, 'compile', '--parallel', parallel, '--out', outDir]);
}

// node-gyp needs Node's headers. Official Node builds and distro packages ship them beside the binary
// (<prefix>/include/node); point node-gyp there so it never downloads them.
function localNodeDir() {
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  return existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined;
}

let usedGyp = false;
function nodeGyp() {
  usedGyp = true;
  const cli = require.resolve('node-gyp/bin/node-gyp.js');
  const nodedir = localNodeDir();
  if (!nodedir) log('warning: no local Node.js headers found (<prefix>/include/node); node-gyp may try to download them');
  return run(process.execPath, [cli, 'rebuild', '--jobs', 'max', ...(nodedir ? [`--nodedir=${nodedir}`] : [])]);
}


const forced = process.env.AXN_BUILD;
const cudaMode = (process.env.AXN_CUDA ?? '').toUpperCase();
const outDir = process.env.AXN_BUILD_DIR || (cudaMode === 'EMU' ? 'build-emu' : 'build');
let ok;
if (cudaMode === 'ON' || cudaMode === 'EMU') {
  if (forced === 'gyp') {
    log(`AXN_CUDA=${cudaMode} needs the cmake-js build; AXN_BUILD=gyp builds CPU-only addons`);
    process.exit(1);
  }
  ok = cmakeJs();
} else if (forced === 'gyp') {
  ok = nodeGyp();
} else if (forced === 'cmake') {
  ok = cmakeJs();
} else if (onPath(process.env.CMAKE ?? 'cmake')) {
  ok = cmakeJs();
  if (!ok) {
    log('cmake-js build failed (see above); trying the CPU-only node-gyp build instead');
    rmSync(path.join(root, outDir), { recursive: true, force: true });
    ok = outDir === 'build' && nodeGyp();
  }
} else {
  log('cmake not found on PATH: building the CPU-only addon with node-gyp (install cmake and the CUDA toolkit for the CUDA backend)');
  ok = nodeGyp();
}

const built = path.join(usedGyp ? 'build' : outDir, 'Release', 'alexnet_cuda.node');  // node-gyp writes build/
if (!ok || !existsSync(path.resolve(root, built))) {
  log('the native addon could not be built; see the messages above');
  process.exit(1);
}
log(`native addon built: ${built}`);
