/**
 * The `fulcrum` command line. Subcommands parse their options with commander and call a
 * run function that returns an exit code; nothing here calls process.exit, so the CLI is
 * testable in-process.
 */
import { writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Command } from 'commander';
import type { CheckOptions, Io } from './check.js';
import type { SimCliOptions } from './sim.js';
import type { RunCliOptions } from './run.js';
import type { DemoCliOptions } from './demo.js';
import type { GenhashOptions } from './genhash.js';
import type { AgentCliOptions } from './agent.js';
import type { RealServerOptions } from './realserver.js';

// Each subcommand is loaded when it runs: `fulcrum adm` must not load the daemon, nor
// `fulcrum check` the data planes (start-up time is what an operator's `watch` pays).
// commander too is required only when a command line goes through it: `fulcrum adm` parses
// ipvsadm's grammar itself, and commander (which loads child_process, net and dgram) was
// about 20 ms of every `fulcrum adm -L -n`. Its CommonJS build is required synchronously
// (faster than its ESM wrapper, and buildProgram stays synchronous for gen-docs).
type Commander = typeof import('commander');
let commander: Commander | undefined;
const loadCommander = (): Commander => (commander ??= createRequire(import.meta.url)('commander') as Commander);

export const VERSION = '0.1.0';

/**
 * A command's output with write(2), not process.stdout: making Node's stdio stream is ~4 ms
 * of a `fulcrum check` or `adm` (a CPU profile, Node 24), for the few lines a command
 * prints. A descriptor that would block (EAGAIN: a non-blocking pipe a parent left) hands
 * that line and every later one to the stream, so the order stays; a reader gone (EPIPE,
 * `fulcrum adm -L -n | head -1`) ends the output quietly.
 */
function writer(fd: 1 | 2, stream: () => NodeJS.WriteStream): (t: string) => void {
  let via: 'fd' | 'stream' | 'closed' = 'fd';
  return (t) => {
    const text = t.endsWith('\n') ? t : `${t}\n`;
    if (via === 'stream') stream().write(text);
    if (via !== 'fd') return;
    const buf = Buffer.from(text);
    let off = 0;
    try {
      while (off < buf.length) off += writeSync(fd, buf, off);
    } catch (err: unknown) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EPIPE') {
        via = 'closed';
        return;
      }
      if (code !== 'EAGAIN') throw err;
      via = 'stream';
      stream().write(buf.subarray(off));
    }
  };
}

const stdio: Io = {
  out: writer(1, () => process.stdout),
  err: writer(2, () => process.stderr),
};

/**
 * The command line as commander sees it: the one source of `--help`, the manual page
 * fulcrum(8) and the shell completions (see docs.ts), so none of them can drift. Actions
 * report their exit code through `setCode`.
 */
export function buildProgram(io: Io, setCode: (code: number) => void): Command {
  let code = 0;
  const { Command } = loadCommander();
  const program = new Command('fulcrum')
    .description('Layer-4 load balancer and HA director (LVS + keepalived, in TypeScript)')
    .version(VERSION)
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .showHelpAfterError();

  program.command('check')
    .description('validate a keepalived.conf (-f) or a file of ipvsadm lines (--ipvsadm)')
    .option('-f, --file <FILE>', 'keepalived.conf to check, its includes followed (default: /etc/fulcrum/fulcrum.conf, else /etc/keepalived/keepalived.conf)')
    .option('--ipvsadm <FILE>', 'a file of ipvsadm command lines or `ipvsadm -S` output')
    .option('--dump', 'print the normalized model as JSON')
    .option('--locations', 'with --dump: include file:line:col of each object')
    .option('-i, --config-id <ID>', "keepalived's config-id for @conditional lines (default: short host name)")
    .option('-q, --quiet', 'print errors only, not warnings')
    .action(async (o: { file?: string; ipvsadm?: string; dump?: boolean; locations?: boolean; configId?: string; quiet?: boolean }) => {
      code = (await import('./check.js')).runCheck(o, io);
    });

  const collect = (v: string, prev: string[]): string[] => [...prev, v];
  program.command('sim')
    .description("show a service's distribution for a synthetic workload, and what --remove/--add would move")
    .option('-f, --file <FILE>', 'keepalived.conf holding the service')
    .option('--ipvsadm <FILE>', 'ipvsadm rules holding the service')
    .requiredOption('--service <VIP:PORT>', "the virtual service (VIP:PORT, [v6]:PORT, 'fwmark N' or 'group NAME')")
    .option('--protocol <tcp|udp|sctp>', 'protocol of --service', 'tcp')
    .option('--clients <N>', 'distinct client addresses', '1000')
    .option('--conns <M>', 'connections in total', '10000')
    .option('--remove <RS>', 'simulate removing this real server (repeatable)', collect, [])
    .option('--add <RS>', 'simulate adding this real server (repeatable)', collect, [])
    .option('-s, --scheduler <NAME>', "override the service's scheduler")
    .option('--seed <N>', 'random seed (twos)', '1')
    .option('-i, --config-id <ID>', "keepalived's config-id for @conditional lines")
    .action(async (o: SimCliOptions) => {
      code = (await import('./sim.js')).runSim(o, io);
    });

  program.command('run')
    .description('run the director in the foreground (SIGHUP reloads, SIGTERM/SIGINT stop gracefully)')
    .option('-f, --file <FILE>', 'keepalived.conf to run (default: /etc/fulcrum/fulcrum.conf, else /etc/keepalived/keepalived.conf; it says which)')
    .option('-i, --config-id <ID>', "keepalived's config-id for @conditional lines")
    .option('--drain-timeout <SECONDS>', 'on stop, how long connections may finish', '10')
    .option('--log-level <LEVEL>', 'fatal|error|warn|info|debug|trace|silent', 'info')
    .option('--workers <N>', 'userspace-proxy worker threads, each listening with SO_REUSEPORT (default: the cores available; 1 relays on the daemon\'s own loop)')
    .option('--api-socket <PATH>', "control API unix socket (mode 0600), or 'none' (default /run/fulcrum/fulcrum.sock as root, else $XDG_RUNTIME_DIR/fulcrum.sock)")
    .option('--api-listen <HOST:PORT>', 'also serve the API, /metrics and the dashboard over TCP (needs --api-token-file)')
    .option('--api-token-file <FILE>', 'bearer token TCP requests to /v1 must carry')
    .option('--api-open <LIST>', "what TCP serves without the token: none (default), metrics, dashboard or metrics,dashboard", 'none')
    .option('--state-file <FILE>', 'where runtime changes (fulcrum adm, the API) are kept across reloads and restarts (default /var/lib/fulcrum/runtime.json as root, else $XDG_STATE_HOME/fulcrum/runtime.json)')
    .option('--keep-forwarding', 'on stop, leave the kernel tables (nftables, the XDP program and its pinned maps) in place so NAT/DR/TUN traffic keeps flowing; the next start takes them over')
    .option('--bpf-dir <dir>', 'where the XDP plane pins its maps (a directory on a bpf filesystem; default /sys/fs/bpf/fulcrum)')
    .option('--nft <HOW>', "how to reach nftables: 'lib' (libnftables through the FFI), 'cmd' (the nft binary), 'auto', or 'none' (userspace proxy only)", 'auto')
    .option('--allow-empty', 'run a configuration that defines no virtual_server and no vrrp_instance (everything from runtime changes); refused otherwise, so an empty or truncated file cannot remove every service')
    .option('--udp-sessions <N>', 'most UDP sessions the proxy holds at once; datagrams from new clients past it are dropped and counted', '16384')
    .option('--relay <kind>', "what relays proxied TCP: epoll (system calls on one epoll set per worker, Linux) or node (Node's net sockets)", 'epoll')
    .option('--no-splice', 'the epoll relay copies bulk through user space instead of splicing it socket to socket through a pipe')
    .action(async (o: RunCliOptions) => {
      code = await (await import('./run.js')).runRun(o, io);
    });

  program.command('adm')
    .description("ipvsadm's commands and output against the running director (fulcrum adm -L -n; fulcrum adm --help)")
    .allowUnknownOption()
    .allowExcessArguments();

  program.command('demo')
    .description('quick start: demo real servers + the director on examples/quickstart.conf, showing it balance')
    .option('-f, --file <FILE>', 'configuration (default: examples/quickstart.conf)')
    .option('--requests <N>', 'requests to send through each virtual server', '12')
    .option('--exit', 'stop after the requests instead of waiting for Ctrl-C')
    .action(async (o: DemoCliOptions) => {
      code = await (await import('./demo.js')).runDemo(o, io);
    });

  program.command('genhash')
    .description("print the MD5 digest of a URL's body for HTTP_GET/SSL_GET `digest` (like keepalived's genhash)")
    .requiredOption('-s, --server <IP>', 'real server address')
    .option('-p, --port <PORT>', 'port (default 80, or 443 with --use-ssl)')
    .requiredOption('-u, --url <PATH>', 'path to fetch, e.g. /health')
    .option('-S, --use-ssl', 'TLS (SSL_GET)')
    .option('-V, --use-virtualhost <HOST>', 'Host header to send')
    .option('-I, --sni <NAME>', 'TLS server name to send')
    .option('-P, --protocol <VERSION>', 'http_protocol: 1.0, 1.0C or 1.1', '1.0')
    .option('-t, --timeout <SECONDS>', 'give up after', '5')
    .option('-v, --verbose', 'also print the status and headers')
    .action(async (o: GenhashOptions) => {
      code = await (await import('./genhash.js')).runGenhash(o, io);
    });

  program.command('realserver')
    .description('prepare this host as an LVS-DR/TUN real server (VIP on lo, ARP suppression, tunnel), undo it, or verify it')
    .argument('<action>', 'start | stop | status')
    .requiredOption('--vip <IP>', 'the virtual IP the director forwards')
    .option('--mode <MODE>', 'dr or tun', 'dr')
    .option('--interface <DEV>', 'the interface facing the director (default: the default route\'s)')
    .option('--state-dir <DIR>', 'where start records what it changed, for stop', '/run/fulcrum')
    .action(async (action: string, o: RealServerOptions) => {
      code = (await import('./realserver.js')).runRealServer(action, o, io);
    });

  program.command('agent')
    .description('run a server agent on this real server: answers director probes with its load (Equalizer -1..100, or HAProxy agent-check words)')
    .option('--port <PORT>', 'TCP port to answer on', '1510')
    .option('--listen <IP>', 'address to listen on', '0.0.0.0')
    .option('--dialect <NAME>', 'equalizer (an integer -1..100) or haproxy (up N% / down)', 'equalizer')
    .option('--command <CMD>', 'report what this command prints (a load -1..100 or agent-check words) instead of the system load; run without a shell')
    .option('--weights <LIST>', 'system load mix, e.g. cpu=2,load=1,memory=1,connections=1')
    .option('--max-connections <N>', 'established connections that count as 100%', '1000')
    .option('--interval <SECONDS>', 'how often to sample', '1')
    .option('--timeout <SECONDS>', 'how long --command may run', '2')
    .option('--stale <SECONDS>', 'answer -1 (unavailable) when the last good sample is older than this', '10')
    .option('--probe-wait <SECONDS>', "how long to wait for the director's probe string before answering", '0.1')
    .option('--log-level <LEVEL>', 'fatal|error|warn|info|debug', 'info')
    .action(async (o: AgentCliOptions) => {
      code = await (await import('./agent.js')).runAgent(o, io);
    });

  program.hook('postAction', () => setCode(code));
  return program;
}

/**
 * `check`'s options as a table, for the command lines that need nothing of commander: every
 * argument one of these (`-f FILE`, `--file FILE`, `--file=FILE`, a flag alone). Anything
 * else — help, a missing value, a value that starts with `-`, an option this table lacks —
 * goes through commander, which stays the one definition (a test holds the two together).
 * Loading commander is ~20 ms of a `fulcrum check` (12.7 ms on Node 20, 19 ms on Node 24,
 * child_process included), what an operator's scripts and CI hooks pay on every file.
 */
export const CHECK_OPTIONS: Readonly<Record<string, { readonly key: keyof CheckOptions; readonly value: boolean }>> = {
  '-f': { key: 'file', value: true },
  '--file': { key: 'file', value: true },
  '--ipvsadm': { key: 'ipvsadm', value: true },
  '--dump': { key: 'dump', value: false },
  '--locations': { key: 'locations', value: false },
  '-i': { key: 'configId', value: true },
  '--config-id': { key: 'configId', value: true },
  '-q': { key: 'quiet', value: false },
  '--quiet': { key: 'quiet', value: false },
};

/** `check`'s arguments read with CHECK_OPTIONS, or null where commander must read them. */
export function quickCheckOptions(args: readonly string[]): CheckOptions | null {
  const o: Record<string, string | boolean> = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const spec = Object.hasOwn(CHECK_OPTIONS, name) ? CHECK_OPTIONS[name] : undefined;
    if (spec === undefined) return null;
    if (!spec.value) {
      if (eq > 0) return null;
      o[spec.key] = true;
      continue;
    }
    const value = eq > 0 ? arg.slice(eq + 1) : args[++i];
    if (value === undefined || (eq < 0 && value.startsWith('-'))) return null;
    o[spec.key] = value;
  }
  return o as CheckOptions;
}

export async function main(argv: readonly string[], io: Io = stdio): Promise<number> {
  // ipvsadm's grammar is not commander's: `adm` takes its arguments as they are.
  if (argv[0] === 'adm') return (await import('./adm.js')).runAdm(argv.slice(1), io);
  if (argv[0] === 'check') {
    const o = quickCheckOptions(argv.slice(1));
    if (o !== null) return (await import('./check.js')).runCheck(o, io);
  }
  let code = 0;
  const program = buildProgram(io, (c) => { code = c; });
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (err: unknown) {
    if (err instanceof loadCommander().CommanderError) {
      // --help and --version exit 0; usage errors exit 2 (commander already printed why).
      return err.exitCode === 0 ? 0 : 2;
    }
    throw err;
  }
  return code;
}
