/**
 * An operator's daily costs, in one run, against HAProxy in the same run (issue 22):
 *  1. CLI start-up: `fulcrum check -f` on a small file and `fulcrum adm -L -n` against a
 *     running daemon, each run ≥ 15 times alternately — median wall and CPU (user + system,
 *     from bash's `time`, to the millisecond).
 *  2. /metrics at 1,000 real servers: Fulcrum and HAProxy (prometheus-exporter) hold the
 *     same servers; scrapes alternate Fulcrum, HAProxy, … in 3 rounds; p50/p99 per round and
 *     the median of the rounds. Both resident set sizes after. Weight changes the same way
 *     (Fulcrum's durable PATCH on the unix socket, HAProxy's in-memory `set weight`).
 *  3. Health-check CPU per check: `dist/bench/health.js` (2,000 servers against nginx,
 *     Fulcrum then HAProxy for each checker) three times; the median ratio.
 * Prints every figure and the ratios. Run: `npm run bench:ops`.
 * Env: BENCH_ROUNDS (3), BENCH_SCRAPES (20 per round), BENCH_CHANGES (100 per round),
 *      BENCH_CLI_RUNS (15), BENCH_HEALTH_SECONDS (8), BENCH_SKIP_HEALTH=1,
 *      BENCH_CLIENTS (8: concurrent clients for the group-commit phase).
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { apiRequest, type ApiTarget } from '../src/api/client.js';
import { EMPTY_OVERLAY, FileRuntimeStore, type RuntimeOverlay } from '../src/runtime/index.js';
import { repoRoot } from '../src/testing/index.js';
import { startDaemon } from '../src/testing/daemon.js';
import { freePort } from '../src/testing/net.js';
import { ensureCommand } from '../src/testing/peers.js';
import { fulcrumConfig, haproxyCommand, haproxyConfig, pct, PER_SERVICE, rssOf, server } from './api.js';

const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
const SCRAPES = Number(process.env['BENCH_SCRAPES'] ?? 20);
const CHANGES = Number(process.env['BENCH_CHANGES'] ?? 100);
const CLI_RUNS = Number(process.env['BENCH_CLI_RUNS'] ?? 15);
const CLIENTS = Number(process.env['BENCH_CLIENTS'] ?? 8);
const SERVICES = 10;
const median = (xs: readonly number[]): number => pct(xs, 50);
const f1 = (n: number): string => n.toFixed(1);

/**
 * Wall and CPU seconds of one command, from bash's `time` (getrusage of the child, printed to
 * the millisecond; GNU time prints hundredths, which put every median on a 10 ms step).
 */
function timed(cmd: string, args: readonly string[]): { wall: number; cpu: number } {
  const r = spawnSync('bash', ['-c', 'TIMEFORMAT="%3R %3U %3S"; time "$@" > /dev/null 2>/dev/null', 'bash', cmd, ...args], { encoding: 'utf8', cwd: repoRoot() });
  if (r.status !== 0) {
    const again = spawnSync(cmd, args, { encoding: 'utf8', cwd: repoRoot() });
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${again.stderr}`);
  }
  const last = r.stderr.trim().split('\n').at(-1) ?? '';
  const [wall, user, sys] = last.split(' ').map(Number);
  return { wall: wall ?? NaN, cpu: (user ?? NaN) + (sys ?? NaN) };
}

async function cliStartup(): Promise<void> {
  const bin = path.join(repoRoot(), 'bin', 'fulcrum.js');
  const d = await startDaemon(fs.readFileSync(path.join(repoRoot(), 'examples', 'quickstart.conf'), 'utf8').replace(/8080/g, String(await freePort())), { args: ['--workers', '1'] });
  try {
    await d.waitLog((l) => l.event === 'api', 10_000, 'the API');
    const sock = path.join(d.dir, 'fulcrum.sock');
    const check: { wall: number; cpu: number }[] = [];
    const adm: { wall: number; cpu: number }[] = [];
    const node: { wall: number; cpu: number }[] = [];
    // One untimed run of each first: it writes the start-up chunks' V8 code cache (bin/fulcrum.js),
    // which every later run of an operator's `watch -n1` reads.
    timed(process.execPath, [bin, 'check', '-f', 'examples/quickstart.conf']);
    timed(process.execPath, [bin, 'adm', '--socket', sock, '-L', '-n']);
    for (let i = 0; i < CLI_RUNS; i++) {
      check.push(timed(process.execPath, [bin, 'check', '-f', 'examples/quickstart.conf']));
      adm.push(timed(process.execPath, [bin, 'adm', '--socket', sock, '-L', '-n']));
      node.push(timed(process.execPath, ['-e', '0']));
    }
    const row = (name: string, xs: { wall: number; cpu: number }[]): string =>
      `${name.padEnd(28)} wall median ${(median(xs.map((x) => x.wall)) * 1000).toFixed(0)} ms, CPU median ${(median(xs.map((x) => x.cpu)) * 1000).toFixed(0)} ms (${xs.length} runs)`;
    console.log('\n## CLI start-up (target: median ≤ 150 ms wall, ≤ 100 ms CPU)');
    console.log(row('fulcrum check -f (small)', check));
    console.log(row('fulcrum adm -L -n', adm));
    console.log(row('node -e 0 (the floor)', node));
  } finally {
    await d.cleanup();
  }
}

/** Durable commits of runtime changes so far (`/v1/status`). */
async function runtimeCommits(target: ApiTarget): Promise<number> {
  const r = await apiRequest(target, 'GET', '/v1/status');
  const commits = (JSON.parse(r.text) as { runtime?: { commits?: unknown } }).runtime?.commits;
  if (r.status !== 200 || typeof commits !== 'number') throw new Error(`/v1/status: ${r.status} ${r.text.slice(0, 200)}`);
  return commits;
}

async function metricsAndRss(): Promise<void> {
  const vports: number[] = [];
  for (let i = 0; i < SERVICES; i++) vports.push(await freePort());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-bench-ops-'));
  const token = 'bench-ops-token-0123456789abcdef';
  fs.writeFileSync(path.join(dir, 'token'), `${token}\n`);
  const apiPort = await freePort();
  const statsPort = await freePort();
  const sock = path.join(dir, 'haproxy.sock');
  fs.writeFileSync(path.join(dir, 'haproxy.cfg'), `${haproxyConfig(vports, sock, statsPort)}\n`);
  const haproxy = spawn(ensureCommand('haproxy', 'haproxy'), ['-f', path.join(dir, 'haproxy.cfg'), '-db'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const d = await startDaemon(fulcrumConfig(vports), { args: ['--api-listen', `127.0.0.1:${apiPort}`, '--api-token-file', path.join(dir, 'token')] });
  try {
    await d.waitLog((l) => l.event === 'api', 10_000, 'the API');
    for (let i = 0; i < 200 && !fs.existsSync(sock); i++) await new Promise((r) => setTimeout(r, 25));
    const targets: Record<'fulcrum' | 'haproxy', ApiTarget> = {
      fulcrum: { url: `http://127.0.0.1:${apiPort}`, token },
      haproxy: { url: `http://127.0.0.1:${statsPort}` },
    };
    const scrape = async (who: 'fulcrum' | 'haproxy'): Promise<{ ms: number; bytes: number }> => {
      const t = performance.now();
      const r = await apiRequest(targets[who], 'GET', '/metrics');
      const ms = performance.now() - t;
      if (r.status !== 200) throw new Error(`${who} /metrics answered ${r.status}`);
      return { ms, bytes: r.text.length };
    };
    // Warm both (JIT, caches): a Prometheus scrapes every 15 s for as long as the director runs.
    for (let i = 0; i < 5; i++) await Promise.all([scrape('fulcrum'), scrape('haproxy')]);
    const key = encodeURIComponent(`tcp 127.0.0.1:${vports[0] ?? 0}`);
    const first = server(0, 0);
    const unix: ApiTarget = { socketPath: path.join(d.dir, 'fulcrum.sock') };
    // Warm the change path the same way (its first changes run before V8 has optimised it).
    for (let i = 0; i < 20; i++) {
      const a = await apiRequest(unix, 'PATCH', `/v1/services/${key}/servers/${first.address}:${first.port}`, { weight: 1 + (i % 5) });
      if (a.status !== 200) throw new Error(a.text);
    }
    const rounds: Record<string, number>[] = [];
    let bytes = { fulcrum: 0, haproxy: 0 };
    for (let r = 0; r < ROUNDS; r++) {
      const ms = { fulcrum: [] as number[], haproxy: [] as number[] };
      for (let i = 0; i < SCRAPES; i++) {
        // Alternate which goes first.
        for (const who of (i % 2 === 0 ? ['fulcrum', 'haproxy'] : ['haproxy', 'fulcrum']) as ('fulcrum' | 'haproxy')[]) {
          const s = await scrape(who);
          ms[who].push(s.ms);
          bytes = { ...bytes, [who]: s.bytes };
        }
      }
      const change = { fulcrum: [] as number[], haproxy: [] as number[] };
      for (let i = 0; i < CHANGES; i++) {
        let t = performance.now();
        const a = await apiRequest(unix, 'PATCH', `/v1/services/${key}/servers/${first.address}:${first.port}`, { weight: 1 + (i % 5) });
        change.fulcrum.push(performance.now() - t);
        if (a.status !== 200) throw new Error(a.text);
        t = performance.now();
        const out = await haproxyCommand(sock, `set weight vs0/rs0 ${1 + (i % 5)}`);
        change.haproxy.push(performance.now() - t);
        if (out.trim() !== '') throw new Error(out);
      }
      // The same number of changes from CLIENTS clients at once, each on its own real server:
      // concurrent changes share a commit (one reconcile, one fsync'd save).
      const commitsBefore = await runtimeCommits(unix);
      const conc = { fulcrum: [] as number[], haproxy: [] as number[] };
      const per = Math.max(1, Math.round(CHANGES / CLIENTS));
      await Promise.all(Array.from({ length: CLIENTS }, async (_, c) => {
        const rs = server(0, c);
        for (let i = 0; i < per; i++) {
          const t = performance.now();
          const a = await apiRequest(unix, 'PATCH', `/v1/services/${key}/servers/${rs.address}:${rs.port}`, { weight: 1 + ((i + c) % 5) });
          conc.fulcrum.push(performance.now() - t);
          if (a.status !== 200) throw new Error(a.text);
        }
      }));
      const commits = (await runtimeCommits(unix)) - commitsBefore;
      await Promise.all(Array.from({ length: CLIENTS }, async (_, c) => {
        for (let i = 0; i < per; i++) {
          const t = performance.now();
          const out = await haproxyCommand(sock, `set weight vs0/rs${c} ${1 + ((i + c) % 5)}`);
          conc.haproxy.push(performance.now() - t);
          if (out.trim() !== '') throw new Error(out);
        }
      }));
      rounds.push({
        ccP50: pct(conc.fulcrum, 50), ccP99: pct(conc.fulcrum, 99), chcP50: pct(conc.haproxy, 50), chcP99: pct(conc.haproxy, 99),
        perCommit: (per * CLIENTS) / Math.max(1, commits),
        fP50: pct(ms.fulcrum, 50), fP99: pct(ms.fulcrum, 99), hP50: pct(ms.haproxy, 50), hP99: pct(ms.haproxy, 99),
        cfP50: pct(change.fulcrum, 50), cfP99: pct(change.fulcrum, 99), chP50: pct(change.haproxy, 50), chP99: pct(change.haproxy, 99),
      });
    }
    const m = (k: string): number => median(rounds.map((x) => x[k] ?? NaN));
    console.log(`\n## /metrics at ${SERVICES * PER_SERVICE} real servers, scrapes alternating, ${ROUNDS} rounds × ${SCRAPES} (target: p50 ≤ 1.0× HAProxy)`);
    for (const [i, x] of rounds.entries()) {
      console.log(`round ${i + 1}: fulcrum p50 ${f1(x['fP50'] ?? 0)} / p99 ${f1(x['fP99'] ?? 0)} ms; haproxy p50 ${f1(x['hP50'] ?? 0)} / p99 ${f1(x['hP99'] ?? 0)} ms; ratio p50 ${((x['fP50'] ?? 0) / (x['hP50'] ?? 1)).toFixed(2)}×`);
    }
    console.log(`median of rounds: fulcrum p50 ${f1(m('fP50'))} / p99 ${f1(m('fP99'))} ms (${(bytes.fulcrum / 1024).toFixed(0)} KiB); haproxy p50 ${f1(m('hP50'))} / p99 ${f1(m('hP99'))} ms (${(bytes.haproxy / 1024).toFixed(0)} KiB); ratio p50 ${(m('fP50') / m('hP50')).toFixed(2)}×, p99 ${(m('fP99') / m('hP99')).toFixed(2)}×`);
    console.log(`\n## Weight change, ${ROUNDS} rounds × ${CHANGES} (target: Fulcrum p99 ≤ 5 ms, durable)`);
    console.log(`median of rounds: fulcrum p50 ${m('cfP50').toFixed(2)} / p99 ${m('cfP99').toFixed(2)} ms (durable: journal flushed before it answers); haproxy p50 ${m('chP50').toFixed(2)} / p99 ${m('chP99').toFixed(2)} ms (memory only)`);
    console.log(`${CLIENTS} clients at once, ${Math.max(1, Math.round(CHANGES / CLIENTS)) * CLIENTS} changes per round: fulcrum p50 ${m('ccP50').toFixed(2)} / p99 ${m('ccP99').toFixed(2)} ms, ${m('perCommit').toFixed(1)} changes per durable commit (group commit); haproxy p50 ${m('chcP50').toFixed(2)} / p99 ${m('chcP99').toFixed(2)} ms`);
    const fr = rssOf(d.proc.pid ?? 0);
    const hr = rssOf(haproxy.pid ?? 0);
    console.log(`\n## Resident memory at ${SERVICES * PER_SERVICE} real servers (target: ≤ 3× HAProxy)`);
    console.log(`fulcrum ${f1(fr)} MiB (the whole process, with its ${os.availableParallelism()} data-plane worker threads), haproxy ${f1(hr)} MiB; ratio ${(fr / hr).toFixed(2)}×`);
  } finally {
    await d.cleanup();
    haproxy.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function health(): void {
  const seconds = process.env['BENCH_HEALTH_SECONDS'] ?? '8';
  const ratios: Record<string, number[]> = { 'TCP_CHECK': [], 'TCP_CHECK half-open': [], 'HTTP_GET': [] };
  const lines: string[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const out = execFileSync(process.execPath, [path.join(repoRoot(), 'dist', 'bench', 'health.js')], { encoding: 'utf8', env: { ...process.env, BENCH_SECONDS: seconds }, maxBuffer: 1 << 20 });
    for (const l of out.split('\n')) {
      const m = /^(TCP_CHECK|TCP_CHECK half-open|HTTP_GET) ratio fulcrum\/haproxy CPU per check: ([\d.]+)×/.exec(l);
      if (m) ratios[m[1] as string]?.push(Number(m[2]));
      if (/µs\/check/.test(l)) lines.push(`round ${r + 1}: ${l.replace(/, start lateness.*CPU/, ', CPU')}`);
    }
  }
  console.log(`\n## Health checks: CPU per check, 2,000 servers at 1 check/s each, ${ROUNDS} rounds of ${seconds} s (target: ≤ 1.5× HAProxy)`);
  for (const l of lines) console.log(l);
  for (const [k, xs] of Object.entries(ratios)) console.log(`${k}: median ratio ${median(xs).toFixed(2)}× (rounds: ${xs.map((x) => `${x.toFixed(2)}×`).join(', ')})`);
}

/**
 * The runtime store's save alone, 3 × 300 saves of a one-server overlay on the disk under
 * /var/tmp: the journal (FileRuntimeStore) against the rename path every save took before
 * 2026-12-02 (temporary file, fsync, rename, fsync of the directory), interleaved.
 */
async function saves(): Promise<void> {
  const dir = fs.mkdtempSync('/var/tmp/fulcrum-bench-save-');
  const overlay = (weight: number): RuntimeOverlay => ({
    ...EMPTY_OVERLAY,
    servers: [{ service: 'tcp 10.0.0.1:80', key: '10.0.1.1:80', state: 'edited', server: { family: 'inet', address: '10.0.1.1', port: 80, method: 'nat', weight, uthreshold: 0, lthreshold: 0 } }],
  });
  const renamePath = (where: string, ov: RuntimeOverlay): void => {
    const tmp = `${where}.tmp`;
    const fd = fs.openSync(tmp, 'w', 0o600);
    fs.writeSync(fd, `${JSON.stringify(ov, null, 2)}\n`);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(tmp, where);
    const d = fs.openSync(dir, 'r');
    fs.fsyncSync(d);
    fs.closeSync(d);
  };
  try {
    console.log('\n## Runtime store: one durable save (3 rounds × 300, interleaved)');
    for (let round = 0; round < ROUNDS; round++) {
      const store = new FileRuntimeStore(path.join(dir, 'runtime.json'));
      const journal: number[] = [];
      const rename: number[] = [];
      for (let i = 0; i < 300; i++) {
        let t = performance.now();
        await store.save(overlay(i));
        journal.push(performance.now() - t);
        t = performance.now();
        renamePath(path.join(dir, 'old.json'), overlay(i));
        rename.push(performance.now() - t);
      }
      store.close();
      console.log(`round ${round + 1}: FileRuntimeStore.save (journal) p50 ${pct(journal, 50).toFixed(2)} / p99 ${pct(journal, 99).toFixed(2)} ms; temp + fsync + rename + fsync dir p50 ${pct(rename, 50).toFixed(2)} / p99 ${pct(rename, 99).toFixed(2)} ms`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  console.log(`# bench:ops — ${new Date().toISOString()}, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), Linux ${os.release()}, node ${process.version}, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  await cliStartup();
  await metricsAndRss();
  await saves();
  if (process.env['BENCH_SKIP_HEALTH'] !== '1') health();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
