// The markdown of one benchmark run (bench/run.mjs --json), with PyTorch's timings beside ours when the
// run has them: op, shape, ours ms, rate, % of ceiling and target (GPU), PyTorch ms and speed-up, the
// error of the outputs against PyTorch's and the CPU oracle's, the tolerance, the verdict. Used by
// run.mjs (printed at the end of a run) and summary.mjs (from saved JSON).
import { fmtErr } from './check.mjs';
import { fmtGB, fmtGF, fmtMsFloor, peakOf } from './traffic-lib.mjs';
import { CEILINGS, TARGETS, ceilingOf, deriveBackwardRows, fmtBytes, fmtMs, fmtRate, markdownTable, pct, rateOf, targetOf } from './common.mjs';

/** "3.1e-7 / 4.8e-7" (relative L2 / max abs) for the worst output of a comparison, with its name when
 * the row has several outputs. */
function errCell(c) {
  if (!c) return '—';
  if (c.missing) return `no reference (${c.missing})`;
  const w = c.worst;
  if (!w) return '—';
  if (w.missing) return `${w.name} missing in ${w.missing}`;
  const name = c.outputs.length > 1 ? `${w.name}: ` : '';
  return `${name}${fmtErr(w.rel)} / ${fmtErr(w.maxAbs)}${w.bad ? ` (${w.bad} non-finite)` : ''}`;
}

function tolCell(r) {
  const c = r.check?.pytorch ?? r.check?.cpu;
  const w = c?.worst;
  if (!w || w.missing) return '—';
  return `${fmtErr(w.tol)}${w.tolHow ? ` (${w.tolHow})` : ''}`;
}

/** Markdown (a header paragraph, the table, the per-step counts) of `run` = { meta, results } with the
 * peer's { meta, results } or null. */
export function summaryMarkdown(run, peer, extraNotes = []) {
  const ours = run;
  const out = [];
  const notes = [...(ours.meta.notes ?? []), ...extraNotes];
  if (ours.meta.fuseRelu === false) notes.push('--unfused: the training steps ran their Conv2d/Linear → ReLU pairs as separate layers.');
  if (ours.meta.convPath === 'legacy') notes.push('--conv-path legacy: the convolutions ran on the path before issue 19 (per-image GEMMs, im2col again in the backward).');
  if (ours.meta.lrnPath === 'legacy') notes.push('--lrn-path legacy: the LRN rows and layers ran the kernels before issue 19 (a column per thread, the scale stored).');
  if (ours.meta.biasGradPath === 'legacy') notes.push('--bias-grad-path legacy: the conv bias gradients ran the reduction before issue 19 (one block per channel).');
  if (peer) {
    if (peer.meta.device !== ours.meta.device) notes.push(`PyTorch ran on ${peer.meta.device}, ours on ${ours.meta.device}: speed-ups are not comparable.`);
    if (peer.meta.batch !== ours.meta.batch) notes.push(`PyTorch ran batch ${peer.meta.batch}, ours batch ${ours.meta.batch}: speed-ups are not comparable.`);
  }
  const gpu = ours.meta.device === 'cuda';
  const okOurs = ours.results.filter((r) => !r.error && r.ms > 0);
  const derivedOurs = deriveBackwardRows(okOurs);
  const peerOk = peer ? peer.results.filter((r) => !r.error && r.ms > 0) : [];
  const peerByKey = new Map([...peerOk, ...deriveBackwardRows(peerOk, okOurs)].map((r) => [r.key, r]));
  const byKey = new Map(okOurs.map((r) => [r.key, r]));
  const checkedVsTorch = ours.results.some((r) => r.check?.pytorch);
  const checkedVsCpu = ours.results.some((r) => r.check?.cpu);

  // Our rows in run order, each layer's derived dx/db right after its measured backward rows.
  const ordered = [];
  for (const r of ours.results) {
    ordered.push(r);
    const m = /^(.*)\.bwd_all(\..*)?$/.exec(r.key);
    if (m) ordered.push(...derivedOurs.filter((d) => d.key.startsWith(`${m[1]}.bwd_d`) && d.key.endsWith(m[2] ?? '')));
  }

  const header = ['op', 'shape', 'ours ms', 'rate'];
  if (gpu) header.push('% of ceiling', 'target');
  if (peer) header.push('PyTorch ms', 'speed-up vs PyTorch');
  if (checkedVsTorch) header.push('error vs PyTorch (rel L2 / max abs)');
  if (checkedVsCpu) header.push('error vs CPU oracle');
  header.push('tolerance', 'output');
  let pass = 0;
  let failN = 0;
  const rows = ordered.map((r) => {
    const op = `${r.label}${r.precision ? ` · ${r.precision}` : ''}`;
    const tail = () => {
      const c = [];
      if (checkedVsTorch) c.push(r.derived ? '' : errCell(r.check?.pytorch));
      if (checkedVsCpu) c.push(r.derived ? '' : errCell(r.check?.cpu));
      c.push(r.derived ? '' : tolCell(r), r.derived ? '(derived)' : r.verdict ?? 'unchecked');
      return c;
    };
    if (r.error || r.verdict === 'FAIL') {
      const cells = [op, r.shape, r.error ? 'ERROR' : '— (wrong output)', r.error ? r.error.slice(0, 80) : ''];
      if (gpu) cells.push('', 'FAIL');
      if (peer) {
        const p = peerByKey.get(r.key);
        cells.push(p ? fmtMs(p.ms) : '—', '—');
      }
      failN += gpu ? 1 : 0;
      return [...cells, ...tail()];
    }
    // A derived part smaller than the noise of the two medians it comes from can come out ≤ 0.
    const noisy = r.derived && !(r.ms > 0);
    const cells = [op, r.shape, noisy ? '< noise' : fmtMs(r.ms), noisy ? '—' : fmtRate(r, ours.meta.batch)];
    if (gpu) {
      const t = targetOf(r, byKey);
      if (t.pass === true) pass++;
      if (t.pass === false) failN++;
      cells.push(noisy ? '—' : pct(rateOf(r) / ceilingOf(r)), t.text);
    }
    if (peer) {
      const p = peerByKey.get(r.key);
      const pNoisy = p && p.derived && !(p.ms > 0);
      cells.push(!p ? '—' : pNoisy ? '< noise' : fmtMs(p.ms), p && !pNoisy && !noisy ? `${(p.ms / r.ms).toFixed(2)}×` : '—');
    }
    return [...cells, ...tail()];
  });

  const m = ours.meta;
  const where = gpu ? `${m.gpu ?? 'GPU'}` : `CPU: ${m.cpu}, ${m.backend?.threads ?? '?'} threads, BLAS ${m.backend?.blas ?? '?'}`;
  out.push(`### alexnet-cuda benchmarks — ${where}, batch ${m.batch} (${m.date?.slice(0, 10) ?? 'undated'})`, '');
  if (m.command) out.push(`Command: \`${m.command}\`.`);
  if (peer) {
    const p = peer.meta;
    out.push(
      `PyTorch peer: torch ${p.torch}${p.cudnn ? ` + cuDNN ${p.cudnn}` : ''} on ${p.gpu ?? `the CPU (${p.threads} threads)`}, ` +
        `${p.layout ?? 'NCHW'}${p.device === 'cuda' ? ', cudnn.benchmark on, TF32 only in tf32 rows' : ''}.`,
    );
  }
  const refs = m.references;
  if (refs) {
    const what = [refs.pytorch && `PyTorch's (torch ${refs.pytorch.torch}, same inputs, ${refs.pytorch.device && refs.pytorch.device !== m.device ? `computed on the ${refs.pytorch.device} in fp32` : 'same device and precision'})`, refs.cpuOracle && "the CPU oracle's (fp32)"].filter(Boolean);
    out.push(
      what.length
        ? `Outputs checked against ${what.join(' and ')}: relative L2 error ‖ours − ref‖ / ‖ref‖ and max abs error of the worst output of each row, held to a tolerance derived from its precision and reduction length K (bench/check.mjs). A FAIL row's time is not reported.`
        : 'Outputs not checked: no reference was available (see the notes).',
    );
  }
  if (gpu)
    out.push(
      `Ceilings (${CEILINGS.card}): fp32 ${CEILINGS.fp32 / 1e12} TFLOP/s, tf32 ${CEILINGS.tf32 / 1e12} TFLOP/s, ${CEILINGS.bytes / 1e12} TB/s. ` +
        `Targets: memory-bound ≥ ${pct(TARGETS.memFraction)} of ${CEILINGS.bytes / 1e12} TB/s (calls moving ≥ ${fmtBytes(TARGETS.memMinBytes)}); ` +
        `conv forward ≥ ${pct(TARGETS.convVsGemm)} of the bare GEMM's rate at the same precision.`,
    );
  else out.push("CPU run: the GPU's ceilings and targets don't apply.");
  const share = (mm) => (typeof mm.otherCpuShare === 'number' ? mm.otherCpuShare : null);
  if (!gpu && share(m) !== null) {
    const busy = share(m) > 0.1 || (peer && share(peer.meta) > 0.1);
    out.push(
      `Other processes used ${pct(share(m))} of the machine's CPU time during our run` +
        `${peer && share(peer.meta) !== null ? ` and ${pct(share(peer.meta))} during PyTorch's` : ''}` +
        `${busy ? ' — they competed for the cores, so timings are inflated (OpenMP teams wait for a descheduled thread)' : ''}.`,
    );
  }
  for (const n of notes) out.push(`Note: ${n}`);
  out.push('', markdownTable(header, rows), '');
  const counted = ours.results.filter((r) => r.perStep);
  if (counted.length) {
    out.push("What one training step asks of the device, in steady state (the backend's counters; the same at any batch):", '');
    out.push(
      markdownTable(
        ['step', 'kernel launches', 'cuBLAS calls', 'driver allocations', 'pinned allocations', 'host syncs'],
        counted.map((r) => [r.key, ...['launches', 'cublasCalls', 'driverAllocs', 'pinnedAllocs', 'hostSyncs'].map((k) => String(r.perStep[k]))]),
      ),
      '',
    );
  }
  const traffic = ours.results.filter((r) => r.traffic);
  if (traffic.length) {
    out.push(
      `Traffic of one training step on the emulated device (kernels: the unique 4 KiB pages each launch read and wrote, measured; ` +
        `cuBLAS: the operand bytes its arguments imply, FLOPs = 2·m·n·k; copies: their arguments; bench/README.md). ` +
        `At the run's batch: bench/traffic.mjs extrapolates to 128. The floor is Σ over launches of max(bytes / ${CEILINGS.bytes / 1e12} TB/s, FLOPs / GEMM peak) ` +
        `at the ${CEILINGS.card} ceilings: a floor, not a time.`,
      '',
    );
    out.push(
      markdownTable(
        ['step', 'batch', 'launches / cuBLAS / copies', 'bytes read', 'bytes written', 'FLOPs', 'floor (not a time)', 'floor at bf16 peak (same bytes)'],
        traffic.map((r) => {
          const t = r.traffic.totals;
          return [
            r.key,
            String(r.traffic.batch),
            `${t.kernels} / ${t.cublas} / ${t.copies}`,
            fmtGB(t.readBytes),
            fmtGB(t.writeBytes),
            fmtGF(t.flops),
            `${fmtMsFloor(t.floor.roofline)} at ${peakOf(r.traffic.precision) / 1e12} TFLOP/s (memory alone ${fmtMsFloor(t.floor.memory)}, compute alone ${fmtMsFloor(t.floor.compute)})`,
            fmtMsFloor(t.floorBf16Peak.roofline),
          ];
        }),
      ),
      '',
    );
  }
  const extra = peerOk.filter((r) => !byKey.has(r.key) && !ours.results.some((o) => o.key === r.key));
  if (extra.length) out.push(`PyTorch-only rows: ${extra.map((r) => `${r.key} ${fmtMs(r.ms)} ms${r.note ? ` (${r.note})` : ''}`).join('; ')}.`);
  const errs = ours.results.filter((r) => r.error).length;
  const wrong = ours.results.filter((r) => r.verdict === 'FAIL').length;
  const okOut = ours.results.filter((r) => r.verdict === 'PASS').length;
  const peerErrs = peer ? peer.results.filter((r) => r.error).length : 0;
  const parts = [`${ours.results.length} rows measured`, `outputs: ${okOut} PASS, ${wrong} FAIL, ${ours.results.length - okOut - wrong} not checked`];
  if (gpu) parts.push(`targets: ${pass} PASS, ${failN} FAIL`);
  if (errs) parts.push(`${errs} of ours failed to run`);
  if (peerErrs) parts.push(`${peerErrs} of PyTorch's failed`);
  out.push(`${parts.join('; ')}.`);
  return out.join('\n');
}
