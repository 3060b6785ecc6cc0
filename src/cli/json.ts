/**
 * Canonical JSON for `--dump` and golden files: object keys sorted, `undefined` dropped,
 * and source locations left out unless asked for (they name files on this machine).
 */
export function canonicalJson(value: unknown, opts: { locations?: boolean } = {}): string {
  const norm = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(norm);
    if (v instanceof Set) return [...v].map(norm);
    if (v && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(v).sort()) {
        if (k === 'loc' && !opts.locations) continue;
        const x = (v as Record<string, unknown>)[k];
        if (x !== undefined) out[k] = norm(x);
      }
      return out;
    }
    return v;
  };
  return JSON.stringify(norm(value), null, 2);
}
