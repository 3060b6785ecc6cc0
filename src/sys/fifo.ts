/**
 * keepalived's notify FIFOs: a named pipe that notify events are written to, one line each
 * (`INSTANCE "VI_1" MASTER 100`), in order — what an operator's reader (keepalived's
 * sample_notify_fifo.sh, a monitoring agent) consumes instead of forking a script per event.
 * As keepalived does, the FIFO is created (mode 0644) when absent and opened read-write and
 * non-blocking, so opening never waits for a reader and a write never stalls the caller: a
 * line that does not fit in a full pipe is dropped and counted.
 */
import fs from 'node:fs';
import { loadLibc } from './libc.js';
import { SysError, SysErrorCode } from './errors.js';

export interface NotifyFifo {
  readonly path: string;
  /** Write one line (the newline is added); false when the pipe was full and it was dropped. */
  write(line: string): boolean;
  /** Lines dropped for a full pipe. */
  readonly dropped: number;
  close(): void;
}

export type FifoOpener = (path: string) => NotifyFifo;

const EEXIST = 17;

/** Create the FIFO at `path` if absent. Throws SysError when it cannot, or when something else is there. */
export function ensureFifo(path: string): void {
  let st: fs.Stats | null = null;
  try {
    st = fs.lstatSync(path);
  } catch {
    st = null;
  }
  if (st === null) {
    const libc = loadLibc();
    if (libc.mkfifo(path, 0o644) !== 0) {
      const errno = libc.errno();
      if (errno !== EEXIST) throw new SysError(SysErrorCode.FAILED, `cannot create the notify FIFO ${path}: errno ${errno}`, errno);
    }
  } else if (!st.isFIFO()) {
    throw new SysError(SysErrorCode.FAILED, `${path} exists and is not a FIFO: not writing notify events to it`);
  }
}

/** Create (if absent) and open the FIFO at `path`. Throws SysError when it cannot, or when something else is there. */
export function openNotifyFifo(path: string): NotifyFifo {
  ensureFifo(path);
  const { O_RDWR, O_NONBLOCK, O_NOFOLLOW } = fs.constants;
  let fd: number;
  try {
    fd = fs.openSync(path, O_RDWR | O_NONBLOCK | O_NOFOLLOW);
  } catch (err: unknown) {
    throw new SysError(SysErrorCode.FAILED, `cannot open the notify FIFO ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  let dropped = 0;
  let open = true;
  return {
    path,
    get dropped() { return dropped; },
    write(line) {
      if (!open) return false;
      try {
        fs.writeSync(fd, `${line}\n`);
        return true;
      } catch {
        // EAGAIN: the pipe is full (nobody reads). Never wait for a reader.
        dropped++;
        return false;
      }
    },
    close() {
      if (!open) return;
      open = false;
      fs.closeSync(fd);
    },
  };
}
