/** Runs the PyTorch reference scripts (Debian's python3-torch). In CI (CI=true) PyTorch must be there:
 * tests that need it fail instead of skipping. */
import { spawnSync } from 'node:child_process';

export const PYTHON = process.env.AXN_PYTHON ?? '/usr/bin/python3';
/** Python gets the environment without the sanitizer runtime that `npm run test:emu` preloads into node. */
const pyEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'LD_PRELOAD'));

function probe(): boolean {
  const r = spawnSync(PYTHON, ['-c', 'import torch, torchvision'], { encoding: 'utf8', env: pyEnv });
  return r.status === 0;
}
export const hasTorch = probe();
if (!hasTorch && process.env.CI) throw new Error(`CI: PyTorch is required for the reference tests but \`${PYTHON} -c "import torch, torchvision"\` failed`);

export function runPython(args: string[], timeoutMs = 300_000): string {
  const r = spawnSync(PYTHON, args, { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 << 20, env: pyEnv });
  if (r.status !== 0) throw new Error(`${PYTHON} ${args.join(' ')} failed (${r.status ?? r.signal}):\n${r.stderr}`);
  return r.stdout;
}
