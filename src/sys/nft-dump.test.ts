import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseSetElements, setElementsRequest } from './nft-dump.js';

const attr = (type: number, data: Buffer): Buffer => {
  const b = Buffer.alloc((4 + data.length + 3) & ~3);
  b.writeUInt16LE(4 + data.length, 0);
  b.writeUInt16LE(type, 2);
  data.copy(b, 4);
  return b;
};
const nest = (type: number, ...parts: Buffer[]): Buffer => attr(type | 0x8000, Buffer.concat(parts));
const msg = (type: number, body: Buffer, seq = 7): Buffer => {
  const h = Buffer.alloc(16);
  h.writeUInt32LE(16 + body.length, 0);
  h.writeUInt16LE(type, 4);
  h.writeUInt32LE(seq, 8);
  return Buffer.concat([h, body]);
};
const be64 = (n: number): Buffer => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(n)); return b; };

test('the dump request names the family, table and set', () => {
  const r = setElementsRequest('netdev', 'fulcrum', 'conn4', 9);
  assert.equal(r.readUInt16LE(4), (10 << 8) | 13, 'NFNL_SUBSYS_NFTABLES, NFT_MSG_GETSETELEM');
  assert.equal(r.readUInt16LE(6), 0x301, 'NLM_F_REQUEST | NLM_F_DUMP');
  assert.equal(r[16], 5, 'NFPROTO_NETDEV');
  assert.ok(r.includes(Buffer.from('fulcrum\0')) && r.includes(Buffer.from('conn4\0')));
  assert.equal(r.readUInt32LE(0), r.length);
});

test('NEWSETELEM messages → elements with key, value, expiry and counter; DONE and errors end the dump', () => {
  const key = Buffer.from('00100000' + '0a000001' + '04000000', 'hex');
  const counter = nest(7, attr(1, Buffer.from('counter\0')), nest(2, attr(1, be64(1500)), attr(2, be64(3))));
  const el = nest(1, nest(1, attr(1, key)), nest(2, attr(1, Buffer.from('01100000', 'hex'))), attr(5, be64(899_500)), counter);
  const body = Buffer.concat([Buffer.from([5, 0, 0, 0]), attr(1, Buffer.from('fulcrum\0')), attr(2, Buffer.from('conn4\0')), nest(3, el, el)]);
  const done = msg(3, Buffer.alloc(4));
  const r = parseSetElements(Buffer.concat([msg((10 << 8) | 12, body), done]));
  assert.equal(r.done, true);
  assert.equal(r.errno, null);
  assert.equal(r.elements.length, 2);
  assert.deepEqual(r.elements[0], { key, data: Buffer.from('01100000', 'hex'), expiresMs: 899_500, counter: { bytes: 1500, packets: 3 } });
  const err = Buffer.alloc(20);
  err.writeInt32LE(-2, 16);
  assert.deepEqual(parseSetElements(Buffer.concat([msg(2, err.subarray(16))])), { elements: [], done: true, errno: 2 });
  assert.equal(parseSetElements(msg((10 << 8) | 12, body)).done, false, 'more to come');
});

test('fuzz: arbitrary bytes never throw', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (u) => {
    parseSetElements(Buffer.from(u));
  }), { numRuns: 2000 });
});
