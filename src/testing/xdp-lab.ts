/**
 * What the XDP plane's kernel tests add to an LVS lab: clang and libbpf (installed on
 * demand, as the other peers) and the built program, a bpf filesystem of the test's own
 * (so a restarted director finds the maps the previous one pinned, and nothing is left
 * behind), and the pass-everything program on the director's switch port, without which a
 * veth drops the frames its peer sends back with XDP_TX.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { buildXdpObject, XDP_OBJECT, XDP_PASS_OBJECT, XDP_PASS_SOURCE, XDP_SOURCE } from '../dataplane/xdp/object.js';
import type { Lab } from './netns.js';
import { ensureCommand, ensureFile } from './peers.js';

type TestContext = { after(fn: () => Promise<void>): void };

/** Install clang/libbpf when missing and build the program when it is not built. */
export function ensureXdpProgram(): void {
  ensureCommand('clang', 'clang');
  ensureFile(['/usr/include/bpf/bpf_helpers.h'], 'libbpf-dev');
  ensureCommand('bpftool', 'bpftool');
  const stale = (object: string, source: string): boolean => !fs.existsSync(object) || fs.statSync(object).mtimeMs < fs.statSync(source).mtimeMs;
  if (stale(XDP_OBJECT, XDP_SOURCE) || stale(XDP_PASS_OBJECT, XDP_PASS_SOURCE)) buildXdpObject();
}

/** A bpf filesystem mounted for this test (unmounted after it); returns the pin directory. */
export function testBpfDir(t: TestContext, prefix: string): string {
  const mount = `/run/${prefix}-bpf`;
  try {
    execFileSync('umount', [mount], { stdio: 'ignore' });
  } catch {
    // not mounted: the usual case
  }
  fs.mkdirSync(mount, { recursive: true });
  execFileSync('mount', ['-t', 'bpf', 'bpf', mount]);
  t.after(() => {
    try {
      execFileSync('umount', [mount], { stdio: 'ignore' });
      fs.rmdirSync(mount);
    } catch {
      // already gone
    }
    return Promise.resolve();
  });
  return `${mount}/fulcrum`;
}

/**
 * Make `host` send complete checksums. A veth passes its peer packets whose TCP/UDP
 * checksum the sender left for "hardware" to finish (CHECKSUM_PARTIAL); XDP forwards the
 * frame as it is, so a real server behind it would drop them. Frames from a physical NIC
 * carry complete checksums; a lab client must too.
 */
export function fullChecksums(lab: Lab, host: string): void {
  const ethtool = ensureCommand('ethtool', 'ethtool');
  lab.exec(host, ethtool, ['-K', 'eth0', 'tx', 'off']);
}

/** Let `host`'s switch port take XDP_TX frames (NAPI on the veth peer). */
export function passOnSwitchPort(lab: Lab, host: string): void {
  const h = lab.hosts.get(host);
  if (!h) throw new Error(`no host ${host}`);
  execFileSync('ip', ['-n', `${lab.prefix}-sw`, 'link', 'set', 'dev', h.port, 'xdpdrv', 'obj', XDP_PASS_OBJECT, 'sec', 'xdp'], { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** The program attached to `host`'s eth0 (`ip link` prints its name), or ''. */
export function attachedProgram(lab: Lab, host: string): string {
  const out = lab.exec(host, 'ip', ['-d', 'link', 'show', 'dev', 'eth0']);
  return /prog\/xdp id \d+ name (\S+)/.exec(out)?.[1] ?? '';
}
