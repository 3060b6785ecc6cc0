import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { repoRoot } from '../testing/index.js';
import { main } from './main.js';

async function sim(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(['sim', ...args], { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}
const rules = path.join(repoRoot(), 'test', 'fixtures', 'seed', 'seed-ipvsadm-rules.txt');
const golden = (f: string): string => path.join(repoRoot(), 'test', 'fixtures', 'golden', f);

describe('fulcrum sim', () => {
  it('prints the distribution per real server', async () => {
    const r = await sim('-f', golden('web-nat.conf'), '--service', '198.51.100.10:80', '--clients', '2000', '--conns', '10000');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^Service tcp 198\.51\.100\.10:80 {2}scheduler wlc {2}persistence 360s \/24$/m);
    assert.match(r.out, /192\.168\.10\.11:8080 +3 +5995 +60\.0% +60\.0%/);
    assert.match(r.out, /192\.168\.10\.12:8080 +2 +4005 +40\.0% +40\.0%/);
    assert.match(r.out, /192\.168\.10\.13:8080 +0 +0 +0\.0% +0\.0%/);
  });

  it('rr over two servers splits evenly; removing one moves none of the other\'s flows with persistence', async () => {
    const r = await sim('--ipvsadm', rules, '--service', '172.16.100.1:80', '--clients', '1000', '--conns', '4000', '--remove', '172.16.100.11');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /172\.16\.100\.10:80 +2 +2000 +50\.0% +50\.0%/);
    assert.match(r.out, /After --remove 172\.16\.100\.11:\n.*\n +172\.16\.100\.10:80 +2 +4000 +100\.0%/);
    assert.match(r.out, /Moved: 0\.0% of persistence templates whose server remains \(0 of 500\)/);
  });

  it('mh moves about 1/N of flows when a server is added; sh moves most', async () => {
    const args = ['-i', 'lb-a', '-f', golden('templated.conf'), '--service', '10.30.0.10:80', '--clients', '1000', '--conns', '5000', '--add', '10.30.1.4'];
    const mh = await sim(...args, '-s', 'mh');
    const sh = await sim(...args, '-s', 'sh');
    const moved = (out: string): number => Number(/Moved: ([0-9.]+)% of flows/.exec(out)?.[1]);
    assert.ok(moved(mh.out) > 15 && moved(mh.out) < 35, mh.out);
    assert.ok(moved(sh.out) > 50, sh.out);
  });

  it('reports an unknown service with the ones that exist, and bad numbers as usage errors', async () => {
    const r = await sim('--ipvsadm', rules, '--service', '10.9.9.9:80');
    assert.equal(r.code, 1);
    assert.match(r.err, /no virtual server 'tcp 10\.9\.9\.9:80'; the file has: tcp 172\.16\.100\.1:80, tcp 172\.16\.100\.1:0, fwmark 8 inet/);
    assert.equal((await sim('--ipvsadm', rules, '--service', '172.16.100.1:80', '--clients', '0')).code, 2);
    assert.equal((await sim('--ipvsadm', rules, '--service', 'fwmark 8', '-s', 'nope')).code, 2);
    assert.equal((await sim('--ipvsadm', rules, '--service', 'fwmark 8', '--conns', '100', '--clients', '10')).code, 0);
  });
});
