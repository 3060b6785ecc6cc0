/**
 * Reusable output buffers for large responses (/metrics at thousands of real servers is
 * megabytes). Encoding a megabyte-sized string into a fresh Buffer costs more than building
 * it — the new memory is faulted in page by page on every scrape — so the text is written
 * piece by piece into a buffer kept from one response to the next. A buffer is lent to one
 * response at a time and comes back when the response is done; at most `keep` idle
 * buffers are kept. Pure apart from memory.
 */
export class ByteWriter {
  private buf: Buffer;
  private off = 0;

  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  /** Append `s` as UTF-8. */
  write(s: string): void {
    // A UTF-16 code unit is at most 3 bytes of UTF-8.
    if (this.off + s.length * 3 > this.buf.length) this.grow(this.off + s.length * 3);
    this.off += this.buf.write(s, this.off);
  }

  /** The bytes written so far (a view: valid until the writer is reset or reused). */
  bytes(): Buffer {
    return this.buf.subarray(0, this.off);
  }

  get capacity(): number {
    return this.buf.length;
  }

  reset(): void {
    this.off = 0;
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
