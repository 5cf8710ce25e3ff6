/** Runs a command under a memory limit (`ulimit -v`), for the tests that prove untrusted input gets a clear
 * error rather than the process killed. */
import { spawnSync } from 'node:child_process';

/** Address-space limit: far below the gigabytes a lying file or a pixel bomb would take, well above what
 * predicting with a small model takes (the tests check that the honest case works under it). */
export const LIMIT_KIB = 3 * 1024 * 1024;

/** Runs `node args…` in `cwd` under `ulimit -v`; status null and a signal mean it was killed. With the
 * package's own addon: a sanitizer build (npm run test:emu preloads ASan) reserves terabytes of address
 * space for its shadow memory and cannot start under any such limit. */
export function underLimit(args: string[], cwd: string, timeout = 120_000) {
  const env = { ...process.env };
  for (const k of ['LD_PRELOAD', 'ASAN_OPTIONS', 'UBSAN_OPTIONS', 'ALEXNET_CUDA_ADDON']) delete env[k];
  const r = spawnSync('bash', ['-c', `ulimit -v ${LIMIT_KIB} && exec "$0" "$@"`, process.execPath, ...args], { encoding: 'utf8', timeout, cwd, env });
  return { code: r.status, signal: r.signal, out: r.stdout, err: r.stderr };
}
