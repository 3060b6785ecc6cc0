/**
 * The shared compliance suite every Checker implementation runs (and the fake): a probe
 * always resolves — never rejects — and settles by its deadline even when the peer says
 * nothing; a failure carries a code and a detail; close() is idempotent.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import type { Checker, ProbeContext, ProbeResult, ProbeTarget } from './types.js';
import { ProbeAbort } from './runner.js';

export interface CompliancePeer {
  readonly target: ProbeTarget;
  close(): Promise<void> | void;
}

export interface ComplianceHarness {
  /** A checker aimed at `target`. */
  build(target: ProbeTarget): Checker;
  /** A peer that accepts and then says nothing (or a script that hangs). */
  silent(): Promise<CompliancePeer>;
  /** A target where nothing listens. */
  refused(): Promise<ProbeTarget>;
  /** Does the checker call a silent peer healthy? (TCP_CHECK does: it only connects.) */
  readonly silentIsHealthy?: boolean;
}

/** Run one probe with a deadline of `timeoutMs`, then close the checker; reports how long it took. */
export async function probeOnce(c: Checker, timeoutMs = 2000): Promise<ProbeResult & { took: number }> {
  const ac = new AbortController();
  const t = setTimeout(() => ac.abort(), timeoutMs);
  const start = performance.now();
  try {
    const r = await c.check({ signal: ac.signal, timeoutMs });
    return { ...r, took: performance.now() - start };
  } finally {
    clearTimeout(t);
    c.close();
  }
}

/** Milliseconds a probe may overrun its timeout before the suite calls it stuck. */
const SLACK_MS = 400;

function assertShape(r: ProbeResult): void {
  assert.ok(r.latencyMs >= 0, 'latency is measured');
  if (r.ok) assert.equal(r.code, undefined, 'a success has no error code');
  else {
    assert.match(String(r.code), /^E_PROBE_/, 'a failure has a stable code');
    assert.ok(r.detail && r.detail.length > 0, 'a failure says why');
  }
}

export function checkerCompliance(name: string, h: ComplianceHarness): void {
  // Both ways a probe hears its deadline: an AbortSignal (any caller) and the runner's
  // ProbeAbort (a hook; the signal is never built unless the checker reads it).
  const aborts: readonly [string, (timeoutMs: number) => { ctx: ProbeContext; abort: () => void }][] = [
    ['an AbortSignal', (timeoutMs) => { const ac = new AbortController(); return { ctx: { signal: ac.signal, timeoutMs }, abort: () => ac.abort() }; }],
    ["the runner's ProbeAbort", (timeoutMs) => { const p = new ProbeAbort(timeoutMs); return { ctx: p, abort: () => p.abort() }; }],
  ];
  for (const [how, make] of aborts) {
    test(`${name} compliance: a silent peer cannot hold a probe past its deadline (${how})`, async () => {
      const peer = await h.silent();
      const c = h.build(peer.target);
      try {
        const timeoutMs = 300;
        const { ctx, abort } = make(timeoutMs);
        const t = setTimeout(abort, timeoutMs);
        const start = performance.now();
        const r = await c.check(ctx);
        clearTimeout(t);
        const took = performance.now() - start;
        assert.ok(took < timeoutMs + SLACK_MS, `settled in ${Math.round(took)} ms`);
        assertShape(r);
        assert.equal(r.ok, h.silentIsHealthy ?? false);
      } finally {
        c.close();
        c.close();
        await peer.close();
      }
    });
  }

  test(`${name} compliance: nothing listening is a failure with a code, never a throw`, async () => {
    const c = h.build(await h.refused());
    try {
      const ac = new AbortController();
      const t = setTimeout(() => ac.abort(), 1000);
      const r = await c.check({ signal: ac.signal, timeoutMs: 1000 });
      clearTimeout(t);
      assertShape(r);
      assert.equal(r.ok, false);
    } finally {
      c.close();
    }
  });

  test(`${name} compliance: an already-aborted probe settles at once`, async () => {
    const c = h.build(await h.refused());
    const ac = new AbortController();
    ac.abort();
    const r = await c.check({ signal: ac.signal, timeoutMs: 1000 });
    assertShape(r);
    c.close();
  });
}
