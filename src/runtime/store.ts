/**
 * Where the runtime overlay is kept between changes, reloads and restarts: a JSON file and
 * its journal, or memory for tests.
 *
 * A save appends the whole overlay as one line to `<file>.journal` and flushes it
 * (fdatasync): one flush, the only wait, before the change is acknowledged. `<file>`
 * itself, the copy an operator reads, is written afresh (temporary file, rename) without
 * waiting for the disk, FILE_DELAY_MS after a save — once for a burst of saves — and when
 * the store closes; `load` (and so `fulcrum run`) reads the journal first, so the file
 * lagging a save by that much is never what a restart sees. Which one is the truth after a crash:
 *   - the journal's last complete line when the journal has one (a torn last line is a
 *     save that was never acknowledged, and is ignored);
 *   - else the file, which was made durable (flushed, renamed, directory flushed) before
 *     the journal was last emptied.
 * The first save after a start, and every save once the journal has grown past a bound,
 * makes the file durable that way and empties the journal (compaction): a crash at any
 * point leaves the old or the new overlay, never half of one, and an acknowledged save
 * survives power loss.
 *
 * Why not flush the file on every save, as before: the temporary file's flush, the rename
 * and the directory's flush are two commits of the filesystem's journal per change. On the
 * project's VM (ext4) a save went from p50 0.70–1.59 ms that way to 0.40–0.92 ms this way,
 * the two interleaved (docs/benchmarks.md), and the save is the largest part of a change.
 */
import {
  closeSync, fdatasync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { errorCode, errorMessage, FulcrumError } from '../errors/index.js';
import { EMPTY_OVERLAY, type RuntimeOverlay } from './overlay.js';

export const RuntimeErrorCode = {
  /** The saved overlay cannot be read back (not JSON, or not an overlay). */
  BAD_STATE: 'E_RUNTIME_STATE',
  /** A save wrote less than it had to (a full disk). */
  SAVE: 'E_RUNTIME_SAVE',
} as const;

export interface RuntimeStore {
  /** Where it is kept, for messages. */
  readonly where: string;
  load(): RuntimeOverlay;
  /**
   * Make `ov` the saved overlay; resolves once it would survive a crash. One save at a
   * time: the caller waits for one before it starts the next.
   */
  save(ov: RuntimeOverlay): Promise<void>;
  /** Move an unreadable store out of the way (kept for the operator); where it went, or null. */
  setAside(): string | null;
  /** Release what the store holds open (the daemon stopped). */
  close?(): void;
}

export class MemoryRuntimeStore implements RuntimeStore {
  readonly where = '<memory>';
  saves = 0;
  constructor(private ov: RuntimeOverlay = EMPTY_OVERLAY) {}
  load(): RuntimeOverlay {
    return this.ov;
  }
  save(ov: RuntimeOverlay): Promise<void> {
    this.ov = ov;
    this.saves++;
    return Promise.resolve();
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

/** Compact once the journal holds this many bytes. */
const COMPACT_BYTES = 1 << 20;

/**
 * How long after a save the operator's copy is rewritten. Its temporary file, write and
 * rename cost more than the journal's flush on the project's VM (0.4 ms against 0.3 ms a
 * save, docs/benchmarks.md), and none of it is needed to acknowledge a change.
 */
export const FILE_DELAY_MS = 100;

function readIfAny(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch (err: unknown) {
    if (errorCode(err) === 'ENOENT') return null;
    throw new FulcrumError(RuntimeErrorCode.BAD_STATE, `${path}: ${errorMessage(err)}`, { cause: err });
  }
}

export class FileRuntimeStore implements RuntimeStore {
  readonly journal: string;
  /** The journal, open for appending, once this store has compacted (see the file comment). */
  private fd: number | null = null;
  private journalBytes = 0;
  /** The overlay the operator's copy still has to show, and the timer that writes it. */
  private due: RuntimeOverlay | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  /** Journal flushes under way, and whether the store was closed (it closes after them). */
  private flushing = 0;
  private closed = false;

  constructor(readonly where: string, private readonly compactBytes = COMPACT_BYTES) {
    this.journal = `${where}.journal`;
  }

  load(): RuntimeOverlay {
    const j = readIfAny(this.journal);
    if (j !== null) {
      // Only complete lines count: a line without its newline is a save cut short.
      const lines = j.slice(0, j.lastIndexOf('\n') + 1).split('\n');
      lines.pop();
      const last = lines.length;
      const line = lines[last - 1];
      if (line !== undefined) return parseOverlay(line, `${this.journal}:${last}`);
    }
    const text = readIfAny(this.where);
    return text === null ? EMPTY_OVERLAY : parseOverlay(text, this.where);
  }

  setAside(): string | null {
    const to = `${this.where}.rejected-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    this.cancelFile();
    this.closeJournal();
    let moved: string | null = null;
    for (const [from, dest] of [[this.where, to], [this.journal, `${to}.journal`]] as const) {
      try {
        renameSync(from, dest);
        moved ??= dest;
      } catch {
        // Not there (or not movable): nothing to keep aside from it.
      }
    }
    return moved;
  }

  async save(ov: RuntimeOverlay): Promise<void> {
    if (this.fd === null || this.journalBytes >= this.compactBytes) {
      this.compact(ov);
      return;
    }
    const line = Buffer.from(`${JSON.stringify(ov)}\n`);
    const fd = this.fd;
    const at = this.journalBytes;
    try {
      const n = writeSync(fd, line);
      // A short write (a full disk) would leave a line that a later one completes wrongly.
      if (n !== line.length) throw new FulcrumError(RuntimeErrorCode.SAVE, `${this.journal}: wrote ${n} of ${line.length} bytes`);
      this.journalBytes += n;
      // The flush waits in libuv's thread pool: the event loop goes on meanwhile (the
      // daemon applies the change to the data plane while the disk takes it).
      this.flushing++;
      try {
        await new Promise<void>((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
      } finally {
        this.flushing--;
        // Closed meanwhile: the descriptor was kept open for this flush.
        if (this.closed && this.flushing === 0) this.closeJournal();
      }
    } catch (err: unknown) {
      // A failed append may have left part of a line: cut it off, and compact next time.
      try {
        ftruncateSync(fd, at);
      } catch {
        // The next save compacts anyway.
      }
      if (this.fd === fd) this.closeJournal();
      throw err;
    }
    // The file an operator reads: soon, not flushed (the journal is the durable copy).
    this.due = ov;
    this.timer ??= setTimeout(() => this.writeCopy(), FILE_DELAY_MS);
    this.timer.unref();
  }

  /** Write the operator's copy now if a save is not in it yet. */
  writeCopy(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const ov = this.due;
    if (ov === null) return;
    this.due = null;
    try {
      this.writeFile(ov, false);
    } catch {
      // The journal holds the change; the next compaction writes the file.
    }
  }

  private cancelFile(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.due = null;
  }

  /** Make `ov` the durable file, then empty the journal and keep it open for appending. */
  private compact(ov: RuntimeOverlay): void {
    this.cancelFile();
    this.writeFile(ov, true);
    const opened = this.fd === null;
    const fd = this.fd ?? openSync(this.journal, 'a', 0o600);
    try {
      ftruncateSync(fd, 0);
      fsyncSync(fd);
      // A journal made just now is durable only once its directory entry is.
      if (opened) this.syncDir();
    } catch (err: unknown) {
      if (opened) closeSync(fd);
      throw err;
    }
    this.fd = fd;
    this.journalBytes = 0;
  }

  private writeFile(ov: RuntimeOverlay, durable: boolean): void {
    mkdirSync(dirname(this.where), { recursive: true, mode: 0o700 });
    const tmp = `${this.where}.${process.pid}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, `${JSON.stringify(ov, null, 2)}\n`);
      if (durable) fsyncSync(fd);
    } catch (err: unknown) {
      closeSync(fd);
      rmSync(tmp, { force: true });
      throw err;
    }
    closeSync(fd);
    renameSync(tmp, this.where);
    // The rename is durable only once the directory entry is: flush the directory too.
    if (durable) this.syncDir();
  }

  private syncDir(): void {
    const dir = openSync(dirname(this.where), 'r');
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
  }

  private closeJournal(): void {
    if (this.fd === null) return;
    try {
      closeSync(this.fd);
    } catch {
      // Already gone.
    }
    this.fd = null;
  }

  /** Bring the operator's copy up to date and close the journal (the daemon stops). */
  close(): void {
    this.writeCopy();
    this.closed = true;
    if (this.flushing === 0) this.closeJournal();
  }
}
