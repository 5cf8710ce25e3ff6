// Compiles lib/ to dist/ once before the tests, so the CLI tests run the code under test.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export default function setup(): void {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  let tsc: string;
  try {
    tsc = createRequire(path.join(root, 'package.json')).resolve('typescript/bin/tsc');
  } catch {
    // The GPU machine gets a compiled dist/ and no TypeScript (scripts/gpu-check.sh); elsewhere it is a dev dependency.
    if (existsSync(path.join(root, 'dist', 'cli.js'))) {
      console.warn('test setup: TypeScript is not installed; using the dist/ that is there');
      return;
    }
    throw new Error('test setup: TypeScript is not installed and there is no dist/ (run npm ci)');
  }
  execFileSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.json')], { stdio: 'inherit' });
}
