// The command line's start-up bundle (issue 22): `fulcrum adm` and `fulcrum check` are what an
// operator's `watch -n1` and scripts run, and Node 20 pays about 1–2 ms per ES module it
// resolves, reads and links (commander, config/ and ipvsadm/ are ~45 of them). rolldown joins
// dist/src/cli/main.js with the two commands into a few chunks beside it:
// bin/fulcrum.js loads main.bundle.cjs. With the lazy loads beside it, this took `check` from
// 280–300 to 160–200 ms and `adm -L -n` from 240–260 to 150–160 ms on the 2-vCPU VM
// (docs/benchmarks.md, 2026-12-02).
//
// Every other subcommand (run, demo, agent, realserver, sim, genhash) stays outside: main's
// `import('./run.js')` then loads the compiled tree next to the bundle, unchanged. The daemon
// and the data planes start worker threads by URL relative to their own modules, which a
// bundle would move; they are never bundled. Packages (commander, tinyglobby) are required at
// run time from node_modules, as before.
//
// The bundle is CommonJS (`.cjs`), and bin/fulcrum.js with it (bin/package.json says so):
// - Node's own modules are required, never imported: an `import … from "node:http"` makes Node
//   build an ES module facade of the whole builtin, reading every export — and on Node 24
//   `http`'s lazy exports load undici and crypto. Measured on the VM (CPU per process, 20
//   runs): `import "node:http"` 136.5 ms against `require("node:http")` 74.0 ms on Node 24
//   (68.5 ms for an empty module), 107.5 against 99.5 ms on Node 20.
// - the start-up path never starts Node's ES module loader (its resolve, link and evaluate
//   jobs);
// - bin/fulcrum.js can compile the chunks itself with a V8 code cache (`vm.Script`
//   `cachedData`), which Node 20 has no public way to do for ES modules.
// Measured (21 interleaved runs, CPU per process): `check -f` on Node 20 131.8 ms as ES
// modules, 122.5 ms as CommonJS, 116.3 ms with the code cache (`node -e 0` 101.2 ms); Node 24
// 107.3, 103.6 and 97.9 ms (`node -e 0` 78.0 ms).
//
// The chunks' dynamic imports of the compiled tree (`import("./run.js")`) go through
// main.import.cjs, which Node's own loader loads: code compiled by `vm.Script` cannot run
// `import()` without --experimental-vm-modules.
const BUNDLED = new Set(['./check.js', './adm.js']);
const MAIN = /[\\/]dist[\\/]src[\\/]cli[\\/]main\.js$/;

const CHUNK_IMPORT = /\bimport\((["'])(\.\/[\w./-]+\.js)\1\)/g;
export const IMPORT_HELPER = 'main.import.cjs';

/** Rewrite a chunk's `import("./x.js")` into a call of the helper beside it (see above). */
export function importsThroughHelper(code) {
  let n = 0;
  const out = code.replace(CHUNK_IMPORT, (_, q, spec) => { n++; return `__importTree(${q}${spec}${q})`; });
  if (n === 0) return null;
  const helper = `const __importTree = require("./${IMPORT_HELPER}");\n`;
  // After the chunk's "use strict" (a directive counts only at the very start).
  const strict = /^(['"])use strict\1;?\n/.exec(out);
  return strict === null ? helper + out : strict[0] + helper + out.slice(strict[0].length);
}

const importHelper = {
  name: 'import-helper',
  renderChunk(code) {
    const out = importsThroughHelper(code);
    return out === null ? null : { code: out };
  },
  generateBundle() {
    this.emitFile({
      type: 'asset',
      fileName: IMPORT_HELPER,
      source: "'use strict';\n// The start-up bundle's way into the compiled ES modules beside it (cli-bundle.config.mjs).\nmodule.exports = (specifier) => import(specifier);\n",
    });
  },
};

export default {
  input: { 'main.bundle': 'dist/src/cli/main.js' },
  platform: 'node',
  external: (id, importer) => importer !== undefined && MAIN.test(importer) && /^\.\/[\w-]+\.js$/.test(id) && !BUNDLED.has(id),
  plugins: [importHelper],
  output: { dir: 'dist/src/cli', format: 'cjs', strict: true, entryFileNames: '[name].cjs', chunkFileNames: 'main.bundle.[name].cjs' },
};
