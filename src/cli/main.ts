/**
 * The `fulcrum` command line. Subcommands parse their options with commander and call a
 * run function that returns an exit code; nothing here calls process.exit, so the CLI is
 * testable in-process.
 */
import { Command, CommanderError } from 'commander';
import { runCheck, type Io } from './check.js';
import { runSim, type SimCliOptions } from './sim.js';
import { runRun, type RunCliOptions } from './run.js';
import { runDemo, type DemoCliOptions } from './demo.js';

export const VERSION = '0.1.0';

const stdio: Io = {
  out: (t) => process.stdout.write(t.endsWith('\n') ? t : `${t}\n`),
  err: (t) => process.stderr.write(t.endsWith('\n') ? t : `${t}\n`),
};

export async function main(argv: readonly string[], io: Io = stdio): Promise<number> {
  let code = 0;
  const program = new Command('fulcrum')
    .description('Layer-4 load balancer and HA director (LVS + keepalived, in TypeScript)')
    .version(VERSION)
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .showHelpAfterError();

  program.command('check')
    .description('validate a keepalived.conf (-f) or a file of ipvsadm lines (--ipvsadm)')
    .option('-f, --file <FILE>', 'keepalived.conf to check (its includes are followed)')
    .option('--ipvsadm <FILE>', 'a file of ipvsadm command lines or `ipvsadm -S` output')
    .option('--dump', 'print the normalized model as JSON')
    .option('--locations', 'with --dump: include file:line:col of each object')
    .option('-i, --config-id <ID>', "keepalived's config-id for @conditional lines (default: short host name)")
    .option('-q, --quiet', 'print errors only, not warnings')
    .action((o: { file?: string; ipvsadm?: string; dump?: boolean; locations?: boolean; configId?: string; quiet?: boolean }) => {
      code = runCheck(o, io);
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
    .action((o: SimCliOptions) => {
      code = runSim(o, io);
    });

  program.command('run')
    .description('run the director in the foreground (SIGHUP reloads, SIGTERM/SIGINT stop gracefully)')
    .requiredOption('-f, --file <FILE>', 'keepalived.conf to run')
    .option('-i, --config-id <ID>', "keepalived's config-id for @conditional lines")
    .option('--drain-timeout <SECONDS>', 'on stop, how long connections may finish', '10')
    .option('--log-level <LEVEL>', 'fatal|error|warn|info|debug|trace|silent', 'info')
    .option('--workers <N>', 'proxy processes sharing the listening sockets (multi-core)', '1')
    .action(async (o: RunCliOptions) => {
      code = await runRun(o, io);
    });

  program.command('demo')
    .description('quick start: demo real servers + the director on examples/quickstart.conf, showing it balance')
    .option('-f, --file <FILE>', 'configuration (default: examples/quickstart.conf)')
    .option('--requests <N>', 'requests to send through each virtual server', '12')
    .option('--exit', 'stop after the requests instead of waiting for Ctrl-C')
    .action(async (o: DemoCliOptions) => {
      code = await runDemo(o, io);
    });

  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (err: unknown) {
    if (err instanceof CommanderError) {
      // --help and --version exit 0; usage errors exit 2 (commander already printed why).
      return err.exitCode === 0 ? 0 : 2;
    }
    throw err;
  }
  return code;
}
