/**
 * The real file system behind `ConfigFs` (the only file-system reads of the config module).
 * Globs use tinyglobby (braces, `*`, `?`, `[…]`), matched relative to the pattern's static
 * base directory so absolute and relative patterns behave alike.
 *
 * tinyglobby (with fdir and picomatch) is required at the first glob `include`, not when this
 * module loads: it is about 30 ms of every `fulcrum check` and `fulcrum run` start-up, and
 * most configurations have no glob (issue 22). Its CommonJS build loads synchronously, which
 * the synchronous preprocessor needs.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { ConfigFs } from './preprocess.js';

const GLOB_CHARS = /[*?[{]/;

type Tinyglobby = typeof import('tinyglobby');
let tinyglobby: Tinyglobby | undefined;
const globber = (): Tinyglobby => (tinyglobby ??= createRequire(import.meta.url)('tinyglobby') as Tinyglobby);

export const nodeConfigFs: ConfigFs = {
  size(file: string): number {
    const st = fs.statSync(file);
    if (st.isDirectory()) {
      const err = new Error(`${file} is a directory`) as NodeJS.ErrnoException;
      err.code = 'EISDIR';
      throw err;
    }
    return st.size;
  },
  read(file: string): Uint8Array {
    return fs.readFileSync(file);
  },
  realpath(file: string): string {
    return fs.realpathSync(file);
  },
  glob(pattern: string): string[] {
    const parts = pattern.split(path.sep);
    const firstGlob = parts.findIndex((p) => GLOB_CHARS.test(p));
    const base = parts.slice(0, firstGlob).join(path.sep) || path.sep;
    const rest = parts.slice(firstGlob).join('/');
    if (!fs.existsSync(base)) return [];
    return globber().globSync([rest], { cwd: base, absolute: true, onlyFiles: true, expandDirectories: false, dot: false })
      .map((p) => path.normalize(p))
      .sort();
  },
};
