/**
 * nftables from TypeScript. `Nft` is the narrow boundary the kernel data plane uses: run one
 * atomic transaction (nft's own syntax, the same text `nft list ruleset` prints), and list
 * an object as JSON. Two implementations:
 *  - `libNft()`: libnftables.so.1 through koffi, on koffi's worker threads (a transaction
 *    never blocks the event loop), one context for commands and one with JSON output;
 *  - `commandNft()`: the `nft` binary (`nft -f -`, `nft -j list …`), optionally inside a
 *    network namespace — the fallback when the library is missing, and what tests use to
 *    drive a namespace's kernel from outside it.
 * A failed transaction changes nothing in the kernel (nftables commits all or nothing); the
 * error carries nft's message, which names the offending command.
 */
import { spawn } from 'node:child_process';
import koffi from 'koffi';
import { SysError, SysErrorCode } from './errors.js';
import { dumpSetElements, type RawElement } from './nft-dump.js';

export interface Nft {
  readonly name: string;
  /** Run `commands` (one per line) as one transaction. Rejects with SysError(E_SYS_NFT). */
  run(commands: readonly string[]): Promise<void>;
  /** `nft -j list <what>` → the parsed `nftables` array (empty when the object is absent). */
  list(what: string): Promise<readonly Record<string, unknown>[]>;
  /**
   * A set's elements as the kernel stores them (netlink dump), for large dynamic maps;
   * empty when the set is absent. Implementations that cannot (the binary in another
   * namespace, the fake) do not have it, and readers fall back to `list`.
   */
  dumpElements?(family: 'inet' | 'netdev', table: string, set: string): Promise<readonly RawElement[]>;
}

export class NftError extends SysError {
  constructor(message: string, readonly detail: string) {
    super(SysErrorCode.NFT, message);
  }
}

/** nft's error text, first lines only, so a 100k-element transaction does not flood a log. */
function errorSummary(text: string): string {
  const lines = text.split('\n');
  const out: string[] = [];
  for (let i = 0; i < lines.length && out.length < 3; i++) {
    const l = lines[i] ?? '';
    if (!/Error:/.test(l)) continue;
    // nft prints the offending command on the next line, then carets under the token.
    const cmd = (lines[i + 1] ?? '').trim();
    out.push(`${l.replace(/^\S*?:\d+:\d+-\d+: /, '').slice(0, 200)}${cmd ? ` in: ${cmd.slice(0, 200)}` : ''}`);
  }
  return out.length > 0 ? out.join('; ') : (lines.find((l) => l.trim() !== '') ?? 'nft failed').slice(0, 300);
}

/** The error for nft's text: a missing CAP_NET_ADMIN is reported as such. */
function refusal(prefix: string, text: string): SysError {
  if (/Operation not permitted/.test(text)) {
    return new SysError(SysErrorCode.PERMISSION, 'nftables needs CAP_NET_ADMIN: run as root or grant it (setcap cap_net_admin+ep, or AmbientCapabilities=CAP_NET_ADMIN in the systemd unit)', 1);
  }
  return new NftError(`${prefix}: ${errorSummary(text)}`, text);
}

/** A `list` outcome: the objects, none when the object does not exist, else the refusal. */
function listOutcome(what: string, ok: boolean, err: string, out: string): readonly Record<string, unknown>[] {
  if (ok) return parseList(out);
  if (/No such file or directory|does not exist/.test(err)) return [];
  throw refusal(`nft list ${what}`, err);
}

function parseList(text: string): readonly Record<string, unknown>[] {
  if (text.trim() === '') return [];
  const doc = JSON.parse(text) as { nftables?: Record<string, unknown>[] };
  return (doc.nftables ?? []).filter((x) => !('metainfo' in x));
}

const NFT_CTX_OUTPUT_JSON = 1 << 4;

interface LibNftables {
  newCtx(): unknown;
  run(ctx: unknown, text: string): Promise<number>;
  output(ctx: unknown): string;
  error(ctx: unknown): string;
}

let lib: LibNftables | null = null;

function loadLib(): LibNftables {
  if (lib) return lib;
  let so: ReturnType<typeof koffi.load>;
  try {
    so = koffi.load('libnftables.so.1');
  } catch (err: unknown) {
    throw new SysError(SysErrorCode.FAILED, `cannot load libnftables.so.1: ${(err as Error).message}`);
  }
  const ctxNew = so.func('void *nft_ctx_new(uint32_t flags)');
  const bufOut = so.func('int nft_ctx_buffer_output(void *ctx)');
  const bufErr = so.func('int nft_ctx_buffer_error(void *ctx)');
  const setFlags = so.func('void nft_ctx_output_set_flags(void *ctx, unsigned int flags)');
  const getOut = so.func('const char *nft_ctx_get_output_buffer(void *ctx)');
  const getErr = so.func('const char *nft_ctx_get_error_buffer(void *ctx)');
  const runCmd = so.func('int nft_run_cmd_from_buffer(void *ctx, const char *buf)');
  lib = {
    newCtx: () => {
      const ctx: unknown = ctxNew(0);
      if (!ctx) throw new SysError(SysErrorCode.FAILED, 'nft_ctx_new failed');
      bufOut(ctx);
      bufErr(ctx);
      return ctx;
    },
    run: (ctx, text) => new Promise((resolve, reject) => {
      runCmd.async(ctx, text, (err: unknown, rc: unknown) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(Number(rc))));
    }),
    output: (ctx) => String(getOut(ctx) ?? ''),
    error: (ctx) => String(getErr(ctx) ?? ''),
  };
  const json = lib.newCtx();
  setFlags(json, NFT_CTX_OUTPUT_JSON);
  jsonCtx = json;
  return lib;
}

let jsonCtx: unknown = null;

/** A serial queue: one libnftables context must not run two commands at once. */
function serial(): <T>(fn: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(fn: () => Promise<T>): Promise<T> => {
    const next = tail.then(fn, fn);
    tail = next.catch(() => undefined);
    return next;
  };
}

/** libnftables through koffi. Throws SysError when the library cannot be loaded. */
export function libNft(): Nft {
  const l = loadLib();
  const ctx = l.newCtx();
  const queue = serial();
  return {
    name: 'libnftables',
    run: (commands) => queue(async () => {
      const rc = await l.run(ctx, commands.join('\n') + '\n');
      if (rc !== 0) {
        throw refusal('nftables refused the transaction', l.error(ctx));
      }
    }),
    list: (what) => queue(async () => {
      const rc = await l.run(jsonCtx, `list ${what}`);
      return listOutcome(what, rc === 0, rc === 0 ? '' : l.error(jsonCtx), rc === 0 ? l.output(jsonCtx) : '');
    }),
    // Same namespace as the library: the process's own.
    dumpElements: (family, table, set) => queue(() => Promise.resolve(dumpSetElements(family, table, set))),
  };
}

function exec(argv: readonly string[], input: string | null): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = argv as [string, ...string[]];
    // Without input the child gets no stdin: a `list` that exits before reading it would
    // otherwise fail the write with EPIPE.
    const c = spawn(cmd, args, { stdio: [input === null ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    c.stdout?.on('data', (b: Buffer) => out.push(b));
    c.stderr?.on('data', (b: Buffer) => err.push(b));
    c.on('error', reject);
    c.on('close', (code) => resolve({ code: code ?? 1, out: Buffer.concat(out).toString('utf8'), err: Buffer.concat(err).toString('utf8') }));
    if (c.stdin && input !== null) {
      // A child that exits before it read its input (a bad argument) closes the pipe: its
      // exit status and stderr say why, the EPIPE on our side adds nothing.
      c.stdin.on('error', () => undefined);
      c.stdin.end(input);
    }
  });
}

/** The nft binary; `netns` runs it inside that network namespace (`ip netns exec`). */
export function commandNft(o: { netns?: string | undefined; binary?: string } = {}): Nft {
  const prefix = o.netns ? ['ip', 'netns', 'exec', o.netns] : [];
  const bin = o.binary ?? 'nft';
  const queue = serial();
  return {
    name: o.netns ? `nft (netns ${o.netns})` : 'nft',
    run: (commands) => queue(async () => {
      const r = await exec([...prefix, bin, '-f', '-'], commands.join('\n') + '\n');
      if (r.code !== 0) throw refusal('nftables refused the transaction', r.err);
    }),
    list: (what) => queue(async () => {
      const r = await exec([...prefix, bin, '-j', 'list', ...what.split(' ')], null);
      return listOutcome(what, r.code === 0, r.err, r.out);
    }),
  };
}

/** The library when it loads, else the binary. */
export function defaultNft(): Nft {
  try {
    return libNft();
  } catch {
    return commandNft();
  }
}
