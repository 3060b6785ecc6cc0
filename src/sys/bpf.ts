/**
 * libbpf through koffi: open and load a BPF object with its maps pinned in bpffs (a map
 * already pinned there is reused, so a new run or a new program takes over the tables of
 * the previous one), attach XDP programs to devices, and read and write map elements.
 *
 * `Bpf` is the narrow boundary the XDP plane uses; `libBpf()` is the real one, `FakeBpf`
 * (fake-bpf.ts) keeps maps in memory for tests without root. Every call is synchronous: a
 * map operation is one bpf(2) system call of a few microseconds.
 */
import fs from 'node:fs';
import koffi from 'koffi';
import { SysError, SysErrorCode, sysFailure } from './errors.js';

/** A loaded object: its maps' and programs' file descriptors by name. */
export interface BpfObject {
  mapFd(name: string): number;
  progFd(name: string): number;
  /** Close the object's descriptors (pinned maps and attached programs stay). */
  close(): void;
}

/** One element of a dump. */
export interface BpfEntry {
  readonly key: Buffer;
  readonly value: Buffer;
}

export interface Bpf {
  /** CPUs the kernel may run a program on (the value count of a per-CPU map). */
  possibleCpus(): number;
  /** Open `objectPath`, pin (or reuse) every map under `pinDir`, and load it. */
  load(objectPath: string, pinDir: string): BpfObject;
  update(mapFd: number, key: Buffer, value: Buffer): void;
  /** False when the key was not there. */
  delete(mapFd: number, key: Buffer): boolean;
  /** The value (valueSize bytes; per-CPU maps: size × possibleCpus) or null. */
  lookup(mapFd: number, key: Buffer, valueSize: number): Buffer | null;
  /** Every element of a hash map (a snapshot; entries may change meanwhile). */
  dump(mapFd: number, keySize: number, valueSize: number): BpfEntry[];
  /** The id of the XDP program attached to a device in driver mode, or 0. */
  xdpAttached(ifindex: number): number;
  /** The name of a loaded program by id ('' when it is gone). */
  programName(id: number): string;
  /** Attach a program to a device in driver mode; refused when the device already runs one. */
  xdpAttach(ifindex: number, progFd: number): void;
  xdpDetach(ifindex: number): void;
  /** Remove a pin directory and what is pinned in it. */
  unpin(pinDir: string): void;
}

const XDP_FLAGS_DRV_MODE = 1 << 2;
const XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0;
const ENOENT = 2;

interface Lib {
  openFile: (path: string, opts: null) => unknown;
  findMap: (obj: unknown, name: string) => unknown;
  mapName: (map: unknown) => string;
  nextMap: (obj: unknown, prev: unknown) => unknown;
  setPinPath: (map: unknown, path: string) => number;
  load: (obj: unknown) => number;
  mapFdByName: (obj: unknown, name: string) => number;
  findProg: (obj: unknown, name: string) => unknown;
  progFd: (prog: unknown) => number;
  close: (obj: unknown) => void;
  update: (fd: number, key: Buffer, value: Buffer, flags: number) => number;
  lookup: (fd: number, key: Buffer, value: Buffer) => number;
  del: (fd: number, key: Buffer) => number;
  nextKey: (fd: number, key: Buffer | null, next: Buffer) => number;
  lookupBatch: (fd: number, inBatch: Buffer | null, outBatch: Buffer, keys: Buffer, values: Buffer, count: number[], opts: null) => number;
  attach: (ifindex: number, fd: number, flags: number, opts: null) => number;
  detach: (ifindex: number, flags: number, opts: null) => number;
  queryId: (ifindex: number, flags: number, id: number[]) => number;
  progFdById: (id: number) => number;
  infoByFd: (fd: number, info: Buffer, len: number[]) => number;
  cpus: () => number;
  closeFd: (fd: number) => number;
  errno: () => number;
}

let lib: Lib | null = null;

function loadLib(): Lib {
  if (lib) return lib;
  let so: ReturnType<typeof koffi.load>;
  let libc: ReturnType<typeof koffi.load>;
  try {
    so = koffi.load('libbpf.so.1');
    libc = koffi.load('libc.so.6');
  } catch (err: unknown) {
    throw new SysError(SysErrorCode.FAILED, `cannot load libbpf.so.1 (Debian: apt-get install libbpf1): ${(err as Error).message}`);
  }
  const u32out = 'uint32_t *';
  lib = {
    openFile: so.func('void *bpf_object__open_file(const char *path, void *opts)') as Lib['openFile'],
    findMap: so.func('void *bpf_object__find_map_by_name(void *obj, const char *name)') as Lib['findMap'],
    mapName: so.func('const char *bpf_map__name(void *map)') as Lib['mapName'],
    nextMap: so.func('void *bpf_object__next_map(void *obj, void *prev)') as Lib['nextMap'],
    setPinPath: so.func('int bpf_map__set_pin_path(void *map, const char *path)') as Lib['setPinPath'],
    load: so.func('int bpf_object__load(void *obj)') as Lib['load'],
    mapFdByName: so.func('int bpf_object__find_map_fd_by_name(void *obj, const char *name)') as Lib['mapFdByName'],
    findProg: so.func('void *bpf_object__find_program_by_name(void *obj, const char *name)') as Lib['findProg'],
    progFd: so.func('int bpf_program__fd(void *prog)') as Lib['progFd'],
    close: so.func('void bpf_object__close(void *obj)') as Lib['close'],
    update: so.func('int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)') as Lib['update'],
    lookup: so.func('int bpf_map_lookup_elem(int fd, const void *key, void *value)') as Lib['lookup'],
    del: so.func('int bpf_map_delete_elem(int fd, const void *key)') as Lib['del'],
    nextKey: so.func('int bpf_map_get_next_key(int fd, const void *key, void *next)') as Lib['nextKey'],
    lookupBatch: so.func(`int bpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values, _Inout_ ${u32out} count, void *opts)`) as Lib['lookupBatch'],
    attach: so.func('int bpf_xdp_attach(int ifindex, int fd, uint32_t flags, void *opts)') as Lib['attach'],
    detach: so.func('int bpf_xdp_detach(int ifindex, uint32_t flags, void *opts)') as Lib['detach'],
    queryId: so.func(`int bpf_xdp_query_id(int ifindex, int flags, _Out_ ${u32out} id)`) as Lib['queryId'],
    progFdById: so.func('int bpf_prog_get_fd_by_id(uint32_t id)') as Lib['progFdById'],
    infoByFd: so.func(`int bpf_obj_get_info_by_fd(int fd, void *info, _Inout_ ${u32out} len)`) as Lib['infoByFd'],
    cpus: so.func('int libbpf_num_possible_cpus(void)') as Lib['cpus'],
    closeFd: libc.func('int close(int fd)') as Lib['closeFd'],
    errno: () => koffi.errno(),
  };
  return lib;
}

/** A negative libbpf return (−errno) as a SysError. */
function check(what: string, rc: number): number {
  if (rc < 0) throw sysFailure(what, -rc, 'CAP_NET_ADMIN');
  return rc;
}

/** Offset of `name` in struct bpf_prog_info (linux/bpf.h), and its length. */
const PROG_INFO_NAME = 64;
const PROG_INFO_SIZE = 232;

export function libBpf(): Bpf {
  const l = loadLib();
  let cpus = 0;
  return {
    possibleCpus() {
      if (cpus === 0) cpus = check('libbpf_num_possible_cpus', Number(l.cpus()));
      return cpus;
    },
    load(objectPath, pinDir) {
      fs.mkdirSync(pinDir, { recursive: true });
      const obj = l.openFile(objectPath, null);
      if (!obj) throw new SysError(SysErrorCode.FAILED, `cannot open BPF object ${objectPath}: errno ${l.errno()}`, l.errno());
      try {
        for (let m = l.nextMap(obj, null); m; m = l.nextMap(obj, m)) {
          const name = String(l.mapName(m));
          if (name.startsWith('.')) continue; // .rodata/.bss: not shared between runs
          check(`bpf_map__set_pin_path ${name}`, Number(l.setPinPath(m, `${pinDir}/${name}`)));
        }
        const rc = Number(l.load(obj));
        if (rc < 0) {
          const errno = -rc;
          if (errno === 1 || errno === 13) throw sysFailure(`loading ${objectPath}`, errno, 'CAP_NET_ADMIN');
          throw new SysError(SysErrorCode.FAILED, `the kernel refused ${objectPath} (errno ${errno}; a map pinned in ${pinDir} by an incompatible version must be removed: rm -r ${pinDir})`, errno);
        }
      } catch (err: unknown) {
        l.close(obj);
        throw err;
      }
      let closed = false;
      return {
        mapFd(name) {
          return check(`map ${name}`, Number(l.mapFdByName(obj, name)));
        },
        progFd(name) {
          const p = l.findProg(obj, name);
          if (!p) throw new SysError(SysErrorCode.FAILED, `no program ${name} in ${objectPath}`);
          return check(`program ${name}`, Number(l.progFd(p)));
        },
        close() {
          if (closed) return;
          closed = true;
          l.close(obj);
        },
      };
    },
    update(fd, key, value) {
      check('bpf_map_update_elem', Number(l.update(fd, key, value, 0)));
    },
    delete(fd, key) {
      const rc = Number(l.del(fd, key));
      if (rc === -ENOENT) return false;
      check('bpf_map_delete_elem', rc);
      return true;
    },
    lookup(fd, key, size) {
      const v = Buffer.alloc(size);
      const rc = Number(l.lookup(fd, key, v));
      if (rc === -ENOENT) return null;
      check('bpf_map_lookup_elem', rc);
      return v;
    },
    dump(fd, keySize, valueSize) {
      const out: BpfEntry[] = [];
      const chunk = 4096;
      const keys = Buffer.alloc(keySize * chunk);
      const values = Buffer.alloc(valueSize * chunk);
      // The batch cursor of a hash map is a bucket index (4 bytes); keep room for a key.
      const tokenSize = Math.max(8, keySize);
      let inBatch: Buffer | null = null;
      for (let round = 0; round < 1 << 16; round++) {
        const outBatch = Buffer.alloc(tokenSize);
        const count = [chunk];
        const rc = Number(l.lookupBatch(fd, inBatch, outBatch, keys, values, count, null));
        const n = count[0] ?? 0;
        for (let i = 0; i < n; i++) {
          out.push({ key: Buffer.from(keys.subarray(i * keySize, (i + 1) * keySize)), value: Buffer.from(values.subarray(i * valueSize, (i + 1) * valueSize)) });
        }
        if (rc === -ENOENT) break; // the end of the map
        check('bpf_map_lookup_batch', rc);
        inBatch = outBatch;
      }
      return out;
    },
    xdpAttached(ifindex) {
      const id = [0];
      check('bpf_xdp_query_id', Number(l.queryId(ifindex, XDP_FLAGS_DRV_MODE, id)));
      return id[0] ?? 0;
    },
    programName(id) {
      const fd = Number(l.progFdById(id));
      if (fd < 0) return '';
      try {
        const info = Buffer.alloc(PROG_INFO_SIZE);
        if (Number(l.infoByFd(fd, info, [PROG_INFO_SIZE])) < 0) return '';
        const name = info.subarray(PROG_INFO_NAME, PROG_INFO_NAME + 16);
        const end = name.indexOf(0);
        return name.subarray(0, end < 0 ? 16 : end).toString('latin1');
      } finally {
        l.closeFd(fd);
      }
    },
    xdpAttach(ifindex, progFd) {
      check(`attaching XDP to interface ${ifindex}`, Number(l.attach(ifindex, progFd, XDP_FLAGS_DRV_MODE | XDP_FLAGS_UPDATE_IF_NOEXIST, null)));
    },
    xdpDetach(ifindex) {
      const rc = Number(l.detach(ifindex, XDP_FLAGS_DRV_MODE, null));
      if (rc === -19) return; // the device is gone, and its program with it
      check(`detaching XDP from interface ${ifindex}`, rc);
    },
    unpin(pinDir) {
      fs.rmSync(pinDir, { recursive: true, force: true });
    },
  };
}
