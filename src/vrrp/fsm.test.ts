import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initialState, masterDownMs, skewMs, step, type FsmConfig, type FsmEvent, type FsmState } from './fsm.js';

const v3: FsmConfig = { version: 3, intervalCs: 100, nopreempt: false, preemptDelayMs: 0, address: '10.0.0.2' };

/** Run events in order; returns the final state and every effect, stamped with its time. */
function run(c: FsmConfig, s: FsmState, evs: [number, FsmEvent][]): { s: FsmState; log: string[] } {
  const log: string[] = [];
  for (const [t, e] of evs) {
    const r = step(c, s, e, t);
    s = r.state;
    for (const x of r.effects) log.push(x.kind === 'advert' ? `${t} advert ${x.priority}` : `${t} ${x.from}->${x.to} ${x.reason}`);
  }
  return { s, log };
}

test('timers: Master_Down_Interval = 3·interval + skew (v3: skew scales with the interval; v2: (256−p)/256 s)', () => {
  assert.equal(skewMs(v3, 100, 100), (156 * 1000) / 256);
  assert.equal(masterDownMs(v3, 100, 100), 3000 + (156 * 1000) / 256);
  assert.equal(masterDownMs(v3, 200, 10), 300 + (56 * 100) / 256);
  const v2: FsmConfig = { ...v3, version: 2, intervalCs: 300 };
  assert.equal(masterDownMs(v2, 100, 300), 9000 + (156 * 1000) / 256);
});

test('startup: a backup takes over after Master_Down_Interval; the owner at once', () => {
  const { s, log } = run(v3, initialState(100), [[0, { type: 'startup' }]]);
  assert.deepEqual(log, ['0 INIT->BACKUP startup']);
  assert.equal(s.timerAt, 3609.375);
  const early = run(v3, s, [[3609, { type: 'timer' }]]);
  assert.equal(early.s.name, 'BACKUP');
  const t = run(v3, s, [[3609.375, { type: 'timer' }], [4609.375, { type: 'timer' }]]);
  assert.deepEqual(t.log, ['3609.375 advert 100', '3609.375 BACKUP->MASTER master-down', '4609.375 advert 100']);
  const owner = run(v3, initialState(255), [[0, { type: 'startup' }]]);
  assert.deepEqual(owner.log, ['0 advert 255', '0 INIT->MASTER owner']);
});

test('backup: adverts restart the timer; priority 0 shortens it to the skew; v3 learns the master\'s interval', () => {
  const b = run(v3, initialState(100), [[0, { type: 'startup' }], [500, { type: 'advert', priority: 150, intervalCs: 50, src: '10.0.0.1' }]]);
  assert.equal(b.s.timerAt, 500 + 1500 + (156 * 500) / 256);
  assert.equal(b.s.masterIntervalCs, 50);
  assert.equal(b.s.masterAddress, '10.0.0.1');
  const z = run(v3, b.s, [[700, { type: 'advert', priority: 0, intervalCs: 50, src: '10.0.0.1' }]]);
  assert.equal(z.s.timerAt, 700 + (156 * 500) / 256);
  // v2 keeps its own interval.
  const v2 = run({ ...v3, version: 2 }, initialState(100), [[0, { type: 'startup' }], [10, { type: 'advert', priority: 150, intervalCs: 200, src: '10.0.0.1' }]]);
  assert.equal(v2.s.masterIntervalCs, 100);
});

test('preemption: a higher-priority backup ignores a lower master and takes over; nopreempt obeys it', () => {
  const lower = { type: 'advert' as const, priority: 50, intervalCs: 100, src: '10.0.0.1' };
  const pre = run(v3, initialState(100), [[0, { type: 'startup' }], [1000, lower], [2000, lower]]);
  assert.equal(pre.s.timerAt, 3609.375, 'lower adverts do not restart the timer');
  const no = run({ ...v3, nopreempt: true }, initialState(100), [[0, { type: 'startup' }], [1000, lower], [2000, lower]]);
  assert.equal(no.s.timerAt, 2000 + 3609.375);
  // Equal priority: a backup obeys whatever the address (the tie-break is between masters).
  const eq = run(v3, initialState(100), [[0, { type: 'startup' }], [1000, { ...lower, priority: 100 }]]);
  assert.equal(eq.s.timerAt, 1000 + 3609.375);
});

test('preempt_delay: lower-priority masters are obeyed until the delay has passed', () => {
  const c = { ...v3, preemptDelayMs: 5000 };
  const lower = { type: 'advert' as const, priority: 50, intervalCs: 100, src: '10.0.0.1' };
  const a = run(c, initialState(100), [[0, { type: 'startup' }], [1000, lower], [4000, lower]]);
  assert.equal(a.s.timerAt, 4000 + 3609.375);
  const b = run(c, a.s, [[6000, lower], [7609.375, { type: 'timer' }]]);
  assert.deepEqual(b.log, ['7609.375 advert 100', '7609.375 BACKUP->MASTER master-down']);
});

test('master: yields to higher priority and to equal priority from a higher address; answers lower ones', () => {
  const m = run(v3, initialState(100), [[0, { type: 'startup' }], [3609.375, { type: 'timer' }]]).s;
  assert.equal(m.name, 'MASTER');
  const hi = run(v3, m, [[4000, { type: 'advert', priority: 101, intervalCs: 100, src: '10.0.0.1' }]]);
  assert.deepEqual(hi.log, ['4000 MASTER->BACKUP higher-priority']);
  const eqHigher = run(v3, m, [[4000, { type: 'advert', priority: 100, intervalCs: 100, src: '10.0.0.3' }]]);
  assert.deepEqual(eqHigher.log, ['4000 MASTER->BACKUP equal-priority-higher-address']);
  const eqLower = run(v3, m, [[4000, { type: 'advert', priority: 100, intervalCs: 100, src: '10.0.0.1' }]]);
  assert.deepEqual(eqLower.log, ['4000 advert 100']);
  assert.equal(eqLower.s.name, 'MASTER');
  const zero = run(v3, m, [[4000, { type: 'advert', priority: 0, intervalCs: 100, src: '10.0.0.1' }]]);
  assert.deepEqual(zero.log, ['4000 advert 100']);
  // Numeric, not textual, address order: 10.0.0.10 > 10.0.0.9.
  const c9 = { ...v3, address: '10.0.0.9' };
  const m9 = run(c9, initialState(100), [[0, { type: 'startup' }], [3609.375, { type: 'timer' }]]).s;
  assert.equal(run(c9, m9, [[4000, { type: 'advert', priority: 100, intervalCs: 100, src: '10.0.0.10' }]]).s.name, 'BACKUP');
});

test('shutdown: a master says goodbye with priority 0; fault leaves and returns through BACKUP', () => {
  const m = run(v3, initialState(100), [[0, { type: 'startup' }], [3609.375, { type: 'timer' }]]).s;
  assert.deepEqual(run(v3, m, [[5000, { type: 'shutdown' }]]).log, ['5000 advert 0', '5000 MASTER->INIT shutdown']);
  const f = run(v3, m, [[5000, { type: 'fault', faulty: true }]]);
  assert.deepEqual(f.log, ['5000 advert 0', '5000 MASTER->FAULT fault']);
  assert.equal(f.s.timerAt, null);
  assert.equal(run(v3, f.s, [[6000, { type: 'advert', priority: 50, intervalCs: 100, src: '10.0.0.1' }], [9000, { type: 'timer' }]]).s.name, 'FAULT');
  const back = run(v3, f.s, [[7000, { type: 'fault', faulty: false }]]);
  assert.deepEqual(back.log, ['7000 FAULT->BACKUP fault-cleared']);
  assert.equal(back.s.timerAt, 7000 + 3609.375);
  // Faulty before startup: straight to FAULT.
  const pre = run(v3, initialState(100, true), [[0, { type: 'startup' }]]);
  assert.deepEqual(pre.log, ['0 INIT->FAULT fault']);
});

test('priority changes travel in the next advert; sync moves', () => {
  const m = run(v3, initialState(100), [[0, { type: 'startup' }], [3609.375, { type: 'timer' }]]).s;
  const p = run(v3, m, [[4000, { type: 'priority', priority: 80 }], [4609.375, { type: 'timer' }]]);
  assert.deepEqual(p.log, ['4609.375 advert 80']);
  const b = run(v3, initialState(100), [[0, { type: 'startup' }], [10, { type: 'sync', to: 'MASTER' }]]);
  assert.deepEqual(b.log, ['0 INIT->BACKUP startup', '10 advert 100', '10 BACKUP->MASTER sync-group']);
  const back = run(v3, b.s, [[20, { type: 'sync', to: 'BACKUP' }]]);
  assert.deepEqual(back.log, ['20 MASTER->BACKUP sync-group']);
});
