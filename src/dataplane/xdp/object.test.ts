import { test } from 'node:test';
import assert from 'node:assert/strict';
import { xdpUnavailable } from './object.js';

test('XDP object: a missing object is named with what to install; services then go to nftables', () => {
  const why = xdpUnavailable('/nonexistent/fulcrum_xdp.o');
  assert.match(why ?? '', /\/nonexistent\/fulcrum_xdp\.o was not built \(install clang and libbpf-dev, then npm run build\)/);
});
