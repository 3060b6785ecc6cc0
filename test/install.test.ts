/**
 * Installed the way operators install a director, on a copy of this checkout as a fresh
 * clone has it (tracked and new files, nothing built):
 *  1. the README's quick-start command 1, exactly as written, shows the director balancing;
 *  2. `npm pack` → `npm install -g` into a temporary prefix gives a working `fulcrum`
 *     (check, run, adm), its manual pages and shell completions;
 *  3. `systemd-analyze verify` accepts both shipped units;
 *  4. the shipped fulcrum.service, unchanged, runs the installed package under a real
 *     systemd (PID 1 of a namespace of its own): Type=notify readiness only once the
 *     listeners are open, the default configuration path, exactly three capabilities,
 *     VRRP and nftables working under the unit's hardening, reload by SIGHUP (good and
 *     broken files), a clean stop.
 * Runs once per CI run (the Node 20 line): what it tests is the package and the system
 * node, not the Node.js line the suite runs on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { repoRoot } from '../src/testing/index.js';
import { isRoot } from '../src/testing/netns.js';
import { ensureCommand } from '../src/testing/peers.js';
import { startSystemd, type SystemdLab } from '../src/testing/systemd-lab.js';
import { startServer, freePort, fetchText, type TestServer } from '../src/testing/net.js';

const skip = isRoot() ? false : 'needs root (npm install -g into a prefix is fine, but systemd and network namespaces need root)';
const npmEnv = { ...process.env, npm_config_prefer_offline: 'true', npm_config_fund: 'false', npm_config_audit: 'false', npm_config_update_notifier: 'false' };

/** README's quick-start command N (the line after `# N.` in its first sh block). */
function readmeCommand(n: number): string {
  const readme = fs.readFileSync(path.join(repoRoot(), 'README.md'), 'utf8');
  const lines = readme.split('\n');
  const at = lines.findIndex((l) => l.trim().startsWith(`# ${n}.`));
  const cmd = lines[at + 1]?.trim();
  if (at < 0 || !cmd) throw new Error(`README has no quick-start command ${n}`);
  return cmd;
}

/** A copy of the checkout as `git clone` would give it (tracked and not-ignored files only). */
function cleanCopy(dest: string): void {
  const root = repoRoot();
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 })
    .split('\0').filter(Boolean);
  for (const f of files) {
    const src = path.join(root, f);
    if (!fs.existsSync(src)) continue; // deleted in the work tree
    fs.mkdirSync(path.dirname(path.join(dest, f)), { recursive: true });
    fs.copyFileSync(src, path.join(dest, f));
  }
}

function sh(cmd: string, args: readonly string[], o: { cwd?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): string {
  return execFileSync(cmd, args, { cwd: o.cwd, encoding: 'utf8', timeout: o.timeoutMs ?? 120_000, env: o.env ?? npmEnv, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
}

/** Run `cmd` in its own process group until `done(output)` or the timeout; then SIGINT the group. */
async function runUntil(cmd: string, cwd: string, done: (out: string) => boolean, timeoutMs: number): Promise<{ out: string; code: number | null }> {
  const child = spawn('bash', ['-c', cmd], { cwd, env: npmEnv, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
  child.stderr.on('data', (c: Buffer) => { out += c.toString(); });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const deadline = Date.now() + timeoutMs;
  while (!done(out) && child.exitCode === null && Date.now() < deadline) await sleep(100);
  const group = (sig: NodeJS.Signals): void => {
    try {
      process.kill(-(child.pid as number), sig);
    } catch {
      // gone
    }
  };
  group('SIGINT');
  const code = await Promise.race([exited, sleep(15_000).then(() => 'late' as const)]);
  if (code === 'late') {
    group('SIGKILL');
    return { out, code: await exited };
  }
  return { out, code };
}

test('installed like a system daemon: quick start, npm pack + install -g, man pages, completions, systemd', { skip, timeout: 600_000 }, async (t) => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-install-'));
  const clone = path.join(work, 'clone');
  const prefix = path.join(work, 'prefix');
  t.after(() => fs.rmSync(work, { recursive: true, force: true }));
  cleanCopy(clone);

  await t.test("README command 1 exactly as written, on a fresh copy: the director balances wrr 3:2:1", async () => {
    const cmd = readmeCommand(1);
    assert.match(cmd, /^npm ci && /, 'command 1 installs from the lock file');
    const { out } = await runUntil(cmd, clone, (o) => /split: .*\n/.test(o), 300_000);
    const split = /split: 127\.0\.0\.1:9001 (\d+), 127\.0\.0\.1:9002 (\d+), 127\.0\.0\.1:9003 (\d+)/.exec(out);
    assert.ok(split, `the demo printed its split:\n${out.slice(-3000)}`);
    assert.deepEqual(split.slice(1).map(Number), [6, 4, 2]);
    assert.doesNotMatch(out, /ENOENT|_npx/);
  });

  let tarball = '';
  await t.test('npm pack → npm install -g into a prefix: fulcrum check, run, adm; man pages and completions installed', async () => {
    const packed = JSON.parse(sh('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: clone })) as { filename: string; files: { path: string }[] }[];
    const entry = packed[0];
    assert.ok(entry);
    tarball = path.join(work, entry.filename);
    const files = new Set(entry.files.map((f) => f.path));
    for (const f of ['bin/fulcrum.js', 'bin/package.json', 'dist/src/cli/main.js', 'dist/src/cli/main.bundle.cjs', 'dist/src/cli/main.import.cjs', 'dist/man/fulcrum.8', 'dist/man/fulcrum.conf.5', 'dist/completion/fulcrum.bash',
      'dist/completion/_fulcrum', 'systemd/fulcrum.service', 'systemd/fulcrum-agent.service', 'examples/quickstart.conf', 'dist/dashboard/index.html',
      'dist/native/libfulcrum_pump.so', 'native/pump.c']) {
      assert.ok(files.has(f), `the package holds ${f}`);
    }
    assert.equal([...files].filter((f) => f.endsWith('.test.js')).length, 0, 'no test files in the package');
    assert.deepEqual([...files].filter((f) => f.startsWith('dist/code-cache/')), [], 'no code cache of the machine that packed it');

    sh('npm', ['install', '-g', '--prefix', prefix, tarball], { timeoutMs: 240_000 });
    const bin = path.join(prefix, 'bin', 'fulcrum');
    const pkg = path.join(prefix, 'lib', 'node_modules', 'fulcrum');
    assert.match(sh(bin, ['--version']), /^\d+\.\d+\.\d+/);
    assert.match(sh(bin, ['check', '-f', path.join(pkg, 'examples', 'quickstart.conf')]), /OK — 0 VRRP instances, 1 virtual server \(3 real servers\)/);
    // The start-up chunks' V8 code cache, kept beside the package where it can be written.
    assert.ok(fs.readdirSync(path.join(pkg, 'dist', 'code-cache')).some((f) => f.startsWith("main.bundle.check.cjs.v")), 'a code cache for check');
    assert.match(sh(bin, ['check', '-f', path.join(pkg, 'examples', 'quickstart.conf')]), /OK — 0 VRRP instances/, 'and a run from it');
    ensureCommand('groff', 'groff-base');
    ensureCommand('man', 'man-db');
    for (const page of ['man8/fulcrum.8', 'man5/fulcrum.conf.5']) {
      const p = path.join(prefix, 'share', 'man', page);
      assert.ok(fs.existsSync(p), `${page} installed under the prefix`);
      const lint = execFileSync('groff', ['-man', '-ww', '-z', p], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      assert.equal(lint, '');
    }
    const page = sh('man', ['-P', 'cat', 'fulcrum'], { env: { ...npmEnv, MANPATH: path.join(prefix, 'share', 'man'), MANWIDTH: '120' } });
    for (const sub of ['check', 'run', 'adm', 'demo', 'realserver', 'agent', 'genhash', 'sim']) assert.match(page, new RegExp(`fulcrum ${sub}`), `man fulcrum documents ${sub}`);

    // The installed package runs the director and its CLI talks to it.
    const rs: TestServer[] = [];
    let daemon: ChildProcess | null = null;
    try {
      for (let i = 1; i <= 2; i++) rs.push(await startServer(`inst${i}`));
      const port = await freePort();
      const conf = path.join(work, 'run.conf');
      fs.writeFileSync(conf, `virtual_server 127.0.0.1 ${port} {\n  lb_algo rr\n  lb_kind PROXY\n  protocol TCP\n${rs.map((s) => `  real_server 127.0.0.1 ${s.port} {\n  }`).join('\n')}\n}\n`);
      const sock = path.join(work, 'api.sock');
      daemon = spawn(bin, ['run', '-f', conf, '--workers', '1', '--nft', 'none', '--api-socket', sock, '--state-file', path.join(work, 'state.json'), '--log-level', 'warn'], { stdio: 'ignore' });
      const deadline = Date.now() + 20_000;
      let list = '';
      while (Date.now() < deadline) {
        try {
          list = sh(bin, ['adm', '--socket', sock, '-L', '-n']);
          break;
        } catch {
          await sleep(200);
        }
      }
      assert.match(list, new RegExp(`TCP  127\\.0\\.0\\.1:${port} rr`));
      for (const s of rs) assert.match(list, new RegExp(`-> 127\\.0\\.0\\.1:${s.port}`));
      const answers = new Set<string>();
      for (let i = 0; i < 4; i++) answers.add((await fetchText(port)).trim());
      assert.deepEqual([...answers].sort(), ['inst1', 'inst2']);
    } finally {
      daemon?.kill('SIGTERM');
      if (daemon && daemon.exitCode === null) await new Promise((r) => daemon?.once('exit', r));
      for (const s of rs) await s.close();
    }

    // bash completion from the package completes subcommands and ipvsadm options.
    const bash = path.join(pkg, 'dist', 'completion', 'fulcrum.bash');
    const complete = (words: string): string => sh('bash', ['-c', `source ${JSON.stringify(bash)}; COMP_WORDS=(${words}); COMP_CWORD=$(( \${#COMP_WORDS[@]} - 1 )); _fulcrum; echo "\${COMPREPLY[*]}"`]).trim();
    assert.deepEqual(complete('fulcrum r').split(' ').sort(), ['realserver', 'run']);
    assert.equal(complete('fulcrum adm -L --stat'), '--stats');
    assert.equal(complete('fulcrum realserver st').split(' ').sort().join(' '), 'start status stop');
    ensureCommand('zsh', 'zsh');
    sh('zsh', ['-n', path.join(pkg, 'dist', 'completion', '_fulcrum')]);
  });

  await t.test('systemd-analyze verify accepts fulcrum.service and fulcrum-agent.service', () => {
    ensureCommand('systemd-analyze', 'systemd');
    // verify resolves ExecStart= and man: pages: point them at the installed prefix.
    const dir = path.join(work, 'units');
    fs.mkdirSync(dir, { recursive: true });
    const pkg = path.join(prefix, 'lib', 'node_modules', 'fulcrum');
    for (const u of ['fulcrum.service', 'fulcrum-agent.service']) {
      fs.writeFileSync(path.join(dir, u), fs.readFileSync(path.join(pkg, 'systemd', u), 'utf8').replaceAll('/usr/local/bin/fulcrum', path.join(prefix, 'bin', 'fulcrum')));
    }
    const r = (() => {
      try {
        return { status: 0, out: execFileSync('systemd-analyze', ['verify', '--man=yes', path.join(dir, 'fulcrum.service'), path.join(dir, 'fulcrum-agent.service')],
          { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, MANPATH: path.join(prefix, 'share', 'man') } }) };
      } catch (err: unknown) {
        const e = err as { status?: number; stdout?: string; stderr?: string };
        return { status: e.status ?? -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
      }
    })();
    assert.equal(r.status, 0, r.out);
    assert.doesNotMatch(r.out, /fulcrum(-agent)?\.service/, `no finding about the units: ${r.out}`);
  });

  await t.test('fulcrum.service under a real systemd: ready when serving, three capabilities, VRRP + nftables, reload, stop', async () => {
    ensureCommand('unshare', 'util-linux');
    ensureCommand('nft', 'nftables');
    const ns = `fulinst-${process.pid % 100000}`;
    const ip = (...a: string[]): string => sh('ip', a);
    try {
      ip('netns', 'del', ns);
    } catch {
      // not left over
    }
    ip('netns', 'add', ns);
    const servers: ChildProcess[] = [];
    let lab: SystemdLab | null = null;
    try {
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      ip('-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0p');
      ip('-n', ns, 'addr', 'add', '10.231.0.1/24', 'dev', 'eth0');
      ip('-n', ns, 'link', 'set', 'eth0', 'up');
      ip('-n', ns, 'link', 'set', 'eth0p', 'up');
      // Two real servers inside the namespace, answering their names.
      const js = (name: string, port: number): string => `require('net').createServer((s)=>{s.on('error',()=>{});s.end('${name}\\n')}).listen(${port},'127.0.0.1')`;
      servers.push(spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', js('sd1', 9201)], { stdio: 'ignore' }));
      servers.push(spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', js('sd2', 9202)], { stdio: 'ignore' }));
      const conf = (w1: number, broken = false): string => `global_defs {
  router_id fulcrum-systemd-test
}
vrrp_instance VI_1 {
  state MASTER
  interface eth0
  virtual_router_id 71
  priority 255
  advert_int 1
  virtual_ipaddress {
    10.231.0.100/24
  }
}
virtual_server 127.0.0.1 8081 {
  lb_algo wrr
  lb_kind PROXY
  protocol TCP
  real_server 127.0.0.1 9201 {
    weight ${w1}
  }
  real_server 127.0.0.1 9202 {
    weight 1
  }
}
virtual_server 10.231.0.100 80 {
  lb_algo rr
  lb_kind NAT
  protocol TCP
  real_server 10.231.0.2 80 {
  }
}
${broken ? 'virtual_server 10.231.0.100 81 {\n  lb_algo nosuch\n}\n' : ''}`;
      const unit = fs.readFileSync(path.join(prefix, 'lib', 'node_modules', 'fulcrum', 'systemd', 'fulcrum.service'), 'utf8');
      lab = await startSystemd({
        dir: work, netns: ns, usrLocal: prefix,
        files: { '/etc/systemd/system/fulcrum.service': unit, '/etc/fulcrum/fulcrum.conf': conf(1) },
      });
      const L = lab;
      const client = (): string => L.exec(process.execPath, ['-e',
        "const s=require('net').connect(8081,'127.0.0.1');let d='';s.on('data',(c)=>d+=c);s.on('end',()=>{process.stdout.write(d)});s.on('error',(e)=>{process.stdout.write('ERR '+e.code)})"]).trim();
      const show = (): Record<string, string> => Object.fromEntries(L.exec('systemctl', ['show', 'fulcrum.service', '-p', 'ActiveState,SubState,Result,StatusText,MainPID,NRestarts'])
        .trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
      const journal = (): string => L.run('journalctl', ['-u', 'fulcrum.service', '-o', 'cat', '--no-pager']).stdout;

      // systemctl start returns once READY=1 arrived: the listener must answer at once.
      L.exec('systemctl', ['start', 'fulcrum.service'], { timeoutMs: 60_000 });
      assert.match(client(), /^sd[12]$/, 'serving as soon as systemctl start returned');
      let s = show();
      assert.equal(s['ActiveState'], 'active');
      assert.equal(s['SubState'], 'running');
      assert.match(s['StatusText'] ?? '', /3 virtual server|2 virtual server/);
      assert.match(journal(), /no -f given: reading \/etc\/fulcrum\/fulcrum\.conf/);
      // Exactly CAP_NET_BIND_SERVICE (10), CAP_NET_ADMIN (12), CAP_NET_RAW (13).
      const status = L.exec('cat', [`/proc/${s['MainPID']}/status`]);
      assert.equal(/^CapEff:\s+(\S+)/m.exec(status)?.[1], '0000000000003400', status);
      assert.equal(/^CapBnd:\s+(\S+)/m.exec(status)?.[1], '0000000000003400');
      // VRRP (raw sockets, addresses) and the kernel plane (nftables) work under the unit's hardening.
      const deadline = Date.now() + 15_000;
      while (Date.now() < deadline && !L.exec('ip', ['-4', 'addr', 'show', 'dev', 'eth0']).includes('10.231.0.100/24')) await sleep(200);
      assert.match(L.exec('ip', ['-4', 'addr', 'show', 'dev', 'eth0']), /10\.231\.0\.100\/24/, `VRRP master holds the VIP:\n${journal().slice(-3000)}`);
      assert.match(L.exec('nft', ['list', 'tables']), /fulcrum/, 'the NAT service is in nftables');

      // systemctl reload: a changed weight is applied; a broken file is rejected and the service stays up.
      L.write('/etc/fulcrum/fulcrum.conf', conf(3));
      L.exec('systemctl', ['reload', 'fulcrum.service']);
      const reloaded = Date.now() + 10_000;
      while (Date.now() < reloaded && !/"event":"reloaded"/.test(journal())) await sleep(200);
      assert.match(journal(), /"event":"reloaded"/);
      L.write('/etc/fulcrum/fulcrum.conf', conf(1, true));
      L.exec('systemctl', ['reload', 'fulcrum.service']);
      const rejected = Date.now() + 10_000;
      while (Date.now() < rejected && !/"event":"reload-rejected"/.test(journal())) await sleep(200);
      assert.match(journal(), /fulcrum\.conf:\d+:\d+: error E_[A-Z_]+: .*nosuch/);
      s = show();
      assert.equal(s['ActiveState'], 'active', 'a rejected reload leaves the service running');
      assert.match(client(), /^sd[12]$/);

      // systemctl stop: SIGTERM to the daemon, a clean exit, the VIP released.
      L.exec('systemctl', ['stop', 'fulcrum.service'], { timeoutMs: 60_000 });
      s = show();
      assert.equal(s['ActiveState'], 'inactive');
      assert.equal(s['Result'], 'success', journal().slice(-2000));
      assert.equal(s['NRestarts'], '0');
      assert.doesNotMatch(L.exec('ip', ['-4', 'addr', 'show', 'dev', 'eth0']), /10\.231\.0\.100/);
    } finally {
      await lab?.close();
      for (const c of servers) c.kill('SIGKILL');
      try {
        ip('netns', 'del', ns);
      } catch {
        // gone
      }
    }
  });
});
