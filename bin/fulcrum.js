#!/usr/bin/env node
// Thin launcher: the CLI is compiled to dist/ by `npm ci` (the `prepare` script), and its
// start-up path (main, check, adm) bundled into dist/src/cli/main.bundle.js
// (cli-bundle.config.mjs). A `tsc` run after the last full build leaves the bundle older than
// the compiled tree; then the tree is loaded, so a bundle never runs stale code.
// node:fs is required, not imported: an import makes Node build an ES module facade of the
// whole builtin (see cli-bundle.config.mjs), a few ms of every command.
import { createRequire } from 'node:module';

const { statSync } = createRequire(import.meta.url)('node:fs');

const dist = new URL('../dist/src/cli/', import.meta.url);
const mtime = (name) => statSync(new URL(name, dist), { throwIfNoEntry: false })?.mtimeMs ?? -1;
const compiled = mtime('main.js');
const bundled = compiled >= 0 && mtime('main.bundle.js') >= compiled;
const { main } = await import(bundled ? '../dist/src/cli/main.bundle.js' : '../dist/src/cli/main.js');

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => {
    process.stderr.write(`fulcrum: internal error: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exitCode = 70;
  },
);
