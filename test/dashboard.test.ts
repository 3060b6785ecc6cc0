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
import { fetchText, freePort, startServer } from '../src/testing/net.js';
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
