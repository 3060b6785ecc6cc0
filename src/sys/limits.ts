/**
 * The process's file-descriptor limit. A director's descriptors are its connections: the
 * common soft limit of 1,024 runs out long before the hard limit does, so `fulcrum run`
 * raises the soft limit to the hard one at start (as HAProxy and nginx do), and says so.
 */
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

/** Raise the soft limit to the hard one (capped at `cap`); the limit before and after, or null. */
export function raiseFileLimit(cap = 1 << 20): { before: FileLimit; after: FileLimit } | null {
  const before = fileLimit();
  if (!before) return null;
  const want = Math.min(before.hard, cap);
  if (want <= before.soft) return { before, after: before };
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(BigInt(want), 0);
  b.writeBigUInt64LE(BigInt(before.hard), 8);
  if (loadLibc().setrlimit(RLIMIT_NOFILE, b) !== 0) return { before, after: before };
  return { before, after: fileLimit() ?? before };
}
