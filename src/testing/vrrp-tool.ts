/**
 * A VRRP observer and malformed-packet injector for namespace tests, run inside a lab
 * host with `ip netns exec`:
 *
 *   node vrrp-tool.js observe IFACE SRC
 *     one JSON line per VRRP packet seen on IFACE: { t (epoch ms), src, vrid, priority, version, ttl }
 *   node vrrp-tool.js inject IFACE SRC VRID PASSWORD VIP
 *     sends one packet of each malformed kind (TTL, truncated, version, type, checksum,
 *     VRID, address count, address, auth, interval) to 224.0.0.18, then exits
 *   node vrrp-tool.js probe - VIP:PORT DURATION_MS
 *     a client loop: connect, read one line, close, every 5 ms (each try bounded by
 *     100 ms) for DURATION_MS; one JSON line per try: { t, ok, reply }
 */
import net from 'node:net';
import { ffiHostNetwork, ffiRawSockets } from '../sys/index.js';
import { decodeAdvert, decodeIpv4, encodeAdvert } from '../vrrp/index.js';

const [mode, iface, src, ...rest] = process.argv.slice(2);
if (!iface || !src) {
  process.stderr.write('usage: vrrp-tool observe IFACE SRC | inject IFACE SRC VRID PASSWORD VIP\n');
  process.exit(2);
}
const epoch = (): number => performance.timeOrigin + performance.now();

if (mode === 'observe') {
  const ch = ffiHostNetwork.openVrrp({ family: 'inet', ifname: iface, group: '224.0.0.18', source: src }, (p) => {
    const d = decodeIpv4(p.data);
    if (!d.ok) return;
    const a = decodeAdvert(d.payload, { family: 'inet', src: d.src, dst: d.dst, ttl: d.ttl });
    const b = d.payload;
    process.stdout.write(`${JSON.stringify({ t: epoch(), src: d.src, vrid: b[1], priority: b[2], version: (b[0] ?? 0) >> 4, ttl: d.ttl, valid: a.ok })}\n`);
  });
  const keep = setInterval(() => undefined, 1 << 30);
  process.on('SIGTERM', () => { ch.close(); clearInterval(keep); process.exit(0); });
} else if (mode === 'inject') {
  const [vridS, password, vip] = rest;
  const vrid = Number(vridS);
  const dst = '224.0.0.18';
  const good = (o: Partial<Parameters<typeof encodeAdvert>[0]> = {}): Buffer =>
    encodeAdvert({ version: 2, family: 'inet', vrid, priority: 254, intervalCs: 100, addresses: [vip ?? '0.0.0.0'], password, src, dst, ...o });
  const flip = (b: Buffer, i: number): Buffer => { const c = Buffer.from(b); c[i] = (c[i] ?? 0) ^ 0x55; return c; };
  const ch = ffiHostNetwork.openVrrp({ family: 'inet', ifname: iface, group: dst, source: src }, () => undefined);
  const kinds: [string, Buffer][] = [
    ['truncated', good().subarray(0, 5)],
    ['bad-version', flip(good(), 0)],
    ['bad-type', Buffer.from([0x23, ...good().subarray(1)])],
    ['bad-checksum', flip(good(), 7)],
    ['unknown-vrid', good({ vrid: vrid === 255 ? 254 : vrid + 1 })],
    ['address-count-mismatch', good({ addresses: [vip ?? '0.0.0.0', '192.0.2.1'] })],
    ['address-mismatch', good({ addresses: ['192.0.2.1'] })],
    ['auth-mismatch', good({ password: 'wrong' })],
    ['interval-mismatch', good({ intervalCs: 300 })],
  ];
  for (const [kind, b] of kinds) {
    ch.send(b, dst);
    process.stdout.write(`${kind}\n`);
  }
  ch.close();
  // A well-formed advert with TTL 1 (a plain raw socket's multicast TTL): "bad-ttl".
  const raw = ffiRawSockets.open('inet', 112, () => undefined);
  raw.send(good(), dst);
  raw.close();
  process.stdout.write('bad-ttl\n');
} else if (mode === 'probe') {
  const [host, portS] = src.split(':');
  const port = Number(portS);
  const end = performance.now() + Number(rest[0] ?? '1000');
  const once = (): Promise<{ ok: boolean; reply: string }> => new Promise((resolve) => {
    const s = net.connect({ host: host ?? '', port });
    let buf = '';
    const done = (ok: boolean, reply: string): void => { clearTimeout(timer); s.destroy(); resolve({ ok, reply }); };
    const timer = setTimeout(() => done(false, 'timeout'), 100);
    s.on('data', (d) => { buf += d.toString(); if (buf.includes('\n')) done(true, buf.trim()); });
    s.on('error', (e: NodeJS.ErrnoException) => done(false, e.code ?? e.message));
    s.on('end', () => done(buf.length > 0, buf.trim() || 'closed'));
  });
  void (async () => {
    for (let i = 0; i < 100_000 && performance.now() < end; i++) {
      const t = epoch();
      const r = await once();
      process.stdout.write(`${JSON.stringify({ t, ...r })}\n`);
      await new Promise((res) => setTimeout(res, 5));
    }
  })();
} else {
  process.stderr.write(`unknown mode ${mode ?? ''}\n`);
  process.exit(2);
}
