import { describe, expect, it } from 'vitest';
import { DisposedError, Tensor, backendInfo, cudaAvailable, devices, memoryStats } from '../lib/index.js';

function randomF32(n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.random() * 2 - 1;
  return a;
}

describe('Tensor on the CPU', () => {
  it('round-trips float32 data of odd shapes', async () => {
    for (const shape of [[1], [7], [3, 5], [2, 3, 5, 7], [1, 1, 1, 13]]) {
      const n = shape.reduce((a, b) => a * b, 1);
      const data = randomF32(n);
      const t = Tensor.from(data, shape);
      expect(t.shape).toEqual(shape);
      expect(t.dtype).toBe('float32');
      expect(t.device).toBe('cpu');
      expect(t.size).toBe(n);
      const back = await t.toFloat32Array();
      expect(back).toEqual(data);
      expect(back).not.toBe(data);
      t.dispose();
    }
  });

  it('round-trips int32 labels, from Int32Array and from a number array', async () => {
    const labels = Int32Array.from([0, 9, 3, -1, 2147483647, -2147483648]);
    const a = Tensor.from(labels, [6]);
    expect(a.dtype).toBe('int32');
    expect(await a.toInt32Array()).toEqual(labels);
    expect(await a.toFloat32Array()).toEqual(Float32Array.from(labels));
    const b = Tensor.from([1, 2, 3], [3], 'cpu', 'int32');
    expect(b.dtype).toBe('int32');
    expect(Array.from(await b.toInt32Array())).toEqual([1, 2, 3]);
    a.dispose();
    b.dispose();
  });

  it('zeros are zero, and a zero-size tensor works', async () => {
    const z = Tensor.zeros([4, 3]);
    expect(Array.from(await z.toFloat32Array())).toEqual(new Array(12).fill(0));
    const e = Tensor.zeros([0, 5]);
    expect(e.size).toBe(0);
    expect((await e.toFloat32Array()).length).toBe(0);
    z.dispose();
    e.dispose();
  });

  it('to(), clone() and copyFrom() copy; reshape() shares memory', async () => {
    const t = Tensor.from([1, 2, 3, 4, 5, 6], [2, 3]);
    const c = t.to('cpu');
    const r = t.reshape([3, -1]);
    expect(r.shape).toEqual([3, 2]);
    t.write(Float32Array.from([6, 5, 4, 3, 2, 1]));
    expect(Array.from(await c.toFloat32Array())).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(await r.toFloat32Array())).toEqual([6, 5, 4, 3, 2, 1]);
    c.copyFrom(r);
    expect(Array.from(c.dataSync())).toEqual([6, 5, 4, 3, 2, 1]);
    t.dispose();
    // the view keeps the memory alive after the original is disposed
    expect(Array.from(await r.toFloat32Array())).toEqual([6, 5, 4, 3, 2, 1]);
    r.dispose();
    c.dispose();
  });

  it('dispose is idempotent, works with `using`, and use after dispose throws DisposedError', async () => {
    const t = Tensor.from([1, 2], [2]);
    t.dispose();
    t.dispose();
    expect(t.isDisposed).toBe(true);
    await expect(t.toFloat32Array()).rejects.toThrow(DisposedError);
    expect(() => t.dataSync()).toThrow(DisposedError);
    expect(() => t.to('cpu')).toThrow(DisposedError);
    expect(() => t.reshape([2])).toThrow(DisposedError);
    let leaked: Tensor;
    {
      using u = Tensor.zeros([3]);
      leaked = u;
      expect(u.isDisposed).toBe(false);
    }
    expect(leaked.isDisposed).toBe(true);
  });

  it('memory stats return to their baseline', async () => {
    const before = memoryStats();
    const ts = [Tensor.zeros([100, 10]), Tensor.from(randomF32(33), [3, 11]), Tensor.zeros([5], 'cpu', 'int32')];
    const views = ts.map((t) => t.reshape([-1]));
    const mid = memoryStats();
    expect(mid.tensors.cpu).toBe(before.tensors.cpu + 6);
    expect(mid.bytes.cpu).toBe(before.bytes.cpu + (1000 + 33 + 5) * 4);
    expect(mid.native.hostBytes).toBe(before.native.hostBytes + (1000 + 33 + 5) * 4);
    ts.forEach((t) => t.dispose());
    expect(memoryStats().bytes.cpu).toBe(mid.bytes.cpu); // views still hold the storage
    views.forEach((t) => t.dispose());
    const after = memoryStats();
    expect(after.tensors).toEqual(before.tensors);
    expect(after.bytes).toEqual(before.bytes);
    expect(after.native.hostBytes).toBe(before.native.hostBytes);
    expect(after.native.hostBuffers).toBe(before.native.hostBuffers);
  });
});

describe('bad input gets a clear error', () => {
  it('bad shapes', () => {
    expect(() => Tensor.zeros([2, -1])).toThrow(/expected an array of non-negative integers, got \[2, -1\]/);
    expect(() => Tensor.zeros([2.5])).toThrow(/dimension 0 is 2.5/);
    expect(() => Tensor.zeros('3' as never)).toThrow(/expected an array of non-negative integers, got "3"/);
    expect(() => Tensor.zeros([2 ** 30, 2 ** 30])).toThrow(RangeError);
  });
  it('bad sizes', () => {
    expect(() => Tensor.from([1, 2, 3], [2, 2])).toThrow('Tensor.from: shape [2, 2] needs 4 elements, got 3');
    const t = Tensor.from([1, 2, 3, 4], [4]);
    expect(() => t.reshape([3])).toThrow(/cannot reshape \[4\] \(4 elements\) to \[3\]/);
    expect(() => t.reshape([-1, -1])).toThrow(/at most one dimension may be -1/);
    expect(() => t.write(new Float32Array(3))).toThrow(/expected Float32Array\(4\), got Float32Array\(3\)/);
    expect(() => t.copyFrom(Tensor.zeros([5]))).toThrow(/expected 4 float32 elements/);
    t.dispose();
  });
  it('bad dtypes and data', async () => {
    expect(() => Tensor.zeros([2], 'cpu', 'float64' as never)).toThrow('expected "float32", "bfloat16", "int32" or "uint8", got "float64"');
    expect(() => Tensor.from(new Float64Array(2) as never, [2])).toThrow(/expected a Float32Array, Int32Array, Uint8Array or Uint16Array \(bfloat16 bits\), got Float64Array\(2\)/);
    expect(() => Tensor.from([1.5], [1], 'cpu', 'int32')).toThrow(/needs 32-bit integers, got 1.5 at index 0/);
    expect(() => Tensor.from(new Int32Array(2), [2], 'cpu', 'float32')).toThrow(/Int32Array for dtype "float32"/);
    expect(() => Tensor.from(null as never, [2])).toThrow(/got null/);
    const labels = Tensor.from(new Int32Array(2), [2]);
    await expect(labels.toInt32Array()).resolves.toBeInstanceOf(Int32Array);
    const f = Tensor.zeros([2]);
    await expect(f.toInt32Array()).rejects.toThrow(/tensor is float32/);
    labels.dispose();
    f.dispose();
  });
  it('ready(): resolves when the ops that write a tensor have run, without reading it back', async () => {
    const { ops } = await import('../lib/index.js');
    using x = Tensor.from(Float32Array.from({ length: 1 << 16 }, (_, i) => i - 30000), [1 << 16]);
    using y = ops.relu(x);
    await y.ready();
    expect(y.dataSync()[0]).toBe(0);
    using e = Tensor.empty([0]);
    await e.ready();
    y.dispose();
    await expect(y.ready()).rejects.toThrow(/disposed|Tensor.ready/);
  });
  it('bad devices', () => {
    expect(() => Tensor.zeros([2], 'tpu')).toThrow('expected "cpu" or "cuda", got "tpu"');
    expect(() => Tensor.zeros([2], 'cuda:1')).toThrow(/only one CUDA device is supported/);
    expect(() => Tensor.zeros([2], 3 as never)).toThrow('expected "cpu" or "cuda", got 3');
  });
});

describe('backend queries', () => {
  it('devices() and backendInfo() agree', () => {
    const info = backendInfo();
    expect(devices()).toEqual(info.cuda ? ['cpu', 'cuda'] : ['cpu']);
    expect(cudaAvailable()).toBe(info.cuda);
    expect(['cmake-js', 'node-gyp']).toContain(info.buildSystem);
    if (!info.cuda) expect(info.cudaReason.length).toBeGreaterThan(0);
  });
  it.skipIf(cudaAvailable())('without a GPU, cuda tensors give an error that says why', () => {
    expect(() => Tensor.zeros([2], 'cuda')).toThrow(/device "cuda" is not available: .+/);
    expect(devices()).toEqual(['cpu']);
  });
});

describe('Tensor.from rejects what is not data, and takes shared memory', () => {
  it('non-numbers are an error naming the index; nothing is allocated', () => {
    const before = memoryStats();
    expect(() => Tensor.from(['a', 'b', 1, 2] as unknown as number[], [4])).toThrow('Tensor.from: dtype "float32" needs numbers, got "a" at index 0');
    expect(() => Tensor.from([1, 2, null, 4] as unknown as number[], [4])).toThrow(/needs numbers, got null at index 2/);
    expect(() => Tensor.from([1, '2'] as unknown as number[], [2], 'cpu', 'int32')).toThrow(/needs 32-bit integers, got "2" at index 1/);
    expect(memoryStats().tensors).toEqual(before.tensors);
  });
  it('a SharedArrayBuffer-backed array is copied in (no bare "Invalid argument", no leaked tensor)', async () => {
    const before = memoryStats();
    const sab = new Float32Array(new SharedArrayBuffer(16));
    sab.set([1, 2, 3, 4]);
    using t = Tensor.from(sab, [4]);
    expect(Array.from(await t.toFloat32Array())).toEqual([1, 2, 3, 4]);
    const si = new Int32Array(new SharedArrayBuffer(8));
    si.set([5, 6]);
    using u = Tensor.from(si, [2]);
    expect(Array.from(await u.toInt32Array())).toEqual([5, 6]);
    t.write(sab);
    expect(memoryStats().tensors.cpu).toBe(before.tensors.cpu + 2);
  });
});
