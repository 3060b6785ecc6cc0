#!/usr/bin/env node
'use strict';
// Thin launcher, CommonJS (bin/package.json): the CLI is compiled to dist/ by `npm ci` (the
// `prepare` script), and its start-up path (main, check, adm) bundled as CommonJS into
// dist/src/cli/main.bundle*.cjs (cli-bundle.config.mjs says why CommonJS). In a checkout (the
// TypeScript beside it), a `tsc` run after the last full build leaves the bundle older than
// the compiled tree; then the tree (ES modules) is loaded, so a bundle never runs stale code.
// An installed package has no TypeScript and runs its bundle: npm gives the files it unpacks
// the time of unpacking, in no particular order, so their times say nothing there.
//
// The bundle's chunks are compiled with a V8 code cache, as Python keeps bytecode in
// __pycache__: kept in dist/code-cache/ beside the package, one file per chunk, Node version
// and architecture, named by the chunk's size and mtime (V8 itself checks only the source's
// length, the V8 version and its flags). A chunk compiled without a cache V8 accepted has one
// written when the process exits (with the functions the command compiled lazily), through a
// temporary file and a rename, so a concurrent command never reads half a file. Where that
// directory cannot be written (a package installed read-only), nothing is written and nothing
// is said. FULCRUM_CODE_CACHE=0 turns it off. Measured: `check -f` 122.5 → 116.3 ms CPU on
// Node 20, 103.6 → 97.9 ms on Node 24 (docs/benchmarks.md).
const Module = require('node:module');
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');

const dist = path.join(__dirname, '..', 'dist');
const cli = path.join(dist, 'src', 'cli');
const stat = (name) => fs.statSync(path.join(cli, name), { throwIfNoEntry: false });
const checkout = fs.existsSync(path.join(__dirname, '..', 'src', 'cli', 'main.ts'));
const bundle = stat('main.bundle.cjs');
const bundled = bundle !== undefined && (!checkout || bundle.mtimeMs >= (stat('main.js')?.mtimeMs ?? -1));
if (bundled && process.env.FULCRUM_CODE_CACHE !== '0') compileWithCache(cli, path.join(dist, 'code-cache'), bundle.uid);

const loading = bundled ? new Promise((resolve) => { resolve(require(path.join(cli, 'main.bundle.cjs'))); }) : import('../dist/src/cli/main.js');
loading.then(({ main }) => main(process.argv.slice(2))).then(
  (code) => { process.exitCode = code; },
  (err) => {
    process.stderr.write(`fulcrum: internal error: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exitCode = 70;
  },
);

/**
 * Compile the start-up chunks in `dir` through a V8 code cache kept in `cacheDir` (see above);
 * `owner` is the uid the bundle belongs to.
 */
function compileWithCache(dir, cacheDir, owner) {
  // A code cache is code: it is trusted only as far as the bundle beside it. The directory
  // must belong to the bundle's owner and be writable by no one else, or it is neither read
  // nor written (a file planted there would run as whoever runs fulcrum next, root included).
  // Made here, it is 0755 at most, its files 0644 at most (the umask may take more away).
  const there = fs.statSync(cacheDir, { throwIfNoEntry: false });
  if (there !== undefined && !(there.isDirectory() && there.uid === owner && (there.mode & 0o022) === 0)) return;
  const CHUNK = /^main\.bundle(\.[\w-]+)?\.cjs$/;
  // What Node does with a .cjs file when no handler of its own is registered for it.
  const plain = require.extensions['.cjs'] ?? require.extensions['.js'];
  const unsaved = [];
  require.extensions['.cjs'] = function (module, filename) {
    const name = path.basename(filename);
    if (path.dirname(filename) !== dir || !CHUNK.test(name)) return plain(module, filename);
    const source = fs.readFileSync(filename, 'utf8');
    const st = fs.statSync(filename);
    const prefix = `${name}.${process.version}-${process.arch}.`;
    const file = path.join(cacheDir, `${prefix}${st.size}-${Math.trunc(st.mtimeMs)}.v8`);
    let cachedData;
    try { cachedData = fs.readFileSync(file); } catch { /* none yet */ }
    const script = new vm.Script(Module.wrap(source), { filename, cachedData });
    if (cachedData === undefined || script.cachedDataRejected === true) unsaved.push({ script, file, prefix });
    const req = Object.assign((id) => module.require(id), {
      resolve: (id, options) => Module._resolveFilename(id, module, false, options),
      cache: Module._cache,
      main: require.main,
    });
    script.runInThisContext().call(module.exports, module.exports, req, module, filename, dir);
  };
  process.once('exit', () => {
    for (const { script, file, prefix } of unsaved) {
      const tmp = `${file}.${process.pid}.tmp`;
      try {
        fs.mkdirSync(cacheDir, { recursive: true, mode: 0o755 });
        fs.writeFileSync(tmp, script.createCachedData(), { mode: 0o644 });
        fs.renameSync(tmp, file);
        // Caches of an earlier build of this chunk, for this Node.
        for (const old of fs.readdirSync(cacheDir)) {
          if (old.startsWith(prefix) && old.endsWith('.v8') && old !== path.basename(file)) fs.rmSync(path.join(cacheDir, old), { force: true });
        }
      } catch {
        try { fs.rmSync(tmp, { force: true }); } catch { /* nothing was made */ }
      }
    }
  });
}
