/**
 * The process's file-descriptor limit. A director's descriptors are its connections: the
 * common soft limit of 1,024 runs out long before the hard limit does, so `fulcrum run`
 * raises the soft limit to the hard one at start (as HAProxy and nginx do), and says so.
 */
import fs from 'node:fs';
import { loadLibc, RLIMIT_NOFILE } from './libc.js';

export interface FileLimit {
  readonly soft: number;
  readonly hard: number;
}

/** The current limit, or null where it cannot be read. */
export function fileLimit(): FileLimit | null {
  try {
    const b = Buffer.alloc(16);
    if (loadLibc().getrlimit(RLIMIT_NOFILE, b) !== 0) return null;
    return { soft: Number(b.readBigUInt64LE(0)), hard: Number(b.readBigUInt64LE(8)) };
  } catch {
    return null;
  }
}

let recent: { readonly at: number; readonly limit: FileLimit | null } | null = null;

/**
 * `fileLimit()` read again at most once a second: for per-connection paths (a relay asking
 * whether its pipes still fit their share), where a getrlimit and a buffer per call would be
 * waste. `raiseFileLimit` forgets what it holds; an operator's `prlimit` is seen within 1 s.
 */
export function recentFileLimit(now: number = Date.now()): FileLimit | null {
  if (recent === null || now - recent.at >= 1000 || now < recent.at) recent = { at: now, limit: fileLimit() };
  return recent.limit;
}

/** Raise the soft limit to the hard one (capped at `cap`); the limit before and after, or null. */
export function raiseFileLimit(cap = 1 << 20): { before: FileLimit; after: FileLimit } | null {
  const before = fileLimit();
  if (!before) return null;
  const want = Math.min(before.hard, cap);
  if (want <= before.soft) return { before, after: before };
  recent = null;
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(BigInt(want), 0);
  b.writeBigUInt64LE(BigInt(before.hard), 8);
  if (loadLibc().setrlimit(RLIMIT_NOFILE, b) !== 0) return { before, after: before };
  return { before, after: fileLimit() ?? before };
}

/**
 * Descriptors this process has open now (/proc/self/fd); Infinity when not even that can be
 * opened for want of descriptors (EMFILE/ENFILE: exhausted); null where it cannot be read.
 */
export function openFileCount(): number | null {
  try {
    return fs.readdirSync('/proc/self/fd').length;
  } catch (err: unknown) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'EMFILE' || code === 'ENFILE' ? Infinity : null;
  }
}

/**
 * Watch descriptor use: libuv answers EMFILE on accept by accepting and closing the pending
 * connections itself (its "EMFILE trick") and tells Node nothing, so running out is seen
 * here instead — `onExhausted(open, limit)` whenever use is within `reserve` of the soft
 * limit. Checked every second while above half the limit, every 5 s below. Returns stop().
 */
export function watchFileLimit(onExhausted: (open: number, limit: number) => void, reserve = 16): () => void {
  let timer: NodeJS.Timeout | null = null;
  const check = (): void => {
    const lim = fileLimit();
    const open = openFileCount();
    let next = 5000;
    if (lim && open !== null) {
      if (open >= lim.soft - reserve) onExhausted(Math.min(open, lim.soft), lim.soft);
      if (open * 2 >= lim.soft) next = 1000;
    }
    timer = setTimeout(check, next);
    timer.unref();
  };
  timer = setTimeout(check, 1000);
  timer.unref();
  return () => { if (timer) clearTimeout(timer); };
}
