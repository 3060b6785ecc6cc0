import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TrackProcess } from '../model/types.js';
import { foldProcess, processMatches, type ProcessEntry } from './track.js';

const def = (o: Partial<TrackProcess>): TrackProcess => ({
  name: 'p', process: 'haproxy', params: [], paramMatch: 'none', fullCommand: false, weight: 0, reverse: false,
  quorum: 1, quorumMax: Number.MAX_SAFE_INTEGER, forkDelay: 0, terminateDelay: 0, ...o,
});
const proc = (comm: string, ...argv: string[]): ProcessEntry => ({ comm, cmdline: argv.length > 0 ? argv : null });

test('track_process matching as keepalived compares: the name exactly (not as pgrep\'s regex), or argv[0] and the arguments by param_match', () => {
  assert.equal(processMatches(def({}), proc('haproxy')), true);
  assert.equal(processMatches(def({}), proc('haproxy2')), false, 'exact, not a prefix');
  assert.equal(processMatches(def({ process: 'ssh' }), proc('sshd')), false, 'pgrep ssh would match sshd; this does not');
  const full = def({ process: '/usr/sbin/haproxy', fullCommand: true });
  assert.equal(processMatches(full, proc('haproxy', '/usr/sbin/haproxy', '-f', 'a.cfg')), true);
  assert.equal(processMatches(full, proc('haproxy', 'haproxy', '-f', 'a.cfg')), false, 'argv[0] as written');
  const exact = def({ process: '/usr/sbin/haproxy', fullCommand: true, params: ['-f', 'a.cfg'], paramMatch: 'exact' });
  assert.equal(processMatches(exact, proc('x', '/usr/sbin/haproxy', '-f', 'a.cfg')), true);
  assert.equal(processMatches(exact, proc('x', '/usr/sbin/haproxy', '-f', 'a.cfg', '-D')), false);
  assert.equal(processMatches(def({ ...exact, params: [] }), proc('x', '/usr/sbin/haproxy')), true, 'param_match alone: no arguments');
  assert.equal(processMatches(def({ ...exact, params: [] }), proc('x', '/usr/sbin/haproxy', '-D')), false);
  const partial = def({ ...exact, paramMatch: 'partial' });
  assert.equal(processMatches(partial, proc('x', '/usr/sbin/haproxy', '-f', 'a.cfg', '-D')), true);
  assert.equal(processMatches(partial, proc('x', '/usr/sbin/haproxy', '-f', 'a.cfg.bak')), false);
  const initial = def({ ...exact, paramMatch: 'initial' });
  assert.equal(processMatches(initial, proc('x', '/usr/sbin/haproxy', '-f', 'a.cfg.bak')), true, 'the last one may be longer');
  assert.equal(processMatches(initial, proc('x', '/usr/sbin/haproxy', '-ff', 'a.cfg')), false, 'the others may not');
});

test('track_process quorum: in quorum..quorum_max; fork_delay and terminate_delay must pass before a change counts', () => {
  const d = def({ quorum: 2, quorumMax: 3, forkDelay: 1, terminateDelay: 0.5 });
  let st = { up: false, since: null as number | null };
  st = foldProcess(st, 2, d, 0);
  assert.deepEqual(st, { up: false, since: 0 }, 'gained, waiting for fork_delay');
  st = foldProcess(st, 2, d, 999);
  assert.equal(st.up, false);
  st = foldProcess(st, 3, d, 1000);
  assert.deepEqual(st, { up: true, since: null });
  st = foldProcess(st, 4, d, 1100);
  assert.deepEqual(st, { up: true, since: 1100 }, 'above quorum_max: lost, waiting for terminate_delay');
  st = foldProcess(st, 3, d, 1200);
  assert.deepEqual(st, { up: true, since: null }, 'back in quorum before the delay: nothing happened');
  st = foldProcess(st, 1, d, 2000);
  st = foldProcess(st, 1, d, 2500);
  assert.deepEqual(st, { up: false, since: null });
  // quorum_max 0: up while none runs.
  const none = def({ quorum: 0, quorumMax: 0 });
  assert.equal(foldProcess({ up: false, since: null }, 0, none, 0).up, true);
  assert.equal(foldProcess({ up: true, since: null }, 1, none, 0).up, false);
});
