/**
 * A real systemd for tests, without booting a machine: systemd 252 started as PID 1 of a
 * new PID and mount namespace (`unshare --pid --fork --mount --mount-proc`), optionally
 * inside a network namespace. In its private mount namespace:
 *  - /run, /tmp and /var/tmp are fresh tmpfs (systemd-tmpfiles would empty the host's /tmp
 *    at "boot": its units are masked as well);
 *  - /etc and /var/lib are overlays whose writes land in that /run, so the test installs
 *    units and configuration, and units keep state (StateDirectory=), without touching the
 *    host; the journal is volatile;
 *  - /usr/local can be a bind mount of a test's install prefix (`npm install -g --prefix`),
 *    so a unit's `ExecStart=/usr/local/bin/…` runs the package under test unchanged.
 * It starts only the target the test names (no host services). `close()` kills PID 1, which
 * ends every process in the namespace. Needs root.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface SystemdLab {
  /** PID of systemd (PID 1 inside), as the host sees it. */
  readonly pid: number;
  /** Run a command inside (mount + PID namespace, and the network namespace); its stdout. Throws on a non-zero exit. */
  exec(cmd: string, args: readonly string[], o?: { input?: string; timeoutMs?: number }): string;
  /** Like exec, but returns the exit status and both outputs instead of throwing. */
  run(cmd: string, args: readonly string[], o?: { input?: string; timeoutMs?: number }): { status: number; stdout: string; stderr: string };
  /** Write a file inside (through the /etc overlay for /etc paths). */
  write(file: string, text: string): void;
  close(): Promise<void>;
}

export interface SystemdLabOptions {
  /** Scratch directory on the host (systemd's console log goes to `systemd.log` in it). */
  readonly dir: string;
  /** Run inside this network namespace (created by the test). */
  readonly netns?: string;
  /** Bind this directory over /usr/local inside. */
  readonly usrLocal?: string;
  /** Files to place before systemd starts: absolute path inside → content. */
  readonly files?: Readonly<Record<string, string>>;
}

const TARGET = 'fulcrum-test.target';

/** Start systemd and wait until `systemctl is-system-running` answers (running or degraded). */
export async function startSystemd(o: SystemdLabOptions): Promise<SystemdLab> {
  const stage = path.join(o.dir, 'stage');
  fs.mkdirSync(stage, { recursive: true });
  const files: Record<string, string> = {
    [`/etc/systemd/system/${TARGET}`]: '[Unit]\nDescription=Fulcrum test target (nothing else starts)\n',
    ...o.files,
  };
  const copies: string[] = [];
  for (const [i, [dest, text]] of Object.entries(files).entries()) {
    const src = path.join(stage, `f${i}`);
    fs.writeFileSync(src, text);
    copies.push(`mkdir -p ${JSON.stringify(path.dirname(dest))} && cp ${JSON.stringify(src)} ${JSON.stringify(dest)}`);
  }
  // systemd "boots" in here: whatever it starts must find only private copies of what it
  // may clean or write (systemd-tmpfiles empties /tmp at boot: masked, and /tmp is private anyway).
  // What sysinit.target would run that reaches beyond this namespace (the host's kernel
  // settings, file systems, utmp, binfmt, modules) is masked too.
  const masked = ['systemd-tmpfiles-setup.service', 'systemd-tmpfiles-setup-dev.service', 'systemd-tmpfiles-setup-dev-early.service',
    'systemd-tmpfiles-clean.service', 'systemd-tmpfiles-clean.timer', 'systemd-journal-flush.service', 'systemd-sysctl.service',
    'systemd-binfmt.service', 'systemd-modules-load.service', 'systemd-remount-fs.service', 'systemd-update-utmp.service',
    'systemd-sysusers.service', 'proc-sys-fs-binfmt_misc.automount', 'systemd-random-seed.service', 'systemd-machine-id-commit.service'];
  const script = [
    'set -e',
    'mount --make-rprivate /',
    'mount -t tmpfs -o mode=755 tmpfs /run',
    // /etc and /var/lib as overlays whose writes stay in this namespace's /run.
    'for d in etc var/lib; do u=/run/.ovl/$d; mkdir -p $u/upper $u/work; mount -t overlay overlay -o lowerdir=/$d,upperdir=$u/upper,workdir=$u/work /$d; done',
    ...(o.usrLocal !== undefined ? [`mount --bind ${JSON.stringify(o.usrLocal)} /usr/local`] : []),
    ...copies,
    ...masked.map((u) => `ln -sf /dev/null /etc/systemd/system/${u}`),
    'mkdir -p /etc/systemd/journald.conf.d && printf "[Journal]\\nStorage=volatile\\n" > /etc/systemd/journald.conf.d/fulcrum-test.conf',
    'mount -t tmpfs -o mode=1777 tmpfs /tmp',
    'mount -t tmpfs -o mode=1777 tmpfs /var/tmp',
    'export container=fulcrum-test',
    `exec /lib/systemd/systemd --system --unit=${TARGET} --log-target=console --log-level=notice --show-status=no`,
  ].join('\n');
  const scriptFile = path.join(stage, 'init.sh');
  fs.writeFileSync(scriptFile, script, { mode: 0o755 });
  const log = fs.openSync(path.join(o.dir, 'systemd.log'), 'a');
  const argv = ['unshare', '--pid', '--fork', '--mount', '--mount-proc', 'bash', scriptFile];
  const cmd = o.netns !== undefined ? ['ip', 'netns', 'exec', o.netns, ...argv] : argv;
  // Its own process group and no pipes to this process: systemd must never hold the test's stdio.
  const child: ChildProcess = spawn(cmd[0] as string, cmd.slice(1), { stdio: ['ignore', log, log], detached: true });
  fs.closeSync(log);
  const unsharePid = child.pid;
  if (unsharePid === undefined) throw new Error('could not start unshare');
  let pid = 0;
  const killAll = async (): Promise<void> => {
    for (const p of [pid, unsharePid]) {
      if (p <= 0) continue;
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // gone
      }
    }
    await sleep(100);
  };
  try {
    // systemd is unshare's child (unshare --fork); with `ip netns exec` in front, a grandchild.
    const deadline = Date.now() + 20_000;
    while (pid === 0 && Date.now() < deadline) {
      pid = findSystemd(unsharePid);
      if (pid === 0) await sleep(100);
    }
    if (pid === 0) throw new Error(`systemd did not start: ${fs.readFileSync(path.join(o.dir, 'systemd.log'), 'utf8').slice(-2000)}`);
    const lab = makeLab(pid, o.netns, killAll);
    for (let i = 0; i < 300; i++) {
      const r = lab.run('systemctl', ['is-system-running'], { timeoutMs: 5000 });
      if (/^(running|degraded)/.test(r.stdout.trim())) return lab;
      await sleep(100);
    }
    throw new Error(`systemd did not come up: ${lab.run('systemctl', ['is-system-running']).stdout.trim()}`);
  } catch (err: unknown) {
    await killAll();
    throw err;
  }
}

/** The systemd process below `root` (children, then grandchildren), or 0. */
function findSystemd(root: number): number {
  const queue = [root];
  for (let depth = 0; depth < 3 && queue.length > 0; depth++) {
    const next: number[] = [];
    for (const p of queue) {
      let kids: number[] = [];
      try {
        kids = fs.readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
      } catch {
        continue;
      }
      for (const k of kids) {
        try {
          if (fs.readFileSync(`/proc/${k}/comm`, 'utf8').trim() === 'systemd') return k;
        } catch {
          // gone
        }
        next.push(k);
      }
    }
    queue.splice(0, queue.length, ...next);
  }
  return 0;
}

function makeLab(pid: number, netns: string | undefined, killAll: () => Promise<void>): SystemdLab {
  const wrap = (cmd: string, args: readonly string[]): string[] => ['-t', String(pid), '-m', '-p', ...(netns !== undefined ? ['-n'] : []), '--', cmd, ...args];
  const lab: SystemdLab = {
    pid,
    run(cmd, args, o = {}) {
      try {
        const stdout = execFileSync('nsenter', wrap(cmd, args), { encoding: 'utf8', timeout: o.timeoutMs ?? 30_000, input: o.input ?? '', stdio: ['pipe', 'pipe', 'pipe'] });
        return { status: 0, stdout, stderr: '' };
      } catch (err: unknown) {
        const e = err as { status?: number | null; stdout?: string; stderr?: string };
        return { status: e.status ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? String(err) };
      }
    },
    exec(cmd, args, o = {}) {
      const r = lab.run(cmd, args, o);
      if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr.trim()} ${r.stdout.trim()}`);
      return r.stdout;
    },
    write(file, text) {
      lab.exec('sh', ['-c', 'mkdir -p "$(dirname "$1")" && cat > "$1"', 'sh', file], { input: text });
    },
    close: killAll,
  };
  return lab;
}
