import { bpfCompliance } from './bpf-compliance.js';
import { FakeBpf } from './fake-bpf.js';

let n = 0;
bpfCompliance('FakeBpf', () => ({ bpf: new FakeBpf(2), objectPath: '/fake/fulcrum_xdp.o', pinDir: `/fake/bpf/${n++}`, ifindex: 7 }));
