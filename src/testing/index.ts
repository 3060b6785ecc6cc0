/**
 * testing — helpers shared by the test suites (never imported by production code):
 * locating the repository, temporary directories that always get removed, and shorthand
 * for parsing configuration text.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext, type TestOptions } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Diagnostic } from '../errors/index.js';
import { parseKeepalivedText, type LoadOptions, type LoadResult } from '../config/index.js';

/** The checkout's root (the directory holding package.json), from any compiled file. */
export function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('package.json not found above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
  return dir;
}

/** Run `fn` with a fresh temporary directory, removed afterwards even if `fn` throws. */
export async function withTempDir<T>(fn: (dir: string) => T | Promise<T>): Promise<T> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-test-'));
  try {
    return await fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Write files (path → content) under `dir`, creating folders. */
export function writeTree(dir: string, files: Record<string, string | Uint8Array>): void {
  for (const [rel, content] of Object.entries(files)) {
    const p = path.join(dir, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, content);
  }
}

/** Parse configuration text with a fixed config-id and empty environment. */
export function parseText(text: string, opts: LoadOptions = {}): LoadResult {
  return parseKeepalivedText(text, 'test.conf', { configId: 'test', env: {}, ...opts });
}

export function errorsOf(r: { diagnostics: readonly Diagnostic[] }): Diagnostic[] {
  return r.diagnostics.filter((d) => d.severity === 'error');
}

export function warningsOf(r: { diagnostics: readonly Diagnostic[] }): Diagnostic[] {
  return r.diagnostics.filter((d) => d.severity === 'warning');
}

/**
 * The environment variable `node dist/src/testing/node-lts.js` sets for its run of the suite on
 * a second Node.js line, after the whole suite has run on the machine's own Node.
 */
export const SECOND_RUNTIME_ENV = 'FULCRUM_TEST_SECOND_RUNTIME';

/** True in the suite's run on a second Node.js line (see `SECOND_RUNTIME_ENV`). */
export function onSecondRuntime(): boolean {
  return process.env[SECOND_RUNTIME_ENV] === '1';
}

/**
 * `test`, defined only in the suite's first run (the machine's Node). For end-to-end tests whose
 * subject a second Node.js line cannot change — a peer's or the kernel's behaviour, a pure
 * rule — when a sibling that runs every time already drives the same runtime paths (sockets,
 * FFI, worker threads). CI runs every one of them once; the second run is shorter by their
 * time. Not a skip: the test does not exist in that run.
 */
export function testOnce(name: string, options: TestOptions, fn: (t: TestContext) => Promise<void> | void): void {
  if (!onSecondRuntime()) void test(name, options, fn);
}
