/**
 * FakeBpf: the `Bpf` boundary in memory, for tests without root. Maps are keyed byte
 * strings; a "pinned" object survives close() and is taken over by the next load of the
 * same pin directory, as bpffs does. Devices hold an attached program id.
 */
import { SysError, SysErrorCode } from './errors.js';
import type { Bpf, BpfEntry, BpfObject } from './bpf.js';

interface FakeMap {
  readonly fd: number;
  readonly entries: Map<string, Buffer>;
  /** An array map: every index exists, zeroed until written. */
  readonly array: boolean;
}

/** The program's array maps (the others are hashes). */
const ARRAYS = new Set(['slots', 'backends', 'rr_cursor', 'svc_stats', 'be_stats', 'xstats', 'root_progs']);

const PROGRAMS = ['xdp_root', 'xdp_balancer'] as const;

export class FakeBpf implements Bpf {
  private nextFd = 100;
  private nextProgId = 1;
  private readonly maps = new Map<number, FakeMap>();
  /** Pin directory → map name → map. */
  readonly pinned = new Map<string, Map<string, FakeMap>>();
  readonly programs = new Map<number, { name: string; fd: number }>();
  /** ifindex → attached program id. */
  readonly attached = new Map<number, number>();
  loads = 0;
  /** Make load() throw (a kernel that refuses the program). */
  refuseLoad: Error | null = null;
  /** Make every map write throw while set (a kernel that refuses an element). */
  refuseUpdates: Error | null = null;

  constructor(readonly cpus = 2) {}

  possibleCpus(): number {
    return this.cpus;
  }

  load(_objectPath: string, pinDir: string): BpfObject {
    if (this.refuseLoad) throw this.refuseLoad;
    this.loads++;
    let dir = this.pinned.get(pinDir);
    if (!dir) {
      dir = new Map();
      this.pinned.set(pinDir, dir);
    }
    const byName = dir;
    const progs = new Map<string, number>();
    for (const name of PROGRAMS) {
      const fd = this.nextFd++;
      this.programs.set(this.nextProgId++, { name, fd });
      progs.set(name, fd);
    }
    return {
      mapFd: (name) => {
        let m = byName.get(name);
        if (!m) {
          m = { fd: this.nextFd++, entries: new Map(), array: ARRAYS.has(name) };
          this.maps.set(m.fd, m);
          byName.set(name, m);
        }
        return m.fd;
      },
      progFd: (name) => {
        const fd = progs.get(name);
        if (fd === undefined) throw new SysError(SysErrorCode.FAILED, `no program ${name}`);
        return fd;
      },
      close: () => undefined,
    };
  }

  private map(fd: number): FakeMap {
    const m = this.maps.get(fd);
    if (!m) throw new SysError(SysErrorCode.FAILED, `bad map fd ${fd}`, 9);
    return m;
  }

  /** A map's entries by name in a pin directory (tests read what the plane wrote). */
  entries(pinDir: string, name: string): Map<string, Buffer> {
    return this.pinned.get(pinDir)?.get(name)?.entries ?? new Map();
  }

  update(mapFd: number, key: Buffer, value: Buffer): void {
    if (this.refuseUpdates) throw this.refuseUpdates;
    this.map(mapFd).entries.set(key.toString('hex'), Buffer.from(value));
  }

  delete(mapFd: number, key: Buffer): boolean {
    return this.map(mapFd).entries.delete(key.toString('hex'));
  }

  lookup(mapFd: number, key: Buffer, valueSize: number): Buffer | null {
    const m = this.map(mapFd);
    const v = m.entries.get(key.toString('hex'));
    if (!v) return m.array ? Buffer.alloc(valueSize) : null;
    const out = Buffer.alloc(valueSize);
    v.copy(out);
    return out;
  }

  dump(mapFd: number): BpfEntry[] {
    return [...this.map(mapFd).entries].map(([k, v]) => ({ key: Buffer.from(k, 'hex'), value: Buffer.from(v) }));
  }

  xdpAttached(ifindex: number): number {
    return this.attached.get(ifindex) ?? 0;
  }

  programName(id: number): string {
    return this.programs.get(id)?.name ?? '';
  }

  xdpAttach(ifindex: number, progFd: number): void {
    if (this.attached.has(ifindex)) throw new SysError(SysErrorCode.FAILED, `interface ${ifindex} already has an XDP program`, 16);
    const id = [...this.programs].find(([, p]) => p.fd === progFd)?.[0];
    if (id === undefined) throw new SysError(SysErrorCode.FAILED, `bad program fd ${progFd}`, 9);
    this.attached.set(ifindex, id);
  }

  xdpDetach(ifindex: number): void {
    this.attached.delete(ifindex);
  }

  unpin(pinDir: string): void {
    this.pinned.delete(pinDir);
  }
}
