// The benchmarks check what they time (bench/run.mjs, bench/check.mjs): a few rows run against PyTorch's
// outputs on the same inputs report their errors and tolerances and PASS; with one op broken on purpose
// (test/fixtures/bench/planted-sign.mjs: linear's dx with the wrong sign) exactly the rows that compute it
// FAIL, their times are withheld, and the run exits non-zero.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { hasTorch, PYTHON } from './helpers/torch.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tmp = mkdtempSync(path.join(tmpdir(), 'axn-bench-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Cmp {
  pass: boolean;
  worst: { name: string; rel: number; maxAbs: number; tol: number };
  outputs: { name: string; rel: number; tol: number; pass: boolean }[];
}
interface Row {
  key: string;
  ms?: number;
  msOfWrongOutput?: number;
  verdict: string;
  check?: { pytorch?: Cmp; cpu?: Cmp };
}

function bench(name: string, extraEnv: Record<string, string> = {}) {
  const json = path.join(tmp, `${name}.json`);
  // the CPU build of the addon, without a sanitizer runtime (npm run test:emu preloads one)
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'LD_PRELOAD' && k !== 'ALEXNET_CUDA_ADDON'));
  const r = spawnSync(
    process.execPath,
    ['bench/run.mjs', '--device', 'cpu', '--batch', '2', '--time', '1', '--filter', '^(fc8|relu1|xent)', '--python', PYTHON, '--json', json],
    { cwd: root, encoding: 'utf8', timeout: 300_000, env: { ...env, ...extraEnv } },
  );
  let rows: Row[] = [];
  try {
    rows = JSON.parse(readFileSync(json, 'utf8')).results;
  } catch {
    /* reported by the status check */
  }
  return { code: r.status, out: r.stdout, err: r.stderr, rows, byKey: new Map(rows.map((x) => [x.key, x])) };
}

describe.skipIf(!hasTorch)('benchmarks check their outputs against PyTorch', () => {
  it('every row reports its error vs PyTorch, its tolerance and PASS', () => {
    const r = bench('good');
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.rows.map((x) => x.key)).toEqual(['fc8.fwd.fp32', 'fc8.bwd_dw.fp32', 'fc8.bwd_dwdx.fp32', 'fc8.bwd_all.fp32', 'relu1.fwd', 'relu1.bwd', 'xent.fwd', 'xent.bwd']);
    for (const row of r.rows) {
      expect(row.verdict, row.key).toBe('PASS');
      expect(row.ms, row.key).toBeGreaterThan(0);
      const c = row.check!.pytorch!;
      expect(c.pass).toBe(true);
      for (const o of c.outputs) {
        expect(Number.isFinite(o.rel) && o.rel <= o.tol, `${row.key} ${o.name}: ${o.rel} vs ${o.tol}`).toBe(true);
      }
    }
    // reductions carry a tolerance from their length; ReLU is exact
    expect(r.byKey.get('fc8.fwd.fp32')!.check!.pytorch!.worst.tol).toBeGreaterThan(0);
    expect(r.byKey.get('relu1.fwd')!.check!.pytorch!.worst.tol).toBe(0);
    const bwd = r.byKey.get('fc8.bwd_all.fp32')!.check!.pytorch!;
    expect(bwd.outputs.map((o) => o.name).sort()).toEqual(['db', 'dw', 'dx']);
    expect(r.out).toMatch(/\| op \| shape \| ours ms \| rate \| error vs PyTorch \(rel L2 \/ max abs\) \| tolerance \| output \|/);
    expect(r.out).toMatch(/outputs: 8 PASS$/m);
  });

  it('a planted wrong sign in one gradient makes exactly the rows that compute it FAIL, and the run exit non-zero', () => {
    const r = bench('planted', { ALEXNET_BENCH_PACKAGE: path.join(root, 'test', 'fixtures', 'bench', 'planted-sign.mjs') });
    expect(r.code, r.out + r.err).toBe(1);
    const bad = ['fc8.bwd_dwdx.fp32', 'fc8.bwd_all.fp32'];
    for (const row of r.rows) {
      if (bad.includes(row.key)) {
        expect(row.verdict, row.key).toBe('FAIL');
        expect(row.ms, 'a wrong op has no time').toBeUndefined();
        expect(row.msOfWrongOutput).toBeGreaterThan(0);
        const c = row.check!.pytorch!;
        expect(c.worst.name).toBe('dx');
        expect(c.worst.rel).toBeCloseTo(2, 5); // ‖−dx − dx‖ / ‖dx‖
        expect(c.outputs.find((o) => o.name === 'dw')!.pass).toBe(true);
      } else {
        expect(row.verdict, row.key).toBe('PASS');
      }
    }
    expect(r.out).toMatch(/fc8\.bwd_dwdx\.fp32\s+FAIL: wrong output, time not reported\. vs PyTorch: FAIL dx 2\.0e\+0 >/);
    expect(r.out).toMatch(/outputs: 6 PASS, 2 FAIL \(fc8\.bwd_dwdx\.fp32, fc8\.bwd_all\.fp32\)/);
  });
});
