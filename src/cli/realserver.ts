/**
 * `fulcrum realserver start|stop|status --vip VIP [--mode dr|tun] [--interface DEV]`:
 * prepare a Linux real server for LVS-DR/TUN, undo it exactly, or verify it
 * (realserver/plan.ts says what and why). `start` records what it changed in
 * <state-dir>/realserver-<VIP>.json; `stop` restores that; `status` exits 1 when a check fails.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseIp } from '../model/address.js';
import { checkStatus, planStart, planStop, type RealServerMode, type RealServerState, type Step } from '../realserver/plan.js';
import { defaultInterface, gatherFacts, interfaceAddress, runStep } from '../sys/realserver-host.js';
import { missingNetCapabilities } from '../sys/host.js';
import type { Io } from './check.js';

export interface RealServerOptions {
  readonly vip: string;
  readonly mode: string;
  readonly interface?: string | undefined;
  readonly stateDir: string;
}

/** The real server's tunnel device for LVS-TUN. */
export const REALSERVER_TUNNEL = 'fulcrum0';

export function runRealServer(action: string, o: RealServerOptions, io: Io): number {
  const p = parseIp(o.vip);
  if (!p) {
    io.err(`fulcrum realserver: --vip: '${o.vip}' is not an IP address`);
    return 2;
  }
  if (o.mode !== 'dr' && o.mode !== 'tun') {
    io.err(`fulcrum realserver: --mode: '${o.mode}' is not dr or tun`);
    return 2;
  }
  if (!['start', 'stop', 'status'].includes(action)) {
    io.err(`fulcrum realserver: '${action}' is not start, stop or status`);
    return 2;
  }
  const vip = p.address;
  const mode: RealServerMode = o.mode;
  const stateFile = path.join(o.stateDir, `realserver-${vip.replace(/:/g, '_')}.json`);
  const saved = fs.existsSync(stateFile) ? (JSON.parse(fs.readFileSync(stateFile, 'utf8')) as RealServerState) : null;
  const iface = o.interface ?? saved?.iface ?? defaultInterface();
  if (iface === null) {
    io.err('fulcrum realserver: cannot tell which interface faces the director; name it with --interface');
    return 2;
  }
  const tunnel = mode === 'tun' ? REALSERVER_TUNNEL : null;
  try {
    if (action === 'start') {
      const facts = gatherFacts(vip, p.family, iface, mode, tunnel);
      const { steps, state } = planStart(facts, mode, tunnel);
      const own = interfaceAddress(iface, p.family);
      for (const s of steps) runStep(s, { vip, family: p.family, ownAddress: own });
      // A second start keeps the first record: stop must restore the state before the first.
      const record: RealServerState = saved ?? state;
      fs.mkdirSync(o.stateDir, { recursive: true });
      fs.writeFileSync(stateFile, JSON.stringify(record, null, 2) + '\n');
      io.out(`realserver ${mode.toUpperCase()} for ${vip} on ${iface}: ${steps.length === 0 ? 'already configured' : steps.map(describe).join('; ')}`);
      return 0;
    }
    if (action === 'stop') {
      if (!saved) {
        io.err(`fulcrum realserver: no record of a start for ${vip} (${stateFile}); nothing to undo`);
        return 1;
      }
      const steps = planStop(saved);
      for (const s of steps) runStep(s, { vip, family: p.family, ownAddress: null });
      fs.rmSync(stateFile, { force: true });
      io.out(`realserver ${vip}: restored (${steps.length === 0 ? 'nothing was changed' : steps.map(describe).join('; ')})`);
      return 0;
    }
    const facts = gatherFacts(vip, p.family, iface, saved?.mode ?? mode, (saved?.mode ?? mode) === 'tun' ? REALSERVER_TUNNEL : null);
    const checks = checkStatus(facts, saved?.mode ?? mode);
    for (const c of checks) io.out(`${c.ok ? 'ok  ' : 'FAIL'} ${c.what}: ${c.detail}`);
    return checks.every((c) => c.ok) ? 0 : 1;
  } catch (err: unknown) {
    const msg = (err as { stderr?: string }).stderr?.trim() || (err instanceof Error ? err.message : String(err));
    // Told by the error's code (a /proc/sys write) or by the capabilities this process has
    // (an `ip` command), never by the wording of a message.
    const code = (err as NodeJS.ErrnoException).code;
    const denied = code === 'EACCES' || code === 'EPERM' || missingNetCapabilities().includes('CAP_NET_ADMIN');
    io.err(`fulcrum realserver ${action}: ${msg}${denied ? ' (needs root: CAP_NET_ADMIN and write access to /proc/sys)' : ''}`);
    return 1;
  }
}

function describe(s: Step): string {
  switch (s.do) {
    case 'sysctl':
      return `${s.name}=${s.value}`;
    case 'add-vip':
      return 'VIP added to lo';
    case 'del-vip':
      return 'VIP removed from lo';
    case 'add-tunnel':
      return `tunnel ${s.name} created`;
    case 'del-tunnel':
      return `tunnel ${s.name} removed`;
  }
}
