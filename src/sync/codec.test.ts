import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  ConnFlag, decodeMessage, encodeMessages, encodeMessagesV0, ENTRY_V4, ENTRY_V6, HEADER_V1, IPPROTO, SyncRefusal, TcpState, type SyncEntry,
} from './codec.js';

/** Hex with spaces and `| comments` per line. */
const hex = (s: string): Buffer => Buffer.from(s.split('\n').map((l) => l.split('|')[0] ?? '').join('').replace(/\s/g, ''), 'hex');

const DR_CONN: SyncEntry = {
  family: 'inet', protocol: IPPROTO.TCP, flags: ConnFlag.DROUTE, state: TcpState.ESTABLISHED,
  cport: 40000, vport: 80, dport: 80, fwmark: 0, timeout: 900,
  caddr: '10.0.0.1', vaddr: '10.99.99.99', daddr: '10.0.2.11',
};

// Written byte by byte from struct ip_vs_sync_mesg and struct ip_vs_sync_v4 (ip_vs_sync.c),
// not from the encoder.
const GOLDEN_V4 = hex(`
  00 05 002c 01 01 0000                 | reserved 0, syncid 5, size 44, 1 entry, version 1, spare 0
  00 06 0024                            | type 0 (IPv4), TCP, ver 0 size 36
  00000003                              | flags: IP_VS_CONN_F_DROUTE
  0001 9c40 0050 0050                   | state ESTABLISHED, cport 40000, vport 80, dport 80
  00000000 00000384                     | fwmark 0, timeout 900 s
  0a000001 0a636363 0a00020b            | caddr, vaddr, daddr
`);

test('an IPv4 DR connection encodes to the kernel\'s layout, byte for byte', () => {
  const [m, ...rest] = encodeMessages([DR_CONN], { syncid: 5 });
  assert.equal(rest.length, 0);
  assert.equal(m?.toString('hex'), GOLDEN_V4.toString('hex'));
  const d = decodeMessage(GOLDEN_V4, { syncid: 5 });
  assert.ok(d.ok);
  assert.equal(d.version, 1);
  assert.deepEqual(d.entries, [DR_CONN]);
});

test('an IPv6 template with sequence data and a persistence engine: options, lengths and 4-byte alignment', () => {
  const tpl: SyncEntry = {
    family: 'inet6', protocol: IPPROTO.UDP, flags: ConnFlag.TEMPLATE | ConnFlag.MASQ, state: 0,
    cport: 0, vport: 5060, dport: 5060, fwmark: 7, timeout: 360,
    caddr: '2001:db8::1', vaddr: '2001:db8:99::99', daddr: 'fd00::11',
    peName: 'sip', peData: Buffer.from('call-1'),
  };
  const conn: SyncEntry = { ...DR_CONN, flags: ConnFlag.MASQ | ConnFlag.IN_SEQ, seq: { in: { initSeq: 1, delta: 2, previousDelta: 3 }, out: { initSeq: 4, delta: 5, previousDelta: 6 } } };
  const [m] = encodeMessages([tpl, conn], { syncid: 0 });
  assert.ok(m);
  // Template: 72 + (2 + 6) PE data + (2 + 3) PE name = 85 bytes, padded to 88 before the next.
  const size1 = ENTRY_V6 + 8 + 5;
  assert.equal(m.readUInt16BE(HEADER_V1 + 2), size1);
  assert.equal(m.readUInt8(HEADER_V1), 1, 'type bit 0: IPv6');
  assert.equal(m.readUInt32BE(HEADER_V1 + 4), ConnFlag.TEMPLATE);
  assert.equal(m.readUInt32BE(HEADER_V1 + 16), 7, 'fwmark');
  assert.equal(m.subarray(HEADER_V1 + ENTRY_V6, HEADER_V1 + ENTRY_V6 + 8).toString('hex'), '0206' + Buffer.from('call-1').toString('hex'));
  assert.equal(m.subarray(HEADER_V1 + ENTRY_V6 + 8, HEADER_V1 + size1).toString('hex'), '0303' + Buffer.from('sip').toString('hex'));
  const second = HEADER_V1 + 88;
  assert.deepEqual([...m.subarray(HEADER_V1 + size1, second)], [0, 0, 0], 'padding is zero');
  assert.equal(m.readUInt16BE(second + 2), ENTRY_V4 + 26);
  assert.equal(m.subarray(second + ENTRY_V4, second + ENTRY_V4 + 2).toString('hex'), '0118', 'sequence option: type 1, 24 bytes');
  assert.equal(m.readUInt16BE(2), m.length);
  assert.equal(m.length, second + ENTRY_V4 + 26, 'the last entry is not padded');
  assert.equal(decodeMessage(m, { syncid: 9 }).ok, false, 'syncid 0 is sent as 0; a receiver with syncid 9 refuses it');
  const d = decodeMessage(m, { syncid: 0 });
  assert.ok(d.ok);
  assert.deepEqual(d.entries, [tpl, conn]);
});

test('messages split at maxlen and at 255 entries', () => {
  const many = Array.from({ length: 600 }, (_, i): SyncEntry => ({ ...DR_CONN, cport: 1024 + i }));
  const small = encodeMessages(many, { syncid: 1, maxlen: 1472 });
  for (const m of small) assert.ok(m.length <= 1472);
  assert.equal(small.reduce((n, m) => n + m.readUInt8(4), 0), 600);
  assert.equal(small[0]?.readUInt8(4), Math.floor((1472 - HEADER_V1) / ENTRY_V4));
  const big = encodeMessages(many, { syncid: 1, maxlen: 65000 });
  assert.deepEqual(big.map((m) => m.readUInt8(4)), [255, 255, 90]);
  const back = big.flatMap((m) => { const d = decodeMessage(m, { syncid: 1 }); assert.ok(d.ok); return [...d.entries]; });
  assert.deepEqual(back, many);
  assert.throws(() => encodeMessages([DR_CONN], { syncid: 256 }), RangeError);
  assert.throws(() => encodeMessages([{ ...DR_CONN, cport: 70000 }], { syncid: 1 }), RangeError);
});

test('version 0 is read: 4-byte header, 24-byte entries, sequence data after flagged entries', () => {
  const v0 = hex(`
    02 03 004c                            | 2 entries, syncid 3, size 76
    00 11 1388 1388 1389 0a000001 0a636363 0a00020b 0000 0000   | UDP, ports 5000 5000 5001, MASQ, state 0
    00 06 9c40 0050 0050 0a000002 0a636363 0a00020c 0403 0001   | TCP, IN_SEQ|DROUTE, ESTABLISHED
    00000001 00000002 00000003 00000004 00000005 00000006       | sequence data
  `);
  assert.equal(v0.length, 76);
  const d = decodeMessage(v0, { syncid: 3 });
  assert.ok(d.ok);
  assert.equal(d.version, 0);
  assert.equal(d.entries.length, 2);
  assert.deepEqual(d.entries[0], { family: 'inet', protocol: 17, flags: 0, state: 0, cport: 5000, vport: 5000, dport: 5001, fwmark: 0, timeout: 0, caddr: '10.0.0.1', vaddr: '10.99.99.99', daddr: '10.0.2.11' });
  assert.deepEqual(d.entries[1]?.seq, { in: { initSeq: 1, delta: 2, previousDelta: 3 }, out: { initSeq: 4, delta: 5, previousDelta: 6 } });
  assert.equal(encodeMessagesV0(d.entries, { syncid: 3 })[0]?.toString('hex'), v0.toString('hex'));
});

test('refusals: every framing fault has a stable reason, single bad entries are skipped, the rest kept', () => {
  const r = (b: Buffer, syncid = 0): string => { const d = decodeMessage(b, { syncid }); return d.ok ? `ok:${d.entries.length}:${d.skipped.join(',')}:${d.truncated ?? ''}` : d.reason; };
  assert.equal(r(Buffer.alloc(3)), SyncRefusal.SHORT_HEADER);
  assert.equal(r(GOLDEN_V4.subarray(0, 40)), SyncRefusal.BAD_SIZE);
  assert.equal(r(GOLDEN_V4, 6), SyncRefusal.SYNCID);
  assert.equal(r(GOLDEN_V4, 5), 'ok:1::');
  const two = encodeMessages([DR_CONN, { ...DR_CONN, cport: 2 }], { syncid: 5 })[0] as Buffer;
  const at2 = HEADER_V1 + ENTRY_V4;
  // Entry size past the end.
  const big = Buffer.from(GOLDEN_V4); big.writeUInt16BE(40, HEADER_V1 + 2);
  assert.equal(r(big), SyncRefusal.TRUNCATED);
  // Entry version nibble.
  const ver = Buffer.from(GOLDEN_V4); ver.writeUInt16BE(0x1000 | 36, HEADER_V1 + 2);
  assert.equal(r(ver), SyncRefusal.ENTRY_VERSION);
  // Entry type 2.
  const typ = Buffer.from(GOLDEN_V4); typ.writeUInt8(2, HEADER_V1);
  assert.equal(r(typ), SyncRefusal.ENTRY_TYPE);
  // The second entry's type is bad: the first is kept, decoding stops.
  const second = Buffer.from(two); second.writeUInt8(2, at2);
  assert.equal(r(second), `ok:1::${SyncRefusal.ENTRY_TYPE}`);
  // Count says 3, two present.
  const count = Buffer.from(two); count.writeUInt8(3, 4);
  assert.equal(r(count), `ok:2::${SyncRefusal.COUNT}`);
  // Unknown protocol / out-of-range state: that entry alone is skipped.
  const proto = Buffer.from(two); proto.writeUInt8(47, HEADER_V1 + 1);
  assert.equal(r(proto), `ok:1:${SyncRefusal.PROTOCOL}:`);
  const state = Buffer.from(two); state.writeUInt16BE(11, at2 + 8);
  assert.equal(r(state), `ok:1:${SyncRefusal.STATE}:`);
  // Options: zero length, past the entry, unknown mandatory, unknown optional, sequence twice.
  const withOpt = (opt: string): Buffer => {
    const o = hex(opt);
    const b = Buffer.concat([GOLDEN_V4, o]);
    b.writeUInt16BE(b.length, 2);
    b.writeUInt16BE(ENTRY_V4 + o.length, HEADER_V1 + 2);
    return b;
  };
  assert.equal(r(withOpt('0100')), SyncRefusal.OPTION_LENGTH);
  assert.equal(r(withOpt('0105aabb')), SyncRefusal.OPTION_LENGTH);
  assert.equal(r(withOpt('0102aabb')), SyncRefusal.OPTION);
  assert.equal(r(withOpt('0502aabb')), `ok:0:${SyncRefusal.MANDATORY_OPTION}:`);
  assert.equal(r(withOpt('4502aabb')), 'ok:1::', 'bit 6 marks an option a receiver may skip');
  assert.equal(r(withOpt(`0118${'00'.repeat(24)}0118${'00'.repeat(24)}`)), SyncRefusal.OPTION);
  // Bytes after the last entry: entries kept, the fault named.
  const trailing = Buffer.concat([GOLDEN_V4, Buffer.alloc(8)]); trailing.writeUInt16BE(trailing.length, 2);
  assert.equal(r(trailing), `ok:1::${SyncRefusal.TRAILING}`);
});

const entryArb: fc.Arbitrary<SyncEntry> = fc.oneof(fc.constant('inet' as const), fc.constant('inet6' as const)).chain((family) => {
  const addr = family === 'inet' ? fc.ipV4() : fc.ipV6();
  const seqArb = fc.record({ initSeq: fc.nat({ max: 0xffffffff }), delta: fc.nat({ max: 0xffffffff }), previousDelta: fc.nat({ max: 0xffffffff }) });
  return fc.record({
    template: fc.boolean(),
    protocol: fc.constantFrom(IPPROTO.TCP, IPPROTO.UDP, IPPROTO.SCTP),
    fwd: fc.constantFrom(ConnFlag.MASQ, ConnFlag.TUNNEL, ConnFlag.DROUTE),
    inactive: fc.boolean(),
    cport: fc.nat({ max: 0xffff }), vport: fc.nat({ max: 0xffff }), dport: fc.nat({ max: 0xffff }),
    fwmark: fc.nat({ max: 0xffffffff }), timeout: fc.nat({ max: 0xffffffff }),
    caddr: addr, vaddr: addr, daddr: addr,
    seq: fc.option(fc.record({ in: seqArb, out: seqArb }), { nil: undefined }),
    peName: fc.option(fc.string({ minLength: 1, maxLength: 16, unit: fc.constantFrom(...'abcdefghijklmnop'.split('')) }), { nil: undefined }),
    peData: fc.option(fc.uint8Array({ minLength: 1, maxLength: 255 }), { nil: undefined }),
  }).map((r): SyncEntry => {
    const norm = (a: string): string => (family === 'inet6' ? new URL(`http://[${a}]`).hostname.slice(1, -1) : a);
    const states = r.protocol === IPPROTO.TCP ? 11 : r.protocol === IPPROTO.SCTP ? 13 : 1;
    return {
      family, protocol: r.protocol, flags: r.fwd | (r.template ? ConnFlag.TEMPLATE : 0) | (r.inactive ? ConnFlag.INACTIVE : 0) | (r.seq ? ConnFlag.IN_SEQ : 0),
      state: r.template ? 0 : (r.cport % states), cport: r.cport, vport: r.vport, dport: r.dport, fwmark: r.fwmark, timeout: r.timeout,
      caddr: norm(r.caddr), vaddr: norm(r.vaddr), daddr: norm(r.daddr),
      ...(r.seq ? { seq: { in: { ...r.seq.in }, out: { ...r.seq.out } } } : {}), ...(r.peName ? { peName: r.peName } : {}), ...(r.peData ? { peData: Buffer.from(r.peData) } : {}),
    };
  });
});

test('property: random entries round-trip through any maxlen', () => {
  fc.assert(fc.property(fc.array(entryArb, { maxLength: 40 }), fc.integer({ min: 600, max: 9000 }), fc.nat({ max: 255 }), (entries, maxlen, syncid) => {
    const msgs = encodeMessages(entries, { syncid, maxlen });
    const back: SyncEntry[] = [];
    for (const m of msgs) {
      assert.ok(m.length <= maxlen);
      const d = decodeMessage(m, { syncid });
      assert.ok(d.ok, d.ok ? '' : d.detail);
      assert.equal(d.skipped.length, 0);
      assert.equal(d.truncated, undefined);
      back.push(...d.entries);
    }
    assert.deepEqual(back, entries);
  }), { numRuns: 300 });
});

test('fuzz: arbitrary and mutated datagrams never throw, and whatever decodes re-encodes', () => {
  const seed = encodeMessages([DR_CONN, { ...DR_CONN, family: 'inet6', caddr: '2001:db8::1', vaddr: '2001:db8::99', daddr: 'fd00::1' }], { syncid: 0 })[0] as Buffer;
  const mutated = fc.array(fc.tuple(fc.nat({ max: seed.length - 1 }), fc.nat({ max: 255 })), { maxLength: 6 }).map((muts) => {
    const b = Buffer.from(seed);
    for (const [i, v] of muts) b[i] = v;
    return b;
  });
  fc.assert(fc.property(fc.oneof(fc.uint8Array({ maxLength: 400 }).map((u) => Buffer.from(u)), mutated), (b) => {
    const d = decodeMessage(b, { syncid: 0 });
    if (d.ok) for (const e of d.entries) assert.doesNotThrow(() => encodeMessages([e], { syncid: 0, maxlen: 65000 }));
  }), { numRuns: 3000 });
});
