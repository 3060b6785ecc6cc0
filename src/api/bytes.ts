/**
 * Reusable output buffers for large responses (/metrics at thousands of real servers is
 * megabytes). Encoding a megabyte-sized string into a fresh Buffer costs more than building
 * it — the new memory is faulted in page by page on every scrape — so the text is written
 * piece by piece into a buffer kept from one response to the next. A buffer is lent to one
 * response at a time and comes back when the response is done; at most `keep` idle
 * buffers are kept. Pure apart from memory.
 */
export class ByteWriter {
  /** Characters of text a writer joins before it encodes them. */
  private static readonly PENDING_MAX = 8192;
  private buf: Buffer;
  private off = 0;
  /**
   * Text not encoded yet. A scrape writes ~25,000 short lines; encoding each on its own is
   * a call into the runtime per line (~140 ns), so they are joined (V8 concatenates by
   * reference) and encoded ~8 KiB at a time: 5.4 → 3.3 ms for the per-server families at
   * 1,000 real servers (docs/benchmarks.md, 2026-12-03).
   */
  private pending = '';

  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  /** Append `s` as UTF-8. */
  write(s: string): void {
    this.pending += s;
    if (this.pending.length >= ByteWriter.PENDING_MAX) this.flush();
  }

  /** The bytes written so far (a view: valid until the writer is reset or reused). */
  bytes(): Buffer {
    this.flush();
    return this.buf.subarray(0, this.off);
  }

  get capacity(): number {
    return this.buf.length;
  }

  reset(): void {
    this.off = 0;
    this.pending = '';
  }

  private flush(): void {
    const s = this.pending;
    if (s.length === 0) return;
    this.pending = '';
    // A UTF-16 code unit is at most 3 bytes of UTF-8.
    if (this.off + s.length * 3 > this.buf.length) this.grow(this.off + s.length * 3);
    this.off += this.buf.write(s, this.off);
  }

  private grow(need: number): void {
    const next = Buffer.allocUnsafe(Math.max(need, this.buf.length * 2));
    this.buf.copy(next, 0, 0, this.off);
    this.buf = next;
  }
}

export class WriterPool {
  private readonly idle: ByteWriter[] = [];

  constructor(private readonly size = 1 << 16, private readonly keep = 2) {}

  acquire(): ByteWriter {
    const w = this.idle.pop() ?? new ByteWriter(this.size);
    w.reset();
    return w;
  }

  release(w: ByteWriter): void {
    if (this.idle.length < this.keep) this.idle.push(w);
  }

  /** Idle writers now (tests). */
  get available(): number {
    return this.idle.length;
  }
}
