/**
 * Clocks for the runner: the real one (Node timers, unref'd so checks never keep a
 * process alive) and a fake one driven by the test (`advance`).
 */
import type { Clock } from './types.js';

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimer(fn, ms) {
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref();
    return t;
  },
  cancel(handle) {
    clearTimeout(handle as NodeJS.Timeout);
  },
  random: Math.random,
};

interface FakeTimer {
  readonly id: number;
  readonly at: number;
  readonly fn: () => void;
}

/**
 * A manual clock. `advance(ms)` runs every timer due in order, letting promises settle
 * between timers, so code that awaits a probe and then sets the next timer behaves as it
 * would in real time.
 */
export class FakeClock implements Clock {
  private t = 0;
  private nextId = 1;
  private timers: FakeTimer[] = [];
  /** Values returned by random(), cycled; default 0 (no warmup jitter). */
  randoms: number[] = [0];
  private ri = 0;

  now(): number {
    return this.t;
  }

  setTimer(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.push({ id, at: this.t + Math.max(0, ms), fn });
    return id;
  }

  cancel(handle: unknown): void {
    this.timers = this.timers.filter((x) => x.id !== handle);
  }

  random(): number {
    const r = this.randoms[this.ri % this.randoms.length] ?? 0;
    this.ri++;
    return r;
  }

  get pending(): number {
    return this.timers.length;
  }

  /** Move time forward by `ms`, firing due timers in time order. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await settle();
      let next: FakeTimer | undefined;
      for (const x of this.timers) if (x.at <= end && (next === undefined || x.at < next.at || (x.at === next.at && x.id < next.id))) next = x;
      if (!next) break;
      this.timers = this.timers.filter((x) => x !== next);
      this.t = Math.max(this.t, next.at);
      next.fn();
    }
    this.t = end;
    await settle();
  }
}

/** Let queued promise callbacks run (a few macrotask turns). */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
}
