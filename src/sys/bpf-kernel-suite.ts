/**
 * The Bpf compliance suite against the kernel: libbpf through koffi, the real program.
 * Run by test/kernel-xdp.test.ts inside a test namespace (root), as
 * `node --test dist/src/sys/bpf-kernel-suite.js`, with FULCRUM_BPF_PIN_DIR (a directory
 * on a bpf filesystem) and FULCRUM_BPF_IFINDEX (a device of that namespace) set.
 */
import { bpfCompliance } from './bpf-compliance.js';
import { libBpf } from './bpf.js';
import { XDP_OBJECT } from '../dataplane/xdp/object.js';

const dir = process.env['FULCRUM_BPF_PIN_DIR'] ?? '';
const ifindex = Number(process.env['FULCRUM_BPF_IFINDEX'] ?? 0);
if (dir === '' || !(ifindex > 0)) throw new Error('FULCRUM_BPF_PIN_DIR and FULCRUM_BPF_IFINDEX must be set (see test/kernel-xdp.test.ts)');
let n = 0;
bpfCompliance('libbpf', () => ({ bpf: libBpf(), objectPath: XDP_OBJECT, pinDir: `${dir}/${n++}`, ifindex }));
