/**
 * The XDP program's object file: where it is (dist/bpf/fulcrum_xdp.o, beside the compiled
 * TypeScript) and how it is built — Debian's clang for the BPF target, from
 * bpf/fulcrum_xdp.c. `npm run build` builds it when clang and libbpf's headers are present
 * and says so otherwise; without it, services that ask for XDP go to nftables with a
 * message naming what is missing.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');

/** The checkout's (or installed package's) root, the source and the object. */
export const XDP_SOURCE = path.join(ROOT, 'bpf', 'fulcrum_xdp.c');
export const XDP_OBJECT = path.join(ROOT, 'dist', 'bpf', 'fulcrum_xdp.o');
/** A pass-everything program (tests attach it to a veth peer so it takes XDP_TX frames). */
export const XDP_PASS_SOURCE = path.join(ROOT, 'bpf', 'xdp_pass.c');
export const XDP_PASS_OBJECT = path.join(ROOT, 'dist', 'bpf', 'xdp_pass.o');

/** Why the XDP plane cannot run here (no object, no libbpf), or null when it can. */
export function xdpUnavailable(objectPath = XDP_OBJECT): string | null {
  if (!fs.existsSync(objectPath)) {
    return `the XDP program ${objectPath} was not built (install clang and libbpf-dev, then npm run build)`;
  }
  for (const dir of ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib/x86_64-linux-gnu']) {
    if (fs.existsSync(path.join(dir, 'libbpf.so.1'))) return null;
  }
  return 'libbpf.so.1 is not installed (Debian: apt-get install libbpf1)';
}

function has(binary: string): boolean {
  return ['/usr/bin', '/usr/local/bin', '/bin'].some((d) => fs.existsSync(path.join(d, binary)));
}

/**
 * Compile the program. Returns what happened in one line; throws when clang is present but
 * the compile fails (a broken program must fail the build, not fall back silently).
 */
export function buildXdpObject(): string {
  if (!has('clang')) return `XDP program not built: no clang (apt-get install clang libbpf-dev); XDP services will use nftables`;
  if (!fs.existsSync('/usr/include/bpf/bpf_helpers.h')) return 'XDP program not built: no libbpf headers (apt-get install libbpf-dev); XDP services will use nftables';
  fs.mkdirSync(path.dirname(XDP_OBJECT), { recursive: true });
  const multiarch = `${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu`;
  for (const [source, object] of [[XDP_SOURCE, XDP_OBJECT], [XDP_PASS_SOURCE, XDP_PASS_OBJECT]] as const) {
    execFileSync('clang', ['-O2', '-g', '-Wall', '-Werror', '-target', 'bpf', `-I/usr/include/${multiarch}`, '-c', source, '-o', object], { stdio: ['ignore', 'inherit', 'inherit'] });
  }
  return `XDP program built: ${path.relative(process.cwd(), XDP_OBJECT) || XDP_OBJECT}`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  process.stdout.write(`${buildXdpObject()}\n`);
}
