// One rank of test/dist/collectives.test.ts, launched by mpirun: node collectives-rank.mjs <mode> <device>
// Modes:
//   check [maxSum maxMean]  all-reduce (sum, mean) and broadcast for several sizes and a fused call, host collectives,
//               bad input; prints one line "RESULT <json>" per rank.
//   nofinalize  init, one all-reduce, exit normally without finalizeDistributed() (the exit hook finalizes).
//   abort       rank 1 calls abortDistributed(3, ...) while rank 0 waits in a barrier.
//   kill        rank 1 kills itself (SIGKILL) while rank 0 is in an all-reduce.
//   hang        (CUDA) rank 1 skips an all-reduce that rank 0 makes: the NCCL watchdog of rank 0 must end the
//               job after AXN_DIST_TIMEOUT_S, naming the rank and the collective.
//   dropwait    (emulated device) the compute stream's wait for the communication stream dropped
//               (emulator.setDropStreamWaits): a read right after allReduce must see the unreduced data
//               under the reverse order, so that the check above would catch a missing wait.
// The data of every rank is a function of (case, rank), so each rank computes the expected result of the
// whole job itself: the float32 sum in rank order (what the communicator promises, bit for bit) and a
// float64 sum (a sanity bound).
import { createHash } from 'node:crypto';
import * as axn from '../../dist/index.js';

const [mode = 'check', device = 'cpu', maxSum = '10000000', maxMean = '10000000'] = process.argv.slice(2);
const info = axn.initDistributed();
const { rank, world } = info;

// Deterministic data: a small LCG per (case, rank); values in [-8, 8) scaled by 2^-4 .. 2^4, so that the
// order of the float32 additions changes the result. Longer arrays repeat a block of PERIOD values (a
// prime: an element moved by anything but a multiple of it lands on a different value), so that the
// expected results of the 10^7 case cost one block to compute.
const PERIOD = 65521;
const POW = Array.from({ length: 9 }, (_, k) => 2 ** (k - 4));
function data(caseId, r, n) {
  const out = new Float32Array(n);
  let s = (caseId * 7919 + r * 104729 + 12345) >>> 0;
  const m = Math.min(n, PERIOD);
  for (let i = 0; i < m; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s / 4294967296) * 16 - 8) * POW[(s >>> 7) % 9];
  }
  for (let i = m; i < n; i += m) out.copyWithin(i, 0, Math.min(m, n - i));
  return out;
}

// The expected all-reduce of one block (the first min(n, PERIOD) elements).
function expectedSum(caseId, n) {
  const m = Math.min(n, PERIOD);
  const f32 = new Float32Array(m);
  const f64 = new Float64Array(m);
  const abs = new Float64Array(m);
  for (let r = 0; r < world; r++) {
    const d = data(caseId, r, m);
    for (let i = 0; i < m; i++) {
      f32[i] = r === 0 ? d[i] : Math.fround(f32[i] + d[i]);
      f64[i] += d[i];
      abs[i] += Math.abs(d[i]);
    }
  }
  return { f32, f64, abs };
}

const hash = (a) => createHash('sha256').update(Buffer.from(a.buffer, a.byteOffset, a.byteLength)).digest('hex').slice(0, 16);
const failures = [];
const checksums = {};
const timings = {};

// got must equal want (one block, repeated) bit for bit; and be within the float32 rounding bound of a sum
// of `world` terms (each addition and the mean's scaling round once: error ≤ world · 2⁻²⁴ · Σ|x|) of the
// float64 sum.
function compare(name, got, want, f64, abs) {
  const g = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const w = new Uint32Array(want.buffer, want.byteOffset, want.length);
  const m = want.length;
  let bad = 0, first = -1, worst = 0;
  for (let i = 0, j = 0; i < got.length; i++, j = j + 1 === m ? 0 : j + 1) {
    if (g[i] !== w[j]) {
      if (first < 0) first = i;
      bad++;
    }
  }
  if (f64) for (let j = 0; j < m; j++) worst = Math.max(worst, Math.abs(got[j] - f64[j]) / (world * 2 ** -24 * abs[j] + 1e-38));
  if (bad) failures.push(`${name}: ${bad} of ${got.length} elements differ from the rank-order float32 sum (first at ${first}: got ${got[first]}, want ${want[first % m]})`);
  if (worst > 1) failures.push(`${name}: off the float64 sum by ${worst.toFixed(2)} × the float32 rounding bound`);
  checksums[name] = hash(got);
}

async function allReduceCase(name, caseIds, sizes, op) {
  const tensors = sizes.map((n, k) => axn.Tensor.from(data(caseIds[k], rank, n), [n], device));
  const t0 = performance.now();
  axn.allReduce(tensors, op);
  const got = await Promise.all(tensors.map((t) => t.toFloat32Array()));
  timings[name] = Math.round(performance.now() - t0);
  const scale = Math.fround(1 / world);
  sizes.forEach((n, k) => {
    const { f32, f64, abs } = expectedSum(caseIds[k], n);
    if (op === 'mean')
      for (let i = 0; i < f32.length; i++) {
        f32[i] = Math.fround(f32[i] * scale);
        f64[i] /= world;
        abs[i] /= world;
      }
    compare(`${name}[${k}]`, got[k], f32, f64, abs);
  });
  tensors.forEach((t) => t.dispose());
}

async function broadcastCase(name, caseIds, sizes, root) {
  const tensors = sizes.map((n, k) => axn.Tensor.from(data(caseIds[k], rank, n), [n], device));
  axn.broadcast(tensors, root);
  const got = await Promise.all(tensors.map((t) => t.toFloat32Array()));
  sizes.forEach((n, k) => compare(`${name}[${k}]`, got[k], data(caseIds[k], root, Math.min(n, PERIOD))));
  tensors.forEach((t) => t.dispose());
}

function expectThrow(name, fn, pattern) {
  try {
    fn();
    failures.push(`${name}: did not throw`);
  } catch (e) {
    if (!pattern.test(e.message)) failures.push(`${name}: threw "${e.message}", expected ${pattern}`);
  }
}

if (mode === 'check') {
  // Sizes up to maxSum for the sum and broadcast, maxMean for the mean (the cost of the 10^7 case is paid
  // where it tells most: 2 ranks; 3 ranks test the order of the additions).
  const sizes = [1, 2, 3, 1000, 65537, 10_000_000].filter((n) => n <= Number(maxSum));
  let c = 1;
  for (const n of sizes) await allReduceCase(`sum n=${n}`, [c++], [n], 'sum');
  for (const n of [1, 2, 3, 1000, 65537, 10_000_000].filter((n) => n <= Number(maxMean))) await allReduceCase(`mean n=${n}`, [c++], [n], 'mean');
  // Several tensors fused in one call (an empty one among them).
  await allReduceCase('fused sum', [c, c + 1, c + 2, c + 3, c + 4], [3, 1000, 0, 65537, 1], 'sum');
  await allReduceCase('fused mean', [c + 5, c + 6, c + 7], [65537, 2, 1000], 'mean');
  c += 8;
  for (const n of sizes) await broadcastCase(`broadcast n=${n}`, [c++], [n], n % world);
  await broadcastCase('fused broadcast', [c, c + 1, c + 2], [1000, 3, 65537], world - 1);
  c += 3;
  // Two calls back to back without a read in between: the second sees the first's result.
  {
    const t = axn.Tensor.from(data(c, rank, 1000), [1000], device);
    axn.allReduce([t], 'sum');
    axn.allReduce([t], 'sum');
    const got = await t.toFloat32Array();
    const { f32 } = expectedSum(c, 1000);
    const want = f32.map((v) => {
      let a = v;
      for (let r = 1; r < world; r++) a = Math.fround(a + v);
      return a;
    });
    compare('twice', got, want);
    t.dispose();
  }
  // Host collectives.
  const h = await axn.allReduceHost(Float64Array.from([rank + 1, -rank, 0.5]), 'sum');
  const want = [(world * (world + 1)) / 2, -((world * (world - 1)) / 2), 0.5 * world];
  if (h.some((v, i) => v !== want[i])) failures.push(`allReduceHost sum: got ${[...h]}, want ${want}`);
  const mx = await axn.allReduceHost(Float64Array.from([rank, -rank]), 'max');
  const mn = await axn.allReduceHost(Float64Array.from([rank, -rank]), 'min');
  if (mx[0] !== world - 1 || mx[1] !== 0 || mn[0] !== 0 || mn[1] !== -(world - 1)) failures.push(`allReduceHost max/min: ${[...mx]} ${[...mn]}`);
  const names = await axn.allGatherString(`rank ${rank} ${device} ${'x'.repeat(rank * 3)}`);
  const wantNames = Array.from({ length: world }, (_, r) => `rank ${r} ${device} ${'x'.repeat(r * 3)}`);
  if (JSON.stringify(names) !== JSON.stringify(wantNames)) failures.push(`allGatherString: ${JSON.stringify(names)}`);
  await axn.barrier();
  // Bad input is refused on the calling thread, with the same outcome on every rank.
  const i32 = axn.Tensor.zeros([4], device, 'int32');
  expectThrow('int32', () => axn.allReduce([i32], 'sum'), /allReduce: expected float32 tensors on one device, got int32 at index 0/);
  i32.dispose();
  if (device === 'cuda') {
    const a = axn.Tensor.zeros([4], 'cpu'), b = axn.Tensor.zeros([4], 'cuda');
    expectThrow('mixed', () => axn.allReduce([a, b], 'sum'), /allReduce: expected float32 tensors on one device, got cpu \(tensors\[0\]\) and cuda \(tensors\[1\]\)/);
    a.dispose();
    b.dispose();
  }
  expectThrow('op', () => axn.allReduce([], 'avg'), /allReduce: op must be "sum" or "mean", got "avg"/);
  expectThrow('root', () => axn.broadcast([], world), /broadcast: root must be an integer rank in \[0, \d+\), got \d+/);
  // Every rank's checksums, to rank 0: all ranks hold the same bits.
  const all = await axn.allGatherString(JSON.stringify(checksums));
  if (rank === 0 && all.some((s) => s !== all[0])) failures.push('the ranks hold different bits: ' + all.join(' | '));
  console.log('RESULT ' + JSON.stringify({ rank, world, info, failures, checksums, timings, backend: axn.backendInfo().cuda }));
  await axn.finalizeDistributed();
  await axn.finalizeDistributed(); // twice: a no-op
} else if (mode === 'nofinalize') {
  const t = axn.Tensor.from(data(1, rank, 1000), [1000], device);
  axn.allReduce([t], 'sum');
  await t.toFloat32Array();
  console.log(`RESULT ${JSON.stringify({ rank, done: true })}`);
} else if (mode === 'abort') {
  if (rank === 1) axn.abortDistributed(3, `rank 1: planned abort for the test`);
  await axn.barrier();
  console.log('RESULT rank 0 passed the barrier (it should not have)');
} else if (mode === 'dropwait') {
  const { loadNative } = await import('../../dist/native.js');
  const emu = loadNative().emulator;
  const initial = emu.order();
  emu.setOrder('reverse', 0);
  const mine = data(1, rank, 1000);
  const { f32 } = expectedSum(1, 1000);
  const same = (a, b) => a.every((v, i) => Object.is(v, b[i]));
  const out = {};
  for (const drop of [false, 'intoCompute']) {
    const t = axn.Tensor.from(mine, [1000], device);
    emu.setDropStreamWaits(drop);
    axn.allReduce([t], 'sum');
    const early = await t.toFloat32Array();
    emu.setDropStreamWaits(false);
    axn.synchronize(); // runs the all-reduce where the read did not wait for it
    const late = await t.toFloat32Array();
    out[String(drop)] = { early: same(early, f32) ? 'sum' : same(early, mine) ? 'unreduced' : 'other', late: same(late, f32) ? 'sum' : 'other' };
    t.dispose();
  }
  emu.setOrder(initial.order, initial.seed);
  console.log('RESULT ' + JSON.stringify({ rank, ...out }));
  await axn.finalizeDistributed();
} else if (mode === 'hang') {
  const t = axn.Tensor.from(data(1, rank, 1000), [1000], device);
  await axn.barrier();
  if (rank === 0) {
    axn.allReduce([t], 'sum');
    await t.toFloat32Array();
    console.log('RESULT rank 0 finished an all-reduce rank 1 never joined (it should not have)');
  } else {
    await new Promise((r) => setTimeout(r, 60_000));
  }
} else if (mode === 'kill') {
  const t = axn.Tensor.from(data(1, rank, 1000), [1000], device);
  await axn.barrier();
  if (rank === 1) {
    console.log(`KILLED ${Date.now()}`);
    process.kill(process.pid, 'SIGKILL');
  }
  axn.allReduce([t], 'sum');
  await t.toFloat32Array();
  console.log('RESULT rank 0 finished the all-reduce (it should not have)');
}
