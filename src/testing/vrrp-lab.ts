/**
 * VRRP labs: Fulcrum directors, real keepalived and a VRRP observer in namespaces of a
 * `createLab` lab — for the interop and failover tests and `bench/vrrp.ts`.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { repoRoot } from './index.js';
import type { Lab } from './netns.js';
import { ensureCommand } from './peers.js';

export interface Proc {
  readonly child: ChildProcess;
  /** Output lines so far. */
  readonly lines: string[];
  /** Wait for a line (parsed as JSON when `json`) matching `pred`, among those after index `from`. */
  waitLine(pred: (line: string) => boolean, timeoutMs: number, from?: number): Promise<string>;
}

function track(child: ChildProcess): Proc {
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  const feed = (buf: Buffer | string): void => {
    for (const l of buf.toString().split('\n')) if (l.trim()) lines.push(l);
    for (const w of [...waiters]) w();
  };
  let tail = '';
  const onData = (d: Buffer): void => {
    const text = tail + d.toString();
    const cut = text.lastIndexOf('\n');
    tail = text.slice(cut + 1);
    if (cut >= 0) feed(text.slice(0, cut));
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  return {
    child,
    lines,
    waitLine(pred, timeoutMs, from = 0) {
      return new Promise((resolve, reject) => {
        const check = (): boolean => {
          for (let i = from; i < lines.length; i++) {
            const l = lines[i] ?? '';
            if (pred(l)) {
              waiters.delete(w);
              clearTimeout(timer);
              resolve(l);
              return true;
            }
          }
          return false;
        };
        const w = (): void => { check(); };
        const timer = setTimeout(() => {
          waiters.delete(w);
          reject(new Error(`no matching line within ${timeoutMs} ms; last lines:\n${lines.slice(-15).join('\n')}`));
        }, timeoutMs);
        waiters.add(w);
        check();
      });
    },
  };
}

/** A VRRP instance block (keepalived.conf syntax, which Fulcrum and keepalived share). */
export function vrrpInstance(o: {
  name?: string; state?: 'MASTER' | 'BACKUP'; vrid?: number; priority: number; version: 2 | 3; advert?: number; pass?: string;
  vip: string; nopreempt?: boolean; extra?: string;
}): string {
  return `vrrp_instance ${o.name ?? 'VI_1'} {
  state ${o.state ?? 'BACKUP'}
  interface eth0
  virtual_router_id ${o.vrid ?? 51}
  priority ${o.priority}
  advert_int ${o.advert ?? 1}
  version ${o.version}
${o.pass !== undefined ? `  authentication {\n    auth_type PASS\n    auth_pass ${o.pass}\n  }\n` : ''}${o.nopreempt ? '  nopreempt\n' : ''}  virtual_ipaddress {
    ${o.vip}
  }
${o.extra ?? ''}
}
`;
}

/** `fulcrum run` in a lab host with its API socket and state in `dir`. */
export function startFulcrum(lab: Lab, host: string, dir: string, config: string, extra: readonly string[] = [], env?: NodeJS.ProcessEnv): Proc & { socket: string } {
  const conf = path.join(dir, `${host}.conf`);
  fs.writeFileSync(conf, config);
  const socket = path.join(dir, `${host}.sock`);
  fs.rmSync(socket, { force: true });
  const child = lab.spawn(host, process.execPath, [path.join(repoRoot(), 'bin', 'fulcrum.js'), 'run', '-f', conf, '--api-socket', socket, '--state-file', path.join(dir, `${host}.json`), '--drain-timeout', '0', ...extra], env);
  return { ...track(child), socket };
}

/** Real keepalived (Debian's package, installed on demand), VRRP only, in the foreground. */
export function startKeepalived(lab: Lab, host: string, dir: string, config: string): Proc {
  const bin = ensureCommand('keepalived', 'keepalived');
  const conf = path.join(dir, `${host}.keepalived.conf`);
  fs.writeFileSync(conf, config);
  const child = lab.spawn(host, bin, ['--dont-fork', '--log-console', '--log-detail', '--vrrp', '-f', conf,
    '-p', path.join(dir, `${host}.pid`), '-r', path.join(dir, `${host}.vrrp.pid`), '-c', path.join(dir, `${host}.chk.pid`)]);
  return track(child);
}

export interface Advert {
  readonly t: number;
  readonly src: string;
  readonly vrid: number;
  readonly priority: number;
  readonly version: number;
  readonly ttl: number;
  readonly valid: boolean;
}

/** Watches VRRP on a host's eth0: every advert seen, with its epoch time in ms. */
export function startObserver(lab: Lab, host: string): { adverts: Advert[]; proc: Proc; next(pred: (a: Advert) => boolean, timeoutMs: number): Promise<Advert> } {
  const h = lab.hosts.get(host);
  if (!h) throw new Error(`no host ${host}`);
  const proc = track(lab.spawn(host, process.execPath, [path.join(repoRoot(), 'dist', 'src', 'testing', 'vrrp-tool.js'), 'observe', 'eth0', h.ipv4]));
  const adverts: Advert[] = [];
  const parse = (l: string): Advert | null => {
    try {
      return JSON.parse(l) as Advert;
    } catch {
      return null;
    }
  };
  let parsed = 0;
  proc.child.stdout?.on('data', () => {
    for (; parsed < proc.lines.length; parsed++) {
      const a = parse(proc.lines[parsed] ?? '');
      if (a) adverts.push(a);
    }
  });
  return {
    adverts,
    proc,
    async next(pred, timeoutMs) {
      const from = proc.lines.length;
      const l = await proc.waitLine((x) => { const a = parse(x); return a !== null && pred(a); }, timeoutMs, from);
      const a = parse(l);
      if (!a) throw new Error('unparsable observer line');
      return a;
    },
  };
}

/** A JSON log line's `event` field equals `event` (and the rest of `fields` match). */
export function logEvent(event: string, fields: Record<string, unknown> = {}): (line: string) => boolean {
  return (line) => {
    if (!line.startsWith('{')) return false;
    try {
      const o = JSON.parse(line) as Record<string, unknown>;
      return o['event'] === event && Object.entries(fields).every(([k, v]) => o[k] === v);
    } catch {
      return false;
    }
  };
}

/** RFC 5798 Master_Down_Interval in ms for a backup of `priority` (v2: skew in whole seconds' scale). */
export function expectedTakeoverMs(version: 2 | 3, advertS: number, priority: number): number {
  return 3 * advertS * 1000 + ((256 - priority) * (version === 3 ? advertS : 1) * 1000) / 256;
}

export { sleep };

export interface FailoverResult {
  /** Longest gap between successful client requests across the crash, ms. */
  readonly outageMs: number;
  /** 3·advert + skew for the backup, ms. */
  readonly expectedMs: number;
  readonly tries: number;
  readonly failed: number;
  /** Who answered before and after. */
  readonly before: string;
  readonly after: string;
}

/**
 * Two directors (`fulcrum`: VRRPv3 + a proxied service on the VIP, a real server behind
 * each; `keepalived`: VRRPv3 moving the VIP onto hosts whose server listens on every
 * address), a client loop against VIP:8080, and a crash of the master after `crashAfterMs`.
 * The lab must have hosts c, d1, d2 on one /24.
 */
export async function measureFailover(lab: Lab, dir: string, kind: 'fulcrum' | 'keepalived', vip: string, o: { advert: number; priorities: [number, number]; crashAfterMs?: number; probeMs?: number }): Promise<FailoverResult> {
  const server = (host: string, bind: string, port: number): void => {
    const js = `require('net').createServer((s)=>s.end(${JSON.stringify(`${host}\n`)})).listen(${port},${JSON.stringify(bind)})`;
    lab.spawn(host, process.execPath, ['-e', js]);
  };
  const conf = (priority: number): string => vrrpInstance({ vrid: 70, priority, version: 3, advert: o.advert, vip: `${vip}/24` })
    + (kind === 'fulcrum' ? `virtual_server ${vip} 8080 {\n  lb_algo rr\n  lb_kind PROXY\n  protocol TCP\n  real_server 127.0.0.1 9000 {\n    weight 1\n  }\n}\n` : '');
  const procs: Proc[] = [];
  for (const [i, host] of (['d1', 'd2'] as const).entries()) {
    if (kind === 'fulcrum') {
      server(host, '127.0.0.1', 9000);
      procs.push(startFulcrum(lab, host, dir, conf(o.priorities[i] ?? 100)));
    } else {
      server(host, '0.0.0.0', 8080);
      procs.push(startKeepalived(lab, host, dir, conf(o.priorities[i] ?? 100)));
    }
    const p = procs[i];
    if (!p) throw new Error('no process');
    if (kind === 'fulcrum') await p.waitLine(logEvent('vrrp-transition', { to: i === 0 ? 'MASTER' : 'BACKUP' }), 10_000);
    else await p.waitLine((l) => new RegExp(`Entering ${i === 0 ? 'MASTER' : 'BACKUP'} STATE`).test(l), 10_000);
  }
  const debug = process.env['FULCRUM_FAILOVER_DEBUG'] ? startObserver(lab, 'c') : null;
  const probeMs = o.probeMs ?? 3000;
  const probe = track(lab.spawn('c', process.execPath, [path.join(repoRoot(), 'dist', 'src', 'testing', 'vrrp-tool.js'), 'probe', '-', `${vip}:8080`, String(probeMs)]));
  await sleep(o.crashAfterMs ?? 1000);
  // The crash time is taken once every process of d1 is stopped: a reply the client got
  // while the tool was still stopping them counts as before.
  lab.crash('d1');
  const crashAt = performance.timeOrigin + performance.now();
  await new Promise<void>((resolve) => { probe.child.on('exit', () => resolve()); if (probe.child.exitCode !== null) resolve(); });
  const tries = probe.lines.map((l) => JSON.parse(l) as { t: number; ok: boolean; reply: string });
  const ok = tries.filter((x) => x.ok);
  const lastBefore = [...ok].reverse().find((x) => x.t <= crashAt);
  const firstAfter = ok.find((x) => x.t > crashAt && x.reply === 'd2');
  if (!lastBefore || !firstAfter) throw new Error(`no success ${!lastBefore ? 'before' : 'after'} the crash: ${probe.lines.slice(-5).join(' | ')}`);
  if (debug) {
    const d1 = lab.hosts.get('d1')?.ipv4;
    const lastAdvert = [...debug.adverts].reverse().find((a) => a.src === d1);
    const firstNew = debug.adverts.find((a) => a.src !== d1 && a.t > crashAt - 1000);
    process.stderr.write(`last d1 advert ${lastAdvert?.t.toFixed(0)} first d2 advert ${firstNew?.t.toFixed(0)}\n`);
  }
  if (process.env['FULCRUM_FAILOVER_DEBUG']) process.stderr.write(`crashAt ${crashAt.toFixed(0)} lastOk ${lastBefore.t.toFixed(0)} firstOk ${firstAfter.t.toFixed(0)} ${tries.filter((x) => x.t > crashAt - 20 && x.t < firstAfter.t + 20).map((x) => `${x.t.toFixed(0)}:${x.reply}`).join(' ')}\n`);
  if (process.env['FULCRUM_FAILOVER_DEBUG']) for (const p of procs) process.stderr.write(`${p.lines.filter((l) => /vrrp-transition|service-added|server-added/.test(l)).join('\n')}\n`);
  for (const p of procs) p.child.kill('SIGKILL');
  lab.crash('d2');
  return {
    outageMs: firstAfter.t - lastBefore.t,
    expectedMs: expectedTakeoverMs(3, o.advert, o.priorities[1]),
    tries: tries.length,
    failed: tries.filter((x) => !x.ok).length,
    before: lastBefore.reply,
    after: firstAfter.reply,
  };
}
