/** Errors thrown by alexnet-cuda. Validation failures are TypeError/RangeError with a message that
 * says what was expected and what came; native failures are plain Errors carrying the op, file:line
 * and the CUDA/cuBLAS message. */

/** Thrown when a disposed tensor (or model) is used. */
export class DisposedError extends Error {
  constructor(what: string) {
    super(`${what} was used after dispose()`);
    this.name = 'DisposedError';
  }
}

/** A short description of a value for error messages: `Float32Array(12)`, `[2, 3]`, `"cuda"`, `undefined`. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v);
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  if (ArrayBuffer.isView(v)) return `${v.constructor.name}(${(v as unknown as ArrayLike<unknown>).length ?? v.byteLength})`;
  if (Array.isArray(v)) return v.length <= 8 ? `[${v.map(describe).join(', ')}]` : `Array(${v.length})`;
  if (typeof v === 'function') return `function ${v.name || '(anonymous)'}`;
  const name = (v as object).constructor?.name;
  return name && name !== 'Object' ? `${name} instance` : 'object';
}
