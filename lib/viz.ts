/** Pictures of a training run, drawn with sharp: the training curve (SVG rendered to PNG by sharp's
 * librsvg) and a grid of the learned conv1 filters (the 2012 paper's Figure 3). */
import { loadSharp } from './sharp.js';
import type { EpochRecord } from './train.js';

const esc = (s: string) => s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);

/** Loss (left axis) and accuracy (right axis) per epoch, as a PNG. */
export async function trainingCurvePng(history: EpochRecord[], title = 'alexnet-cuda training'): Promise<Buffer> {
  const W = 800;
  const H = 450;
  const m = { l: 70, r: 70, t: 50, b: 50 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const n = history.length;
  const xs = (i: number) => m.l + (n <= 1 ? pw / 2 : (i / (n - 1)) * pw);
  const losses = history.flatMap((h) => [h.trainLoss, h.test?.loss ?? NaN]).filter(Number.isFinite);
  const maxLoss = Math.max(1e-6, ...losses) * 1.1;
  const yl = (v: number) => m.t + ph - (v / maxLoss) * ph;
  const ya = (v: number) => m.t + ph - v * ph;
  const line = (vals: number[], y: (v: number) => number, color: string, dash = '') => {
    const pts = vals.map((v, i) => (Number.isFinite(v) ? `${xs(i).toFixed(1)},${y(v).toFixed(1)}` : '')).filter(Boolean);
    if (!pts.length) return '';
    const dots = pts.map((p) => `<circle cx="${p.split(',')[0]}" cy="${p.split(',')[1]}" r="3" fill="${color}"/>`).join('');
    return `<polyline fill="none" stroke="${color}" stroke-width="2" ${dash ? `stroke-dasharray="${dash}"` : ''} points="${pts.join(' ')}"/>${dots}`;
  };
  const grid = [0, 0.25, 0.5, 0.75, 1]
    .map((f) => {
      const y = m.t + ph - f * ph;
      return `<line x1="${m.l}" x2="${m.l + pw}" y1="${y}" y2="${y}" stroke="#ddd"/>` +
        `<text x="${m.l - 8}" y="${y + 4}" text-anchor="end" font-size="12">${(f * maxLoss).toFixed(2)}</text>` +
        `<text x="${m.l + pw + 8}" y="${y + 4}" font-size="12">${(f * 100).toFixed(0)}%</text>`;
    })
    .join('');
  const xticks = history
    .map((h, i) => `<text x="${xs(i)}" y="${m.t + ph + 18}" text-anchor="middle" font-size="12">${h.epoch + 1}</text>`)
    .join('');
  const legend = [
    ['#1f77b4', '', 'train loss'],
    ['#1f77b4', '6,4', 'test loss'],
    ['#d62728', '', 'train accuracy'],
    ['#d62728', '6,4', 'test top-1'],
  ]
    .map(([c, d, label], i) => `<line x1="${m.l + 10 + i * 160}" x2="${m.l + 40 + i * 160}" y1="${m.t - 15}" y2="${m.t - 15}" stroke="${c}" stroke-width="2" ${d ? `stroke-dasharray="${d}"` : ''}/><text x="${m.l + 46 + i * 160}" y="${m.t - 11}" font-size="12">${label}</text>`)
    .join('');
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="20" text-anchor="middle" font-size="15">${esc(title)}</text>
${grid}${xticks}
<text x="${m.l + pw / 2}" y="${H - 12}" text-anchor="middle" font-size="13">epoch</text>
<text x="18" y="${m.t + ph / 2}" font-size="13" transform="rotate(-90 18 ${m.t + ph / 2})" text-anchor="middle">loss</text>
<text x="${W - 14}" y="${m.t + ph / 2}" font-size="13" transform="rotate(90 ${W - 14} ${m.t + ph / 2})" text-anchor="middle">accuracy</text>
<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#444"/>
${legend}
${line(history.map((h) => h.trainLoss), yl, '#1f77b4')}
${line(history.map((h) => h.test?.loss ?? NaN), yl, '#1f77b4', '6,4')}
${line(history.map((h) => h.trainAcc), ya, '#d62728')}
${line(history.map((h) => h.test?.top1 ?? NaN), ya, '#d62728', '6,4')}
</svg>`;
  const sharp = await loadSharp();
  return sharp(Buffer.from(svg)).png().toBuffer();
}

/** conv1 filters [K, C, kh, kw] as a grid of small images (each filter scaled to its own min–max, as in
 * the paper's Figure 3); C = 3 → colour, otherwise the first channel in grey. */
export async function filterGridPng(weights: Float32Array, shape: readonly number[], opts: { columns?: number; scale?: number } = {}): Promise<Buffer> {
  const [K, C, kh, kw] = shape;
  if (shape.length !== 4 || weights.length !== K * C * kh * kw)
    throw new RangeError(`filterGridPng: expected weights of shape [K, C, kh, kw] matching ${weights.length} values, got [${shape.join(', ')}]`);
  const cols = opts.columns ?? Math.min(K, K % 12 === 0 ? 12 : 8);
  const rows = Math.ceil(K / cols);
  const pad = 1;
  const cw = kw + pad;
  const chh = kh + pad;
  const W = cols * cw + pad;
  const H = rows * chh + pad;
  const rgb = C === 3;
  const img = Buffer.alloc(W * H * 3, 255);
  for (let k = 0; k < K; k++) {
    const base = k * C * kh * kw;
    const nvals = (rgb ? 3 : 1) * kh * kw;
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < nvals; i++) {
      lo = Math.min(lo, weights[base + i]);
      hi = Math.max(hi, weights[base + i]);
    }
    const span = hi - lo || 1;
    const ox = (k % cols) * cw + pad;
    const oy = Math.floor(k / cols) * chh + pad;
    for (let y = 0; y < kh; y++)
      for (let x = 0; x < kw; x++)
        for (let c = 0; c < 3; c++) {
          const src = base + (rgb ? c : 0) * kh * kw + y * kw + x;
          img[((oy + y) * W + ox + x) * 3 + c] = Math.round(((weights[src] - lo) / span) * 255);
        }
  }
  const scale = opts.scale ?? Math.max(1, Math.floor(480 / W));
  const sharp = await loadSharp();
  return sharp(img, { raw: { width: W, height: H, channels: 3 } })
    .resize(W * scale, H * scale, { kernel: 'nearest' })
    .png()
    .toBuffer();
}
