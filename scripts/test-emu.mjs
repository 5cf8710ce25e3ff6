#!/usr/bin/env node
// npm run test:emu [-- <vitest args, e.g. test files>]
//
// Builds the emulated CUDA device (AXN_CUDA=EMU, native/cuda/emu/) with AddressSanitizer and UBSan into
// build-emu/, then runs the test suite against it with AXN_REQUIRE_GPU=1 (no CUDA test may skip), twice:
// once with the threads of every block shuffled (seed AXN_EMU_SEED, default 1) and once in reverse order,
// so that a kernel whose result depends on its threads' order fails one of them. The first pass leaves out
// a few end-to-end CPU runs that sanitize nothing the rest does not (PASS1_SKIP_* below).
//
// The second pass runs only the CUDA tests (the files that touch the device, and in them the describe
// blocks about CUDA); the CPU tests do not depend on the order. AXN_EMU_PASSES=1 runs the first pass
// alone; AXN_EMU_SANITIZE=0 builds without sanitizers.
// Needs Boost.Context (Debian: libboost-context-dev) and g++'s libasan/libubsan.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const log = (m) => console.error(`test:emu: ${m}`);
const sanitize = process.env.AXN_EMU_SANITIZE === '0' ? '' : 'address,undefined';
const buildDir = process.env.AXN_EMU_BUILD_DIR || 'build-emu';
const addon = path.resolve(root, buildDir, 'Release', 'alexnet_cuda.node');

function run(cmd, args, env) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env });
  if (r.error) log(`could not start ${cmd}: ${r.error.message}`);
  return r.error ? 1 : (r.status ?? 1);
}

// 1. The emulated addon (incremental: cmake-js reuses build-emu/).
log(`building the emulated CUDA device into ${buildDir}/ (sanitizers: ${sanitize || 'none'})`);
const buildEnv = { ...process.env, AXN_CUDA: 'EMU', AXN_BUILD_DIR: buildDir, AXN_SANITIZE: sanitize };
if (run(process.execPath, [path.join(root, 'scripts', 'install.mjs')], buildEnv) !== 0) process.exit(1);

// 2. The sanitizer runtime must be the first library of the process: node itself is not instrumented.
const env = { ...process.env, ALEXNET_CUDA_ADDON: addon, AXN_REQUIRE_GPU: '1', AXN_EMU_REQUIRE_ASAN: sanitize ? '1' : '0' };
if (sanitize) {
  const lib = spawnSync(process.env.CXX || 'g++', ['-print-file-name=libasan.so'], { encoding: 'utf8' }).stdout.trim();
  if (!lib || !path.isAbsolute(lib)) {
    log(`could not find libasan.so (${process.env.CXX || 'g++'} -print-file-name=libasan.so)`);
    process.exit(1);
  }
  env.LD_PRELOAD = [lib, process.env.LD_PRELOAD].filter(Boolean).join(':');
  // Node and V8 allocate for the life of the process: leak checking would report them, not us.
  env.ASAN_OPTIONS = ['detect_leaks=0', 'abort_on_error=1', 'detect_odr_violation=0', process.env.ASAN_OPTIONS].filter(Boolean).join(':');
  env.UBSAN_OPTIONS = ['print_stacktrace=1', 'halt_on_error=1', process.env.UBSAN_OPTIONS].filter(Boolean).join(':');
}

// 3. Which files touch the CUDA device (for the second pass): those that gate on the device.
function cudaFiles() {
  const out = [];
  const walk = (d) => {
    for (const f of readdirSync(d)) {
      const p = path.join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (f.endsWith('.test.ts') && /\b(noCuda|emulated|hasCuda)\b/.test(readFileSync(p, 'utf8'))) out.push(path.relative(root, p));
    }
  };
  walk(path.join(root, 'test'));
  return out.sort();
}

const userArgs = process.argv.slice(2);
const vitest = path.join(root, 'node_modules', 'vitest', 'vitest.mjs');
const seed = process.env.AXN_EMU_SEED || '1';
// The names of the CUDA describe blocks ("relu on CUDA matches the CPU", "AlexNet against PyTorch on the
// GPU", "cuBLAS GEMM ...", "CUDA memory", "the emulated CUDA device").
const CUDA_TESTS = 'on CUDA|on the GPU|cuBLAS|CUDA memory|the emulated CUDA device';
// Pass 1 leaves out what sanitizes nothing the rest of the suite does not: the end-to-end files that drive
// the CLI in child processes over .pth weights and image folders (their native code — the CPU kernels, the
// decoders, the packing — is the ops' and the data path's, which their own files run here), and the
// full-size AlexNet-against-PyTorch runs on the CPU (the same kernels as the op files, at 227 px; their
// CUDA counterparts stay). `npm test` runs all of them unsanitized. A user's file list overrides this.
const PASS1_SKIP_FILES = ['test/pth.test.ts', 'test/cli.test.ts'];
const PASS1_SKIP_TESTS = 'AlexNet against PyTorch on the CPU';
const pass1Args = userArgs.length ? userArgs : [...PASS1_SKIP_FILES.flatMap((f) => ['--exclude', f]), '-t', `^(?!${PASS1_SKIP_TESTS})`];
const passes = [
  { order: 'shuffle', seed, args: pass1Args },
  { order: 'reverse', seed: '0', args: userArgs.length ? userArgs : [...cudaFiles(), '-t', CUDA_TESTS] },
].slice(0, process.env.AXN_EMU_PASSES === '1' ? 1 : 2);

let failed = 0;
for (const p of passes) {
  log(`pass: thread order ${p.order}${p.order === 'shuffle' ? ` (seed ${p.seed})` : ''}, ${p.args.length ? p.args.join(' ') : 'the whole suite'}`);
  const t0 = Date.now();
  const code = run(process.execPath, [vitest, 'run', ...p.args], { ...env, AXN_EMU_ORDER: p.order, AXN_EMU_SEED: p.seed });
  log(`pass ${p.order}: ${code === 0 ? 'passed' : 'FAILED'} in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  if (code !== 0) failed++;
}
process.exit(failed ? 1 : 0);
