/**
 * Read buffers for the real-server → client direction (where bulk responses flow).
 *
 * Node's default read path allocates a fresh 64 KiB buffer for every read; a bulk transfer
 * then spends much of its CPU allocating and collecting them. `net.connect({ onread })`
 * lets a socket read into buffers we supply, so steady bulk traffic reuses one buffer per
 * connection (measured: ~40% less proxy CPU per MiB, docs/benchmarks.md).
 *
 * The catch is a write that cannot complete at once: it keeps a reference to the buffer,
 * which therefore must not be read into again. And an idle connection must not pin 64 KiB.
 * So:
 * - every connection starts on one *shared* buffer, whose bytes are always copied out before
 *   writing (so it is never referenced by a pending write and any socket may read into it);
 * - a read that fills at least half a buffer switches the connection to a buffer of its own
 *   from the pool; a short read hands it back and returns to the shared one;
 * - if a write from the connection's own buffer stays pending, that buffer is abandoned to
 *   the garbage collector (never reused) and a new one is taken.
 */
export const READ_BUFFER_SIZE = 64 * 1024;

export class ReadBufferPool {
  readonly shared = Buffer.allocUnsafeSlow(READ_BUFFER_SIZE);
  private readonly free: Buffer[] = [];

  constructor(private readonly maxFree = 256) {}

  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(READ_BUFFER_SIZE);
  }

  /** Return a buffer no pending write references. */
  give(b: Buffer): void {
    if (this.free.length < this.maxFree) this.free.push(b);
  }
}
