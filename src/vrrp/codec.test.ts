import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { checkAdvert, decodeAdvert, decodeIpv4, DropReason, encodeAdvert, type Envelope } from './codec.js';
import { ipv4Datagram } from '../sys/fake-host.js';

// Captured from keepalived 2.2.7 between namespaces (../shared/design/findings.md).
const KEEPALIVED_V2 = '2133960101011cc70acd00647361357077000000';
const KEEPALIVED_V3 = '31339601006441d90acd0064';
const env4 = (src = '10.205.0.1', ttl: number | undefined = 255): Envelope => ({ family: 'inet', src, dst: '224.0.0.18', ttl });

test('encodes exactly what keepalived sends: v2 with PASS, v3 with the pseudo-header checksum', () => {
  const common = { family: 'inet' as const, vrid: 51, priority: 150, intervalCs: 100, addresses: ['10.205.0.100'], src: '10.205.0.1', dst: '224.0.0.18' };
  assert.equal(encodeAdvert({ ...common, version: 2, password: 'sa5pw' }).toString('hex'), KEEPALIVED_V2);
  assert.equal(encodeAdvert({ ...common, version: 3 }).toString('hex'), KEEPALIVED_V3);
});

test('decodes keepalived\'s packets', () => {
  const v2 = decodeAdvert(Buffer.from(KEEPALIVED_V2, 'hex'), env4());
  assert.ok(v2.ok);
  assert.deepEqual({ ...v2.advert, authData: v2.advert.authData.toString('latin1') },
    { version: 2, vrid: 51, priority: 150, intervalCs: 100, addresses: ['10.205.0.100'], authType: 1, authData: 'sa5pw\0\0\0' });
  const v3 = decodeAdvert(Buffer.from(KEEPALIVED_V3, 'hex'), env4());
  assert.ok(v3.ok);
  assert.equal(v3.advert.intervalCs, 100);
  assert.equal(v3.advert.version, 3);
  // The v3 checksum covers the source: from another address it does not verify.
  const other = decodeAdvert(Buffer.from(KEEPALIVED_V3, 'hex'), env4('10.205.0.2'));
  assert.equal(other.ok ? 'ok' : other.reason, DropReason.CHECKSUM);
});

test('IPv6 v3 round trip with the IPv6 pseudo-header', () => {
  const b = encodeAdvert({ version: 3, family: 'inet6', vrid: 7, priority: 200, intervalCs: 10, addresses: ['2001:db8::10', 'fe80::10'], src: 'fe80::1', dst: 'ff02::12' });
  assert.equal(b.length, 8 + 32);
  const r = decodeAdvert(b, { family: 'inet6', src: 'fe80::1', dst: 'ff02::12', ttl: 255 });
  assert.ok(r.ok);
  assert.deepEqual(r.advert.addresses, ['2001:db8::10', 'fe80::10']);
  assert.equal(r.advert.intervalCs, 10);
  const bad = decodeAdvert(b, { family: 'inet6', src: 'fe80::2', dst: 'ff02::12', ttl: 255 });
  assert.equal(bad.ok ? 'ok' : bad.reason, DropReason.CHECKSUM);
});

test('each kind of malformed packet is rejected with its reason', () => {
  const good = Buffer.from(KEEPALIVED_V2, 'hex');
  const mutate = (f: (b: Buffer) => void): Buffer => { const b = Buffer.from(good); f(b); return b; };
  const cases: [string, Buffer, Envelope, DropReason][] = [
    ['TTL 64', good, env4(undefined, 64), DropReason.TTL],
    ['truncated header', good.subarray(0, 6), env4(), DropReason.TRUNCATED],
    ['truncated addresses', good.subarray(0, 14), env4(), DropReason.TRUNCATED],
    ['version 4', mutate((b) => { b[0] = 0x41; }), env4(), DropReason.VERSION],
    ['type 2', mutate((b) => { b[0] = 0x22; }), env4(), DropReason.TYPE],
    ['checksum', mutate((b) => { b[6] = (b[6] ?? 0) ^ 0xff; }), env4(), DropReason.CHECKSUM],
    ['payload bit flip', mutate((b) => { b[10] = 1; }), env4(), DropReason.CHECKSUM],
    ['v2 over IPv6', good, { family: 'inet6', src: 'fe80::1', dst: 'ff02::12', ttl: 255 }, DropReason.VERSION],
  ];
  for (const [name, bytes, env, reason] of cases) {
    const r = decodeAdvert(bytes, env);
    assert.equal(r.ok ? 'accepted' : r.reason, reason, name);
    if (!r.ok) assert.ok(r.detail.length > 0);
  }
});

test('checkAdvert: auth, interval, address count and list, version', () => {
  const r = decodeAdvert(Buffer.from(KEEPALIVED_V2, 'hex'), env4());
  assert.ok(r.ok);
  const want = { version: 2 as const, family: 'inet' as const, intervalCs: 100, addresses: ['10.205.0.100'], password: 'sa5pw' };
  assert.deepEqual(checkAdvert(r.advert, want), { ok: true });
  const reason = (w: Partial<typeof want> & { password?: string | undefined }): string => { const c = checkAdvert(r.advert, { ...want, ...w }); return c.ok ? 'ok' : c.reason; };
  assert.equal(reason({ password: 'other' }), DropReason.AUTH);
  assert.equal(reason({ password: undefined }), DropReason.AUTH);
  assert.equal(reason({ intervalCs: 200 }), DropReason.INTERVAL);
  assert.equal(reason({ addresses: ['10.205.0.100', '10.205.0.101'] }), DropReason.ADDRESS_COUNT);
  assert.equal(reason({ addresses: ['10.205.0.101'] }), DropReason.ADDRESSES);
  assert.equal(reason({ version: 3 as unknown as 2 }), DropReason.VERSION);
  // Only the first 8 characters of a password count, as in keepalived.
  const long = encodeAdvert({ version: 2, family: 'inet', vrid: 1, priority: 100, intervalCs: 100, addresses: ['10.0.0.1'], password: 'abcdefghXYZ', src: '10.0.0.2', dst: '224.0.0.18' });
  const d = decodeAdvert(long, env4('10.0.0.2'));
  assert.ok(d.ok);
  assert.deepEqual(checkAdvert(d.advert, { version: 2, family: 'inet', intervalCs: 100, addresses: ['10.0.0.1'], password: 'abcdefgh' }), { ok: true });
});

test('decodeIpv4 reads TTL, addresses and payload; rejects short headers', () => {
  const d = decodeIpv4(ipv4Datagram('10.0.0.2', '224.0.0.18', Buffer.from(KEEPALIVED_V2, 'hex'), 254));
  assert.ok(d.ok);
  assert.deepEqual([d.ttl, d.src, d.dst, d.protocol, d.payload.toString('hex')], [254, '10.0.0.2', '224.0.0.18', 112, KEEPALIVED_V2]);
  const short = decodeIpv4(Buffer.alloc(12));
  assert.equal(short.ok ? 'ok' : short.reason, DropReason.TRUNCATED);
});

test('property: any encoded advert decodes to itself; any single-byte corruption is rejected', () => {
  const v4 = fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 })).map(([a, b]) => `10.0.${a}.${b}`);
  fc.assert(fc.property(
    fc.constantFrom(2 as const, 3 as const), fc.integer({ min: 1, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.array(v4, { minLength: 1, maxLength: 8 }),
    fc.integer({ min: 1, max: 255 }), fc.nat(), fc.integer({ min: 1, max: 255 }),
    (version, vrid, priority, addresses, secs, pos, flip) => {
      const x = { version, family: 'inet' as const, vrid, priority, intervalCs: secs * 100 % 4096 || 100, addresses, password: version === 2 ? 'pw' : undefined, src: '10.1.0.1', dst: '224.0.0.18' };
      const b = encodeAdvert(x);
      const r = decodeAdvert(b, env4('10.1.0.1'));
      assert.ok(r.ok);
      assert.deepEqual([r.advert.vrid, r.advert.priority, r.advert.addresses], [vrid, priority, addresses]);
      const c = Buffer.from(b);
      const i = pos % c.length;
      c[i] = (c[i] ?? 0) ^ flip;
      const bad = decodeAdvert(c, env4('10.1.0.1'));
      assert.equal(bad.ok, false, `byte ${i} ^ ${flip} accepted`);
    }), { numRuns: 500 });
});
