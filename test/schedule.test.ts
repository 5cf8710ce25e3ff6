// The per-step learning-rate schedule (WarmupCosineLR, train's schedule 'cosine'): its rates against
// PyTorch's SequentialLR(LinearLR, CosineAnnealingLR); train() sets the rate of every step from it, and an
// interrupted run resumed from its checkpoint takes the same rates and ends with the same weights; a resume
// that would bend the cosine (other epochs) is refused.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createAlexNet, data, train, SGD, Tensor, WarmupCosineLR, type AlexNet } from '../lib/index.js';
import { hasTorch, runPython } from './helpers/torch.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'axn-schedule-'));
const param = Tensor.zeros([1]);
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
  param.dispose();
});

const optimizer = (lr: number) => new SGD([{ value: param, grad: null, decay: false } as never], { lr });

/** PyTorch's rates, one per step, for `steps` steps. */
function torchRates(base: number, warmup: number, total: number, minLr: number, steps: number): number[] {
  const script = `
import json, sys, warnings, torch
warnings.simplefilter('ignore')
base, w, T, eta, n = ${base}, ${warmup}, ${total}, ${minLr}, ${steps}
opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base, momentum=0.9)
L = torch.optim.lr_scheduler
cos = lambda: L.CosineAnnealingLR(opt, T_max=T - w, eta_min=eta)
s = L.SequentialLR(opt, [L.LinearLR(opt, start_factor=1 / w, end_factor=1.0, total_iters=w - 1), cos()], milestones=[w]) if w > 0 else cos()
rates = []
for _ in range(n):
    rates.append(opt.param_groups[0]['lr'])
    opt.step()
    s.step()
print(json.dumps(rates))
`;
  return JSON.parse(runPython(['-c', script]));
}

describe('WarmupCosineLR', () => {
  it.skipIf(!hasTorch)('gives PyTorch\'s rates over the run (warm-up then cosine; cosine alone)', () => {
    for (const [base, warmup, total, minLr] of [[0.03, 7, 40, 0.001], [0.1, 0, 25, 0], [0.1, 1, 10, 0], [0.01, 13, 97, 1e-4]]) {
      const opt = optimizer(base);
      const s = new WarmupCosineLR(opt, total, warmup, minLr);
      const want = torchRates(base, warmup, total, minLr, total);
      const got = want.map((_, k) => (s.beforeStep(k), opt.lr));
      for (let k = 0; k < total; k++) expect(Math.abs(got[k] - want[k]), `step ${k} of ${total} (warm-up ${warmup})`).toBeLessThan(1e-15);
      opt.dispose();
    }
  });

  it('starts at base/warmup, reaches base after the warm-up, ends at minLr, and falls monotonically', () => {
    const opt = optimizer(0.05);
    const s = new WarmupCosineLR(opt, 100, 10, 0.002);
    expect(s.lrAt(0)).toBeCloseTo(0.005, 15);
    expect(s.lrAt(9)).toBe(0.05);
    expect(s.lrAt(10)).toBe(0.05);
    expect(s.lrAt(55)).toBeCloseTo((0.05 + 0.002) / 2, 15); // half-way through the cosine
    expect(s.lrAt(100)).toBe(0.002);
    expect(s.lrAt(1e6)).toBe(0.002);
    for (let k = 11; k < 100; k++) expect(s.lrAt(k)).toBeLessThan(s.lrAt(k - 1));
    for (let k = 1; k < 10; k++) expect(s.lrAt(k)).toBeGreaterThan(s.lrAt(k - 1));
    expect(new WarmupCosineLR(opt, 5).lrAt(0)).toBe(0.05); // no warm-up: the first step at base
    opt.dispose();
  });

  it('refuses a shape that is not one, and a saved state of another shape', () => {
    const opt = optimizer(0.1);
    expect(() => new WarmupCosineLR(opt, 0)).toThrow(/totalSteps must be an integer ≥ 1, got 0/);
    expect(() => new WarmupCosineLR(opt, 10, 10)).toThrow(/warmupSteps must be an integer in \[0, totalSteps = 10\), got 10/);
    expect(() => new WarmupCosineLR(opt, 10, 1.5)).toThrow(/warmupSteps/);
    expect(() => new WarmupCosineLR(opt, 10, 0, 0.2)).toThrow(/minLr must be a number in \[0, lr = 0.1\], got 0.2/);
    const s = new WarmupCosineLR(opt, 10, 2);
    expect(() => s.load({ best: 1 })).toThrow(/not a cosine schedule's/);
    expect(() => s.load({ ...s.state(), totalSteps: 12 })).toThrow(/totalSteps 12, this run's 10 \(its epochs or batches per epoch differ/);
    expect(() => s.load({ ...s.state(), base: 0.2 })).toThrow(/the checkpoint's schedule has base 0.2 \(the lr it started from\), this run's 0.1/);
    expect(() => s.load({ ...s.state(), warmupSteps: 3 })).toThrow(/warmupSteps 3, this run's 2/);
    expect(() => s.load({ ...s.state(), minLr: 0.01 })).toThrow(/minLr 0.01, this run's 0/);
    s.load(s.state());
    opt.dispose();
  });
});

describe("train({ schedule: 'cosine' })", () => {
  const source = () => data.loadFashionMnist({ split: 'train', limit: 192 }); // 6 batches of 32 an epoch
  const mk = (seed = 9) => createAlexNet({ arch: 'small', numClasses: 10, inChannels: 1, seed, dropout: 0.5 });
  /** Records the rate each step was taken with. */
  const watch = (m: AlexNet) => {
    const rates: number[] = [];
    const step = m.step.bind(m);
    m.step = (x, labels, opt) => (rates.push(opt.lr), step(x, labels, opt));
    return rates;
  };
  const opts = { epochs: 2, batchSize: 32, lr: 0.02, seed: 5, schedule: 'cosine' as const, warmupSteps: 3, minLr: 0.001 };

  it('sets every step\'s rate, and a resumed run takes the same rates and ends with the same weights', async () => {
    const refOpt = optimizer(0.02);
    const reference = new WarmupCosineLR(refOpt, 12, 3, 0.001);
    refOpt.dispose();
    const a = mk();
    const ra = watch(a);
    const progress: number[] = [];
    const resA = await train({ model: a, train: source(), ...opts, onProgress: (p) => progress.push(p.lr) });
    expect(ra).toEqual(Array.from({ length: 12 }, (_, k) => reference.lrAt(k)));
    expect(progress, 'each step reported with its own rate').toEqual(ra);
    expect(resA.history.map((h) => h.lr)).toEqual([reference.lrAt(5), reference.lrAt(11)]);
    const wa = await a.stateDict();

    const ckpt = path.join(tmp, 'cosine.safetensors');
    const b1 = mk();
    const r1 = await train({ model: b1, train: source(), ...opts, checkpoint: ckpt, stopAfterBatches: 8 });
    expect(r1.interrupted).toBe(true);
    const b2 = mk(1234); // another seed: the checkpoint restores everything
    const rb = watch(b2);
    const resB = await train({ model: b2, train: source(), ...opts, checkpoint: ckpt, resume: ckpt });
    expect(rb).toEqual(ra.slice(8));
    const wb = await b2.stateDict();
    for (const [name, t] of wa) expect(wb.get(name)!.data, `${name} after resuming`).toEqual(t.data);

    // Resuming with more epochs would bend the cosine: refused, naming why, before anything changes.
    const b3 = mk(77);
    const before = await b3.stateDict();
    await expect(train({ model: b3, train: source(), ...opts, epochs: 3, resume: ckpt })).rejects.toThrow(/totalSteps 12, this run's 18 \(its epochs or batches per epoch differ/);
    const after = await b3.stateDict();
    for (const [name, t] of before) expect(after.get(name)!.data, name).toEqual(t.data);
    [resA, r1, resB].forEach((r) => r.optimizer.dispose());
    [a, b1, b2, b3].forEach((m) => m.dispose());
  }, 120_000);

  it('refuses warm-up settings without the cosine schedule, and a warm-up as long as the run', async () => {
    const m = mk();
    await expect(train({ model: m, train: source(), epochs: 1, batchSize: 32, lr: 0.02, schedule: 'none', warmupSteps: 3 })).rejects.toThrow(
      /warmupSteps and minLr belong to schedule 'cosine', this run's schedule is 'none'/,
    );
    await expect(train({ model: m, train: source(), epochs: 1, batchSize: 32, lr: 0.02, schedule: 'cosine', warmupSteps: 6 })).rejects.toThrow(
      /train: WarmupCosineLR: warmupSteps must be an integer in \[0, totalSteps = 6\), got 6/,
    );
    await expect(train({ model: m, train: source(), epochs: 1, batchSize: 32, lr: 0.02, schedule: 'linear' as never })).rejects.toThrow(/schedule must be 'plateau', 'step', 'cosine' or 'none', got "linear"/);
    m.dispose();
  });
});
