/**
 * NftDataPlane against a real kernel, in a network namespace this file creates (root):
 * the DataPlane compliance suite, a refused transaction that leaves kernel and table as
 * they were, deltas (a weight change sends only slots), and taking over a leftover table
 * without losing its connection entries.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { dataPlaneCompliance, serverSpec, serviceSpec } from '../compliance.js';
import { DataPlaneErrorCode } from '../types.js';
import { commandNft, type Nft } from '../../sys/nft.js';
import { commandKernelHost, FakeKernelHost } from '../../sys/kernel-host.js';
import { isRoot } from '../../testing/netns.js';
import { ensureCommand } from '../../testing/peers.js';
import { NftDataPlane } from './plane.js';

const skip = isRoot() ? false : 'needs root (a network namespace and nftables)';
const NS = `fnp-${process.pid}`;

before(() => {
  if (skip) return;
  ensureCommand('nft', 'nftables');
  execFileSync('ip', ['netns', 'add', NS]);
  execFileSync('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
});
after(() => {
  if (!skip) execFileSync('ip', ['netns', 'del', NS]);
});

const nftIn = (): Nft => commandNft({ netns: NS });
const listing = (): string => execFileSync('ip', ['netns', 'exec', NS, 'nft', 'list', 'ruleset'], { encoding: 'utf8' });

/** Records every transaction before passing it on. */
function recording(inner: Nft): Nft & { runs: string[][] } {
  const runs: string[][] = [];
  return { name: inner.name, runs, run: (c) => { runs.push([...c]); return inner.run(c); }, list: (w) => inner.list(w) };
}

if (!skip) {
  let port = 20000;
  dataPlaneCompliance('nftables (NAT)', () => Promise.resolve({
    plane: new NftDataPlane({ nft: nftIn(), host: commandKernelHost({ netns: NS }), pollMs: 60_000 }),
    freePort: () => Promise.resolve(port++),
    address: '127.0.0.1',
    method: 'nat',
  }));
}

test('a transaction the kernel refuses changes nothing and is reported with E_DP_KERNEL', { skip }, async () => {
  const host = new FakeKernelHost();
  host.routes.set('default', 'nodev0'); // a DR egress device that does not exist
  const plane = new NftDataPlane({ nft: nftIn(), host, pollMs: 60_000 });
  try {
    const ok = await plane.apply({ ops: [{ op: 'add-service', service: serviceSpec('10.70.0.1', 80, 'nat') }] });
    assert.deepEqual(ok.failed, []);
    const before = listing();
    const svc = serviceSpec('10.70.0.2', 80, 'dr');
    const r = await plane.apply({ ops: [{ op: 'add-service', service: svc }, { op: 'add-server', service: svc.key, server: serverSpec('10.70.0.9', 80, 1, 'dr') }] });
    assert.deepEqual(r.applied, []);
    assert.deepEqual(r.failed.map((f) => f.code), [DataPlaneErrorCode.KERNEL, DataPlaneErrorCode.KERNEL]);
    assert.match(r.failed[0]?.message ?? '', /nodev0/);
    assert.equal(listing(), before, 'the kernel is as it was');
    assert.deepEqual(plane.stats().map((s) => s.spec.key), ['tcp 10.70.0.1:80'], 'the table is as it was');
  } finally {
    await plane.close(0);
  }
});

test('changes are element deltas: a weight change rewrites slots only; a leftover table is taken over with its connections', { skip }, async () => {
  const nft = recording(nftIn());
  const host = new FakeKernelHost();
  const first = new NftDataPlane({ nft, host, pollMs: 60_000, keepOnClose: true });
  const svc = serviceSpec('10.70.1.1', 80, 'nat');
  await first.apply({ ops: [
    { op: 'add-service', service: svc },
    { op: 'add-server', service: svc.key, server: serverSpec('10.70.1.11', 8080, 1, 'nat') },
    { op: 'add-server', service: svc.key, server: serverSpec('10.70.1.12', 8080, 1, 'nat') },
  ] });
  nft.runs.length = 0;
  const w = await first.apply({ ops: [{ op: 'weight', service: svc.key, key: '10.70.1.11:8080', weight: 3 }] });
  assert.deepEqual(w.failed, []);
  assert.equal(nft.runs.length, 1, 'one transaction');
  const cmds = nft.runs[0] ?? [];
  assert.ok(cmds.length > 0 && cmds.every((c) => / fulcrum slots \{/.test(c)), `only slot elements: ${cmds.join('\n')}`);
  // A persistence template the kernel made stands in for live state: it must survive a takeover.
  execFileSync('ip', ['netns', 'exec', NS, 'nft', 'add element inet fulcrum persist4 { 0x00001000 . 192.0.2.7 timeout 300s : 0x00001001 }']);
  await first.close(0); // keepOnClose: like a crash, the table stays
  nft.runs.length = 0;
  const second = new NftDataPlane({ nft, host, pollMs: 60_000 });
  try {
    const r = await second.apply({ ops: [
      { op: 'add-service', service: svc },
      { op: 'add-server', service: svc.key, server: serverSpec('10.70.1.11', 8080, 3, 'nat') },
      { op: 'add-server', service: svc.key, server: serverSpec('10.70.1.12', 8080, 1, 'nat') },
    ] });
    assert.deepEqual(r.failed, []);
    const text = nft.runs.flat().join('\n');
    assert.doesNotMatch(text, /delete table|flush (map|set)/, 'never wipes a table or a map');
    assert.doesNotMatch(text, /add element inet fulcrum (svc4|nat4) /, 'the same ids: services and servers are already there');
    assert.match(listing(), /0x00001000 \. 192\.0\.2\.7/, 'the template survived the takeover');
  } finally {
    await second.close(0);
  }
  assert.doesNotMatch(listing(), /table inet fulcrum/, 'a clean stop removes the table');
});

test('a real server two NAT services share stays in rs4 (no redirects to it) until the last one goes', { skip }, async () => {
  const plane = new NftDataPlane({ nft: nftIn(), host: new FakeKernelHost(), pollMs: 60_000 });
  const rs4 = (): string => execFileSync('ip', ['netns', 'exec', NS, 'nft', 'list', 'set', 'inet', 'fulcrum', 'rs4'], { encoding: 'utf8' });
  try {
    const a = serviceSpec('10.70.2.1', 80, 'nat');
    const b = serviceSpec('10.70.2.1', 443, 'nat');
    await plane.apply({ ops: [
      { op: 'add-service', service: a },
      { op: 'add-server', service: a.key, server: serverSpec('10.70.2.11', 8080, 1, 'nat') },
      { op: 'add-server', service: a.key, server: serverSpec('10.70.2.12', 8080, 1, 'nat') },
      { op: 'add-service', service: b },
      { op: 'add-server', service: b.key, server: serverSpec('10.70.2.11', 8443, 1, 'nat') },
    ] });
    assert.match(rs4(), /elements = \{ 10\.70\.2\.11, 10\.70\.2\.12 \}/);
    assert.deepEqual((await plane.apply({ ops: [{ op: 'remove-service', key: a.key }] })).failed, []);
    assert.match(rs4(), /elements = \{ 10\.70\.2\.11 \}/, 'still used by the other service');
    assert.deepEqual((await plane.apply({ ops: [{ op: 'remove-service', key: b.key }] })).failed, []);
    assert.doesNotMatch(rs4(), /10\.70\.2\./);
  } finally {
    await plane.close(0);
  }
});

test('a DR service on a VRRP address is classified on the device VRRP puts the address on, held here or not', { skip }, async () => {
  const ip = (args: string[]): string => execFileSync('ip', ['-n', NS, ...args], { encoding: 'utf8' });
  ip(['link', 'add', 'fva', 'type', 'veth', 'peer', 'name', 'fvb']);
  const host = new FakeKernelHost();
  host.routes.set('default', 'fva'); // the way to the real servers
  const plane = new NftDataPlane({ nft: nftIn(), host, pollMs: 60_000 });
  try {
    const base = serviceSpec('10.70.3.1', 80, 'dr');
    const svc = { ...base, listen: base.listen.map((l) => ({ ...l, device: 'fvb' })) };
    const r = await plane.apply({ ops: [{ op: 'add-service', service: svc }, { op: 'add-server', service: svc.key, server: serverSpec('10.70.3.11', 80, 1, 'dr') }] });
    assert.deepEqual(r.failed, []);
    const chains = listing();
    assert.match(chains, /chain in_fvb \{\s+type filter hook ingress device "fvb"/);
    assert.doesNotMatch(chains, /in_fva/, 'not where the route to the servers leaves');
  } finally {
    await plane.close(0);
    ip(['link', 'del', 'fva']);
  }
});
