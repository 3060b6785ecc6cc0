import test from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from './clock.js';
import { FakeChecker } from './fake.js';
import { CheckRunner, initialCheckState, ProbeAbort, stepCheck, type CheckReport, type RunnerTiming } from './runner.js';
import { checkerCompliance } from './compliance.js';
import { ProbeErrorCode, type ProbeContext, type ProbeResult } from './types.js';

const T: RunnerTiming = { delayLoopMs: 6000, warmupMs: 0, connectTimeoutMs: 5000, retry: 2, delayBeforeRetryMs: 1000, alpha: false, rise: 1 };

test('stepCheck: an up checker absorbs `retry` failures delay_before_retry apart, then goes down', () => {
  let s = initialCheckState(T);
  assert.equal(s.up, true);
  const seq: string[] = [];
  for (const ok of [false, false, false, false, true]) {
    const r = stepCheck(s, ok, T);
    s = r.state;
    seq.push(`${r.transition ?? '-'}/${r.nextMs}${r.retrying ? 'R' : ''}`);
  }
  // retry 2 = 3 failures to fall; while down, failures re-check at delay_loop; one success rises.
  assert.deepEqual(seq, ['-/1000R', '-/1000R', 'down/6000', '-/6000', 'up/6000']);
});

test('stepCheck: a success between failures resets the retry count (keepalived retry_it = 0)', () => {
  let s = initialCheckState(T);
  for (const ok of [false, false, true, false, false]) s = stepCheck(s, ok, T).state;
  assert.equal(s.up, true);
  assert.equal(stepCheck(s, false, T).transition, 'down');
});

test('stepCheck: alpha starts down until the first success; rise holds a flapping server out', () => {
  const alpha = { ...T, alpha: true };
  const s0 = initialCheckState(alpha);
  assert.equal(s0.up, false);
  assert.equal(stepCheck(s0, true, alpha).transition, 'up');

  const rise3 = { ...T, rise: 3, retry: 0 };
  let s = { ...initialCheckState(rise3), up: false };
  const trans: (string | null)[] = [];
  // flapping: ok ok fail ok ok fail … never 3 in a row → stays down
  for (const ok of [true, true, false, true, true, false, true, true]) {
    const r = stepCheck(s, ok, rise3);
    s = r.state;
    trans.push(r.transition);
  }
  assert.ok(trans.every((t) => t === null), 'hysteresis holds the state while flapping');
  assert.equal(s.up, false);
  assert.equal(stepCheck(s, true, rise3).transition, 'up', 'third success in a row');
});

test('CheckRunner on a fake clock: warmup, delay_loop, retries and the time to go down', async () => {
  const clock = new FakeClock();
  clock.randoms = [0.5];
  const c = new FakeChecker();
  const reports: (CheckReport & { at: number })[] = [];
  const r = new CheckRunner(c, { ...T, warmupMs: 4000 }, clock, (rep) => reports.push({ ...rep, at: clock.now() }));
  r.start();
  await clock.advance(1999);
  assert.equal(c.calls, 0, 'warmup: half of 4000 ms');
  await clock.advance(1);
  assert.equal(c.calls, 1);
  await clock.advance(6000);
  assert.equal(c.calls, 2, 'then every delay_loop');
  c.healthy = false;
  const failAt = clock.now();
  await clock.advance(6000 + 1000 + 1000);
  const down = reports.find((x) => x.transition === 'down');
  assert.ok(down, 'went down');
  // first failing probe at failAt + 6000, two retries 1000 ms apart: down 8000 ms after the failure began.
  assert.equal(down.at - failAt, 8000);
  assert.deepEqual(reports.map((x) => x.retrying), [false, false, true, true, false]);
  c.healthy = true;
  await clock.advance(6000);
  assert.equal(reports.at(-1)?.transition, 'up', 'back up at the next delay_loop');
  r.stop();
  assert.equal(c.closed, true);
  const calls = c.calls;
  await clock.advance(60_000);
  assert.equal(c.calls, calls, 'stopped: no more probes');
});

test('CheckRunner: a probe that hangs is cut at connect_timeout and counted as a failure', async () => {
  const clock = new FakeClock();
  let aborted = 0;
  const hanging = {
    type: 'HANG',
    check: (ctx: { signal: AbortSignal }) => new Promise<never>(() => { ctx.signal.addEventListener('abort', () => { aborted++; }); }),
    close: () => undefined,
  };
  const reports: CheckReport[] = [];
  const r = new CheckRunner(hanging, { ...T, retry: 0 }, clock, (rep) => reports.push(rep));
  r.start();
  await clock.advance(5000);
  assert.equal(aborted, 1, 'signal aborted at connect_timeout');
  assert.equal(reports.length, 0, 'the runner gives the checker a grace to clean up');
  await clock.advance(1000);
  assert.equal(reports.length, 1);
  assert.equal(reports[0]?.result.ok, false);
  assert.equal(reports[0]?.transition, 'down');
  r.stop();
});

test('ProbeAbort: callbacks run once at the abort, a removed one never, a throwing one does not stop the rest; the signal agrees', () => {
  const p = new ProbeAbort(500);
  assert.equal(p.timeoutMs, 500);
  assert.equal(p.hook, p);
  const seen: string[] = [];
  p.onAbort(() => seen.push('a'));
  const offB = p.onAbort(() => seen.push('b'));
  p.onAbort(() => { throw new Error('a broken listener'); });
  p.onAbort(() => seen.push('c'));
  offB();
  offB();
  assert.equal(p.aborted, false);
  const signal = p.signal;
  assert.equal(signal.aborted, false);
  p.abort();
  p.abort();
  assert.deepEqual(seen, ['a', 'c']);
  assert.equal(p.aborted, true);
  assert.equal(signal.aborted, true, 'a signal read before the abort is aborted with it');
  assert.equal(p.onAbort(() => seen.push('late'))(), undefined);
  assert.deepEqual(seen, ['a', 'c'], 'registered after the abort: never called (as an AbortSignal listener)');
  const q = new ProbeAbort(1);
  q.abort();
  assert.equal(q.signal.aborted, true, 'a signal first read after the abort is born aborted');
});

test('CheckRunner: a checker listening through the hook is aborted at connect_timeout, and no signal is built for it', async () => {
  const clock = new FakeClock();
  let aborted = 0;
  let ctxSeen: ProbeAbort | null = null;
  const hooked = {
    type: 'HOOKED',
    check: (ctx: ProbeContext) => new Promise<ProbeResult>((resolve) => {
      assert.ok(ctx instanceof ProbeAbort);
      ctxSeen = ctx;
      ctx.hook?.onAbort(() => {
        aborted++;
        resolve({ ok: false, latencyMs: 5000, code: ProbeErrorCode.TIMEOUT, detail: 'timed out' });
      });
    }),
    close: () => undefined,
  };
  const reports: CheckReport[] = [];
  const r = new CheckRunner(hooked, { ...T, retry: 0 }, clock, (rep) => reports.push(rep));
  r.start();
  await clock.advance(5000);
  assert.equal(aborted, 1);
  assert.equal(reports.length, 1, 'answered at the deadline, not after the grace');
  assert.equal(reports[0]?.result.code, ProbeErrorCode.TIMEOUT);
  assert.equal((ctxSeen as unknown as { ac: unknown }).ac, null, 'no AbortController was made');
  r.stop();
});

test('CheckRunner: a checker that throws or rejects is a LOCAL failure with its message, and the schedule goes on', async () => {
  const clock = new FakeClock();
  let n = 0;
  const broken = {
    type: 'BROKEN',
    check: (): Promise<ProbeResult> => {
      n++;
      if (n === 1) throw new Error('thrown at once');
      return Promise.reject(new Error('rejected later'));
    },
    close: () => undefined,
  };
  const reports: CheckReport[] = [];
  const r = new CheckRunner(broken, { ...T, retry: 1 }, clock, (rep) => reports.push(rep));
  r.start();
  await clock.advance(0);
  await clock.advance(1000);
  assert.deepEqual(reports.map((x) => [x.result.ok, x.result.code, x.result.detail, x.transition]), [
    [false, ProbeErrorCode.LOCAL, 'thrown at once', null],
    [false, ProbeErrorCode.LOCAL, 'rejected later', 'down'],
  ]);
  r.stop();
});

// The fake runs the same suite as the real checkers: port 1 = a peer that never answers.
checkerCompliance('FakeChecker', {
  build: (t) => {
    const f = new FakeChecker();
    if (t.port === 1) f.delayMs = 60_000;
    else f.healthy = false;
    return f;
  },
  silent: () => Promise.resolve({ target: { family: 'inet', address: '127.0.0.1', port: 1 }, close: () => undefined }),
  refused: () => Promise.resolve({ family: 'inet', address: '127.0.0.1', port: 2 }),
});
