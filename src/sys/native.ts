/**
 * The reactor's native pump (native/pump.c): where its shared object is (dist/native/,
 * beside the compiled TypeScript), how `npm run build` makes it with the system's C
 * compiler, and loading it through koffi.
 *
 * Without it (no compiler at build time, or FULCRUM_NATIVE_PUMP=off) the reactor makes the
 * same system calls one by one through koffi; the relay behaves the same either way, and
 * costs ~0.25 µs more per call (docs/benchmarks.md, issue 18).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import koffi from 'koffi';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

export const PUMP_SOURCE = path.join(ROOT, 'native', 'pump.c');
export const PUMP_OBJECT = path.join(ROOT, 'dist', 'native', 'libfulcrum_pump.so');

/** What pump.c reports as the read result of an event it did not read for. */
export const NOT_READ = -0x80000000;

/** fulcrum_pump(ep, events, max, peer table, its length, buffer, its length, out): events, or −errno. */
export type PumpCall = (ep: number, evs: Buffer, max: number, peer: Buffer, npeer: number, buf: Buffer, buflen: number, out: Buffer) => number;

let loaded: PumpCall | null | undefined;
let why = '';

/**
 * The pump, or null: not built, not loadable, or turned off (FULCRUM_NATIVE_PUMP=off).
 * `nativePumpMissing()` says which.
 */
export function nativePump(): PumpCall | null {
  if (loaded !== undefined) return loaded;
  loaded = null;
  if (process.env['FULCRUM_NATIVE_PUMP'] === 'off') {
    why = 'turned off (FULCRUM_NATIVE_PUMP=off)';
    return null;
  }
  if (!fs.existsSync(PUMP_OBJECT)) {
    why = `${PUMP_OBJECT} was not built (install a C compiler, e.g. apt-get install gcc, then npm run build)`;
    return null;
  }
  try {
    const lib = koffi.load(PUMP_OBJECT);
    loaded = lib.func('int fulcrum_pump(int, void *, int, void *, int, void *, int, void *)') as PumpCall;
  } catch (err: unknown) {
    why = `${PUMP_OBJECT} cannot be loaded: ${err instanceof Error ? err.message : String(err)}`;
  }
  return loaded;
}

/** Why `nativePump()` is null ('' when it is not). */
export function nativePumpMissing(): string {
  nativePump();
  return why;
}

function compiler(): string | null {
  for (const cc of ['cc', 'gcc', 'clang']) {
    if (['/usr/bin', '/usr/local/bin', '/bin'].some((d) => fs.existsSync(path.join(d, cc)))) return cc;
  }
  return null;
}

/**
 * Compile the pump. Returns what happened in one line; throws when a compiler is present
 * but the compile fails (a broken pump must fail the build, not fall back silently).
 */
export function buildNativePump(): string {
  const cc = compiler();
  if (cc === null) return 'native pump not built: no C compiler (apt-get install gcc); the relay will make its system calls through koffi one by one';
  fs.mkdirSync(path.dirname(PUMP_OBJECT), { recursive: true });
  execFileSync(cc, ['-O2', '-Wall', '-Wextra', '-Werror', '-shared', '-fPIC', '-o', PUMP_OBJECT, PUMP_SOURCE], { stdio: ['ignore', 'inherit', 'inherit'] });
  return `native pump built: ${path.relative(process.cwd(), PUMP_OBJECT) || PUMP_OBJECT}`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  process.stdout.write(`${buildNativePump()}\n`);
}
