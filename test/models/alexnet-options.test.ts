// Bad options and inputs of the model and the CLI are errors that say what was expected.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { SGD, Tensor, createAlexNet, memoryStats } from '../../lib/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

describe('createAlexNet and the model refuse what would silently be wrong', () => {
  it('a misspelled option is an error, not a 1000-class model', () => {
    expect(() => createAlexNet({ arch: 'small', numclasses: 5 } as never)).toThrow('createAlexNet: unknown option "numclasses" (expected one of arch, numClasses, device, precision, dropout, seed, groups, inChannels, hidden)');
  });
  it('a model that fails half-way through its layers leaves no tensor behind', () => {
    const before = memoryStats();
    // fc8 with 2^40 outputs cannot be allocated: the 14 tensors made before it are freed
    expect(() => createAlexNet({ arch: 'small', numClasses: 2 ** 40 })).toThrow(/has 562949953421312 elements/);
    expect(memoryStats().tensors).toEqual(before.tensors);
    expect(memoryStats().bytes).toEqual(before.bytes);
  });
  it('batch 0 and a wrong image size are errors naming what the arch takes; nothing leaks', async () => {
    const before = memoryStats().tensors.cpu;
    const model = createAlexNet({ arch: 'paper', numClasses: 10, dropout: 0 });
    const opt = new SGD(model.parameters(), { lr: 0.01 });
    using empty = Tensor.zeros([0, 3, 227, 227]);
    expect(() => model.forward(empty)).toThrow('AlexNet.forward: expected a batch of at least one image, got [0, 3, 227, 227]');
    await expect(model.step(empty, new Int32Array(0), opt)).rejects.toThrow('AlexNet.trainStep: expected a batch of at least one image');
    using small = Tensor.zeros([1, 3, 100, 100]);
    expect(() => model.forward(small)).toThrow('AlexNet.forward: the paper arch takes 3×227×227 images, got [1, 3, 100, 100]');
    opt.dispose();
    model.dispose();
    expect(memoryStats().tensors.cpu - 2).toBe(before); // the two inputs, disposed at the block's end
  });
  it('the CLI refuses --momentum 5, --dropout 1 and --weight-decay -1', () => {
    for (const [flag, v] of [['--momentum', '5'], ['--dropout', '1'], ['--weight-decay', '-1']]) {
      const r = spawnSync(process.execPath, [path.join(root, 'dist', 'cli.js'), 'train', flag, v, '--epochs', '1'], { encoding: 'utf8' });
      expect(r.status, `${flag} ${v}`).not.toBe(0);
      expect(r.stderr).toMatch(new RegExp(`${flag} must be a number in \\[0, 1\\), got "${v}"`));
    }
  });
});
