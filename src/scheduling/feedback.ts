/**
 * Agent weight feedback: turns server-agent load readings into dynamic weights for any
 * weighted scheduler (Equalizer's behaviour; round robin ignores agents). Readings are
 * smoothed (exponentially weighted moving average) and a weight only changes when it moves
 * by at least `minChange` of the configured weight, so one noisy reading does not reshuffle
 * traffic. -1 (unavailable) takes effect at once. Pure: no clock needed, readings are events.
 */
import type { SchedulerName } from '../model/types.js';

export interface FeedbackOptions {
  /** EWMA factor for a new reading, 0 < alpha ≤ 1 (1 = no smoothing). */
  readonly alpha: number;
  /** Minimum change, as a fraction of the configured weight, before a weight update. */
  readonly minChange: number;
}

export const DEFAULT_FEEDBACK: FeedbackOptions = { alpha: 0.3, minChange: 0.1 };

/** Schedulers whose decisions read weights (rr does not; agent reads loads directly). */
const WEIGHTED = new Set<string>(['wrr', 'wlc', 'sed', 'nq', 'lblc', 'lblcr', 'sh', 'mh', 'fo', 'ovf', 'twos', 'lc', 'dh']);

interface Track {
  smoothed: number;
  weight: number;
}

export class AgentWeightFeedback {
  private readonly tracks = new Map<string, Track>();
  constructor(private readonly opts: FeedbackOptions = DEFAULT_FEEDBACK) {
    if (!(opts.alpha > 0 && opts.alpha <= 1)) throw new RangeError('alpha must be in (0, 1]');
  }

  /** Whether a scheduler's decisions read weights, so loads should become weights. */
  static applies(scheduler: SchedulerName): boolean {
    return WEIGHTED.has(scheduler);
  }

  /** The weight a load maps to: linear in spare capacity; saturated (100) takes nothing. */
  static weightFor(base: number, load: number): number {
    if (load < 0 || load >= 100 || base === 0) return 0;
    return Math.max(1, Math.round((base * (100 - load)) / 100));
  }

  /**
   * Record a reading for `key` (configured weight `base`). Returns the new dynamic weight
   * when it should change, or null to leave the current weight alone.
   */
  observe(key: string, base: number, reading: number, scheduler: SchedulerName): number | null {
    if (!WEIGHTED.has(scheduler)) return null;
    const t = this.tracks.get(key);
    if (reading < 0) {
      const prev = t?.weight ?? base;
      this.tracks.set(key, { smoothed: t?.smoothed ?? 100, weight: 0 });
      return prev === 0 ? null : 0;
    }
    const r = Math.min(100, reading);
    const smoothed = t === undefined || t.weight === 0 ? r : this.opts.alpha * r + (1 - this.opts.alpha) * t.smoothed;
    const current = t?.weight ?? base;
    const target = AgentWeightFeedback.weightFor(base, smoothed);
    const threshold = Math.max(1, Math.ceil(this.opts.minChange * base));
    // The first reading sets the dynamic weight outright; later ones must clear the threshold.
    const change = target !== current && (t === undefined || (target === 0) !== (current === 0) || Math.abs(target - current) >= threshold);
    this.tracks.set(key, { smoothed, weight: change ? target : current });
    return change ? target : null;
  }

  forget(key: string): void {
    this.tracks.delete(key);
  }
}
