/**
 * The real file system behind `ConfigFs` (the only file-system reads of the config module).
 * Globs use tinyglobby (braces, `*`, `?`, `[…]`), matched relative to the pattern's static
 * base directory so absolute and relative patterns behave alike.
 */
import fs from 'node:fs';
import path from 'node:path';
import { globSync } from 'tinyglobby';
import type { ConfigFs } from './preprocess.js';

const GLOB_CHARS = /[*?[{]/;

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
    return globSync([rest], { cwd: base, absolute: true, onlyFiles: true, expandDirectories: false, dot: false })
      .map((p) => path.normalize(p))
      .sort();
  },
};
