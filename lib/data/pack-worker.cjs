'use strict';
/* A decode process of `alexnet pack` (lib/data/pack.ts): child processes rather than threads, so that
 * packing uses every core (libvips in one process did not scale past a few cores on a 16-core machine)
 * and so that an image that crashes the decoder takes down one worker, which is reported and replaced,
 * never the pack. Each message { id, path } is answered { id, ok, data, width, height, channels } or
 * { id, ok: false, reason }. The settings come once, in the first message. */
const sharp = require(process.env.AXN_PACK_SHARP);
const { encodeResized } = require(process.env.AXN_PACK_DECODE);
sharp.concurrency(1); // one libvips thread per process: the processes are the parallelism
sharp.cache(false);
let settings = null;
process.on('message', (m) => {
  if (m.settings) {
    settings = m.settings;
    return;
  }
  encodeResized(sharp, m.path, settings).then(
    (r) => process.send({ id: m.id, ok: true, data: r.data, width: r.width, height: r.height, channels: r.channels }),
    (e) => process.send({ id: m.id, ok: false, reason: String((e && e.message) || e).split('\n')[0].trim() || 'unknown error' }),
  );
});
process.on('disconnect', () => process.exit(0));
