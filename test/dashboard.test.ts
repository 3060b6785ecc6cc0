/**
 * The dashboard in headless Chromium (Debian's, driven by playwright-core) against a real
 * `fulcrum run`: one real server healthy, one refusing connections. The page must say what
 * is down and why, show the service with both servers, and the event timeline; a
 * screenshot is taken (DASHBOARD_SCREENSHOT=path keeps a copy).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { startDaemon } from '../src/testing/daemon.js';
import { fetchText, freePort, openSocket, readLine, startServer } from '../src/testing/net.js';
import { runAdm } from '../src/cli/adm.js';
import { closedPort, ensureCommand, ensureFile } from '../src/testing/peers.js';

test('dashboard: headless Chromium shows the down server with its probe evidence, the service, and the timeline', { timeout: 180_000 }, async () => {
  const executablePath = ensureCommand('chromium', 'chromium');
  ensureFile(['/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf'], 'fonts-dejavu-core');
  const ok = await startServer('web-1', { mode: 'name' });
  const dead = await closedPort();
  const vport = await freePort();
  const apiPort = await freePort();
  // Connection sync on lo (multicast stays on the loopback): the panel shows its role and channel.
  // BGP through Fulcrum's own gobgpd; its neighbour is a loopback address nothing listens on.
  ensureCommand('gobgpd', 'gobgpd');
  const conf = `global_defs {
  lvs_sync_daemon lo id 3
}
fulcrum_bgp {
  local_as 65001
  router_id 10.255.0.1
  listen_port -1
  shutdown_grace 0
  neighbor 127.61.9.1 {
    remote_as 65000
    port 1791
  }
}
virtual_server 127.0.0.1 ${vport} {
  announce bgp
  delay_loop 1
  lb_algo wrr
  lb_kind PROXY
  real_server 127.0.0.1 ${ok.port} {
    weight 2
    TCP_CHECK { connect_timeout 1 }
  }
  real_server 127.0.0.1 ${dead} {
    weight 1
    TCP_CHECK { connect_timeout 1 retry 0 }
  }
}
`;
  const tokenDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-dash-'));
  const tokenFile = path.join(tokenDir, 'token');
  fs.writeFileSync(tokenFile, 'dashboard-test-token-0123456789\n', { mode: 0o600 });
  const daemon = await startDaemon(conf, { args: ['--api-listen', `127.0.0.1:${apiPort}`, '--api-token-file', tokenFile] });
  let browser: Browser | null = null;
  try {
    await daemon.waitLog((l) => l.event === 'api', 10000, 'the API');
    await daemon.waitLog((l) => l.event === 'server-down' && String(l['server']).endsWith(`:${dead}`), 15000, 'the dead server to be taken out');
    for (let i = 0; i < 5; i++) assert.equal((await fetchText(vport)).trim(), 'web-1');
    browser = await chromium.launch({
      executablePath, headless: true, timeout: 60_000,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
    const resp = await page.goto(`http://127.0.0.1:${apiPort}/`, { timeout: 30_000 });
    assert.equal(resp?.status(), 200, 'the page itself (no data) loads without the token');
    // Its state needs the token: the page asks for it; a wrong one is refused.
    await page.locator('body[data-state="locked"]').waitFor({ state: 'attached', timeout: 15_000 });
    assert.equal(await page.locator(`[data-service="tcp 127.0.0.1:${vport}"]`).count(), 0, 'nothing shown without the token');
    await page.fill('#token', 'not-the-token-at-all');
    await page.click('#login button');
    await page.locator('#login-reason', { hasText: 'refused' }).waitFor({ timeout: 15_000 });
    await page.fill('#token', 'dashboard-test-token-0123456789');
    await page.click('#login button');
    const svc = page.locator(`[data-service="tcp 127.0.0.1:${vport}"]`);
    await svc.waitFor({ timeout: 15_000 });
    await page.locator('body[data-state="live"]').waitFor({ state: 'attached', timeout: 15_000 });
    const alerts = await page.locator('#alerts').innerText();
    assert.match(alerts, /1 real server\(s\) down/);
    assert.match(alerts, new RegExp(`127\\.0\\.0\\.1:${dead} in tcp 127\\.0\\.0\\.1:${vport}: TCP_CHECK: connection refused, \\d+ ms`));
    const downRow = svc.locator(`tr[data-server="127.0.0.1:${dead}"]`);
    assert.equal(await downRow.locator('.badge').innerText(), 'DOWN');
    const upRow = svc.locator(`tr[data-server="127.0.0.1:${ok.port}"]`);
    assert.equal(await upRow.locator('.badge').innerText(), 'UP');
    assert.match(await upRow.innerText(), /\b2\b/, 'its weight');
    assert.match(await svc.locator('.totals').innerText(), /^5 connections/);
    await page.locator('#events li[data-kind="health"]').first().waitFor({ timeout: 10_000 });
    assert.match(await page.locator('#events').innerText(), new RegExp(`127\\.0\\.0\\.1:${dead}[^]*out of rotation: TCP_CHECK down`));
    assert.match(await page.locator('#sync').innerText(), /master\+backup lo → 224\.0\.0\.81:8848 · syncid 3/);
    await page.locator('#bgp .bgp-route').filter({ hasText: 'announced' }).waitFor({ timeout: 15_000 });
    const bgpText = await page.locator('#bgp').innerText();
    assert.match(bgpText, /speaker up\s+gobgpd \(pid \d+\) · AS 65001 · router id 10\.255\.0\.1/);
    assert.match(bgpText, /neighbor 127\.61\.9\.1 AS 65000/);
    assert.match(bgpText, new RegExp(`announced\\s+127\\.0\\.0\\.1/32 · tcp 127\\.0\\.0\\.1:${vport} has quorum`));
    const shot = await page.screenshot({ fullPage: true });
    assert.deepEqual([...shot.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG');
    assert.ok(shot.length > 20_000, `a rendered page, not a blank one (${shot.length} bytes)`);
    const keep = process.env['DASHBOARD_SCREENSHOT'];
    if (keep) fs.writeFileSync(keep, shot);
  } finally {
    await browser?.close();
    await daemon.cleanup();
    await ok.close();
    fs.rmSync(tokenDir, { recursive: true, force: true });
  }
});

test('dashboard actions: read-only without the token; with it drain, undrain and weight go through the API as fulcrum adm does, confirmed, in the timeline; charts survive a reload', { timeout: 180_000 }, async () => {
  const executablePath = ensureCommand('chromium', 'chromium');
  ensureFile(['/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf'], 'fonts-dejavu-core');
  const rs1 = await startServer('web-1', { mode: 'name-echo' });
  const rs2 = await startServer('web-2', { mode: 'name-echo' });
  const vport = await freePort();
  const apiPort = await freePort();
  const conf = `virtual_server 127.0.0.1 ${vport} {
  lb_algo wrr
  lb_kind PROXY
  real_server 127.0.0.1 ${rs1.port} {
    weight 1
  }
  real_server 127.0.0.1 ${rs2.port} {
    weight 2
  }
}
`;
  const tokenDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-dash-act-'));
  const tokenFile = path.join(tokenDir, 'token');
  const token = 'dashboard-actions-token-0123456789';
  fs.writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
  // The dashboard is open (read-only) without the token; every /v1 request still needs it.
  const daemon = await startDaemon(conf, {
    args: ['--api-listen', `127.0.0.1:${apiPort}`, '--api-token-file', tokenFile, '--api-open', 'dashboard'],
    spawn: { env: { ...process.env, FULCRUM_HISTORY_STEP_MS: '300' } },
  });
  const svcKey = `tcp 127.0.0.1:${vport}`;
  const list = async (): Promise<string[]> => {
    const out: string[] = [];
    const code = await runAdm(['--socket', path.join(daemon.dir, 'fulcrum.sock'), '-L', '-n'], { out: (t) => { out.push(...t.split('\n')); }, err: (t) => { out.push(t); } });
    assert.equal(code, 0, out.join('\n'));
    return out;
  };
  const weightOf = async (port: number): Promise<string | undefined> => (await list()).find((l) => l.includes(`127.0.0.1:${port} `))?.trim().split(/\s+/)[3];
  let browser: Browser | null = null;
  const held: import('node:net').Socket[] = [];
  let traffic = true;
  try {
    await daemon.waitLog((l) => l.event === 'api', 10000, 'the API');
    // Traffic for the charts, and one connection held on web-2 so a drain stays in progress.
    const loop = (async () => {
      while (traffic) {
        const s = await openSocket(vport);
        await readLine(s);
        s.destroy();
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    for (let i = 0; i < 10 && held.length === 0; i++) {
      const s = await openSocket(vport);
      if ((await readLine(s)) === 'web-2') held.push(s);
      else s.destroy();
    }
    assert.equal(held.length, 1, 'a connection held on web-2');
    browser = await chromium.launch({ executablePath, headless: true, timeout: 60_000, args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(`http://127.0.0.1:${apiPort}/`, { timeout: 30_000 });
    const svc = page.locator(`[data-service="${svcKey}"]`);
    await svc.waitFor({ timeout: 15_000 });
    // Read-only: the state is shown, no action is offered, and the API refuses one without the token.
    await page.locator('#readonly:not([hidden])').waitFor({ timeout: 10_000 });
    assert.equal(await page.locator('td.actions button').count(), 0, 'no actions without the token');
    const anon = await page.evaluate(async (body) => (await fetch('v1/drains', { method: 'POST', headers: { 'content-type': 'application/json' }, body })).status,
      JSON.stringify({ server: `127.0.0.1:${rs2.port}` }));
    assert.equal(anon, 401);
    await page.click('#unlock');
    await page.fill('#token', token);
    await page.click('#login button');
    const row2 = svc.locator(`tr[data-server="127.0.0.1:${rs2.port}"]`);
    const row1 = svc.locator(`tr[data-server="127.0.0.1:${rs1.port}"]`);
    await row2.locator('button[data-action="drain"]').waitFor({ timeout: 10_000 });

    // Drain web-2: confirmed first (cancel changes nothing), then in effect as in fulcrum adm.
    await row2.locator('button[data-action="drain"]').click();
    await page.locator('#action:not([hidden])').waitFor();
    assert.match(await page.locator('#action-text').innerText(), new RegExp(`Drain 127\\.0\\.0\\.1:${rs2.port} in ${svcKey}`));
    await page.click('#action-cancel');
    assert.equal(await weightOf(rs2.port), '2', 'cancelled: nothing changed');
    await row2.locator('button[data-action="drain"]').click();
    await page.click('#action-confirm');
    const result = async (): Promise<string> => {
      await page.locator('#action-result.ok, #action-result.bad').waitFor({ timeout: 10_000 });
      return `${await page.locator('#action-result').getAttribute('class')}: ${await page.locator('#action-result').innerText()}`;
    };
    assert.match(await result(), /^ok: Drain .* done$/);
    assert.equal(await weightOf(rs2.port), '0', 'drained: weight 0 in fulcrum adm -L -n');
    await row2.locator('button[data-action="undrain"]').waitFor({ timeout: 10_000 });
    assert.equal(await row2.locator('.badge').innerText(), 'DRAIN');
    await page.locator('#events li[data-kind="drain"]', { hasText: 'draining until' }).waitFor({ timeout: 10_000 });

    // Undrain: the drain is cancelled and the weight from before comes back.
    await row2.locator('button[data-action="undrain"]').click();
    await page.click('#action-confirm');
    await page.locator('#action-result.ok', { hasText: 'Undrain' }).waitFor({ timeout: 10_000 });
    assert.equal(await weightOf(rs2.port), '2', 'undrained: weight 2 again');
    await page.locator('#events li[data-kind="drain"]', { hasText: /drain cancelled by api \(127\.0\.0\.1\): weight 2 restored/ }).waitFor({ timeout: 10_000 });
    held[0]?.write('still here\n');
    assert.equal(await readLine(held[0] as import('node:net').Socket), 'still here', 'the held connection was never cut');

    // Weight: the same -e line fulcrum adm sends.
    await row1.locator('button[data-action="weight"]').click();
    await page.fill('#action-weight', '5');
    await page.click('#action-confirm');
    await page.locator('#action-result.ok', { hasText: 'weight' }).waitFor({ timeout: 10_000 });
    assert.equal(await weightOf(rs1.port), '5');
    await page.locator('#events li[data-kind="runtime"]', { hasText: new RegExp(`runtime change from api \\(127\\.0\\.0\\.1\\): -e -t 127\\.0\\.0\\.1:${vport} -r 127\\.0\\.0\\.1:${rs1.port} --proxy -w 5`) })
      .waitFor({ timeout: 10_000 });
    // A refused change says why.
    await row1.locator('button[data-action="weight"]').click();
    await page.fill('#action-weight', '70000');
    await page.click('#action-confirm');
    await page.locator('#action-result.bad').waitFor({ timeout: 10_000 });
    assert.equal(await weightOf(rs1.port), '5');

    // Charts plot the daemon's history: after a reload they come back at once, with the samples taken before it.
    await page.waitForTimeout(1500);
    await page.reload();
    await page.locator('body[data-state="live"]').waitFor({ state: 'attached', timeout: 15_000 });
    const chartLine = svc.locator(`figure[data-chart="Throughput per real server"] polyline[data-series="127.0.0.1:${rs1.port}"]`).first();
    await chartLine.waitFor({ state: 'attached', timeout: 10_000 });
    const points = (await chartLine.getAttribute('points'))?.trim().split(/\s+/).length ?? 0;
    assert.ok(points >= 10, `the chart has the daemon's samples from before the reload (${points} points)`);
    assert.equal(await svc.locator('figure.chart-box').count(), 3);
    const keep = process.env['DASHBOARD_ACTIONS_SCREENSHOT'];
    if (keep) fs.writeFileSync(keep, await page.screenshot({ fullPage: true }));
    traffic = false;
    await loop;
  } finally {
    traffic = false;
    for (const s of held) s.destroy();
    await browser?.close();
    await daemon.cleanup();
    await rs1.close();
    await rs2.close();
    fs.rmSync(tokenDir, { recursive: true, force: true });
  }
});
