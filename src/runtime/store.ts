/**
 * Where the runtime overlay is kept between changes, reloads and restarts: a JSON file
 * (written to a temporary file, flushed, renamed over the old one and the directory flushed,
 * so a crash leaves the old or the new overlay, never half of one, and an acknowledged save
 * survives power loss), or memory for tests.
 */
import { mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync, fsyncSync, closeSync } from 'node:fs';
import { dirname } from 'node:path';
import { FulcrumError } from '../errors/index.js';
import { EMPTY_OVERLAY, type RuntimeOverlay } from './overlay.js';

export const RuntimeErrorCode = {
  /** The saved overlay cannot be read back (not JSON, or not an overlay). */
  BAD_STATE: 'E_RUNTIME_STATE',
} as const;

export interface RuntimeStore {
  /** Where it is kept, for messages. */
  readonly where: string;
  load(): RuntimeOverlay;
  save(ov: RuntimeOverlay): void;
  /** Move an unreadable store out of the way (kept for the operator); where it went, or null. */
  setAside(): string | null;
}

export class MemoryRuntimeStore implements RuntimeStore {
  readonly where = '<memory>';
  saves = 0;
  constructor(private ov: RuntimeOverlay = EMPTY_OVERLAY) {}
  load(): RuntimeOverlay {
    return this.ov;
  }
  save(ov: RuntimeOverlay): void {
    this.ov = ov;
    this.saves++;
  }
  setAside(): string | null {
    this.ov = EMPTY_OVERLAY;
    return null;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Structural check of a saved overlay; throws E_RUNTIME_STATE naming the file and field. */
export function parseOverlay(text: string, where: string): RuntimeOverlay {
  const bad = (why: string): FulcrumError => new FulcrumError(RuntimeErrorCode.BAD_STATE,
    `${where}: ${why}; fix or remove the file (it holds the runtime changes made with fulcrum adm or the API)`);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err: unknown) {
    throw bad(`not JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (!isObject(v) || v['version'] !== 1) throw bad('not a version 1 runtime overlay');
  for (const field of ['services', 'servers', 'drains'] as const) {
    const list = v[field];
    if (!Array.isArray(list)) throw bad(`"${field}" is not a list`);
    list.forEach((e: unknown, i) => {
      if (!isObject(e)) throw bad(`${field}[${i}] is not an object`);
      if (field !== 'drains' && !['added', 'edited', 'deleted'].includes(String(e['state']))) throw bad(`${field}[${i}].state is not added, edited or deleted`);
      if (field !== 'services' && (typeof e['service'] !== 'string' || (field === 'servers' ? typeof e['key'] : typeof e['server']) !== 'string')) {
        throw bad(`${field}[${i}] does not name its service and server`);
      }
      if (field === 'drains' && (typeof e['deadline'] !== 'number' || typeof e['started'] !== 'number')) throw bad(`${field}[${i}] has no deadline`);
      if (field === 'drains' && e['weight'] !== undefined && !(Number.isInteger(e['weight']) && (e['weight'] as number) >= 0)) throw bad(`${field}[${i}].weight is not a weight`);
    });
  }
  const t = v['timeouts'];
  if (!isObject(t) || !['tcp', 'tcpfin', 'udp'].every((k) => Number.isInteger(t[k]) && (t[k] as number) >= 0)) throw bad('"timeouts" is not {tcp, tcpfin, udp}');
  return v as unknown as RuntimeOverlay;
}

export class FileRuntimeStore implements RuntimeStore {
  constructor(readonly where: string) {}

  load(): RuntimeOverlay {
    let text: string;
    try {
      text = readFileSync(this.where, 'utf8');
    } catch (err: unknown) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return EMPTY_OVERLAY;
      throw new FulcrumError(RuntimeErrorCode.BAD_STATE, `${this.where}: ${err instanceof Error ? err.message : String(err)}`);
    }
    return parseOverlay(text, this.where);
  }

  setAside(): string | null {
    const to = `${this.where}.rejected-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    try {
      renameSync(this.where, to);
      return to;
    } catch {
      return null;
    }
  }

  save(ov: RuntimeOverlay): void {
    mkdirSync(dirname(this.where), { recursive: true, mode: 0o700 });
    const tmp = `${this.where}.${process.pid}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, `${JSON.stringify(ov, null, 2)}\n`);
      fsyncSync(fd);
    } catch (err: unknown) {
      closeSync(fd);
      rmSync(tmp, { force: true });
      throw err;
    }
    closeSync(fd);
    renameSync(tmp, this.where);
    // The rename is durable only once the directory entry is: fsync the directory too.
    const dir = openSync(dirname(this.where), 'r');
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
  }
}
