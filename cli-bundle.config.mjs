// The command line's start-up bundle (issue 22): `fulcrum adm` and `fulcrum check` are what an
// operator's `watch -n1` and scripts run, and Node 20 pays about 1–2 ms per ES module it
// resolves, reads and links (commander, config/ and ipvsadm/ are ~45 of them). rolldown joins
// dist/src/cli/main.js with the two commands into a few chunks beside it:
// bin/fulcrum.js loads main.bundle.js. With the lazy loads beside it, this took `check` from
// 280–300 to 160–200 ms and `adm -L -n` from 240–260 to 150–160 ms on the 2-vCPU VM
// (docs/benchmarks.md, 2026-12-02).
//
// Every other subcommand (run, demo, agent, realserver, sim, genhash) stays outside: main's
// `import('./run.js')` then loads the compiled tree next to the bundle, unchanged. The daemon
// and the data planes start worker threads by URL relative to their own modules, which a
// bundle would move; they are never bundled. Packages (commander, tinyglobby) are required at
// run time from node_modules, as before.
//
// Node's own modules are required, not imported, in the bundle (`builtinsRequired`): an
// `import … from "node:http"` makes Node build an ES module facade of the whole builtin,
// reading every export — and on Node 24 `http`'s lazy exports load undici and crypto. Measured
// on the VM (CPU per process, 20 runs): `import "node:http"` 136.5 ms against
// `require("node:http")` 74.0 ms on Node 24 (68.5 ms for an empty module), 107.5 against
// 99.5 ms on Node 20; `node:fs` 76.0 against 69.5 ms on Node 24.
const BUNDLED = new Set(['./check.js', './adm.js']);
const MAIN = /[\\/]dist[\\/]src[\\/]cli[\\/]main\.js$/;

/** `import x from "node:m"`, `import * as x from "node:m"`, `import { a, b as c } from "node:m"`. */
const BUILTIN_IMPORT = /^import\s+(?:(\w+)|\*\s+as\s+(\w+)|\{([^}]*)\})\s+from\s+"(node:[\w/]+)";$/gm;

/** Rewrite a chunk's static imports of Node's modules into `require` calls (see above). */
export function requireBuiltins(code) {
  let n = 0;
  const out = code.replace(BUILTIN_IMPORT, (_, def, ns, named, id) => {
    n++;
    if (def !== undefined || ns !== undefined) return `const ${def ?? ns} = __requireBuiltin(${JSON.stringify(id)});`;
    const bindings = named.split(',').map((s) => s.trim()).filter((s) => s !== '').map((s) => s.replace(/^(\w+)\s+as\s+(\w+)$/, '$1: $2'));
    return `const { ${bindings.join(', ')} } = __requireBuiltin(${JSON.stringify(id)});`;
  });
  if (n === 0) return null;
  return `import { createRequire as __createRequire } from "node:module";\nconst __requireBuiltin = __createRequire(import.meta.url);\n${out}`;
}

const builtinsRequired = {
  name: 'builtins-required',
  renderChunk(code) {
    const out = requireBuiltins(code);
    return out === null ? null : { code: out };
  },
};

export default {
  input: { 'main.bundle': 'dist/src/cli/main.js' },
  platform: 'node',
  external: (id, importer) => importer !== undefined && MAIN.test(importer) && /^\.\/[\w-]+\.js$/.test(id) && !BUNDLED.has(id),
  plugins: [builtinsRequired],
  output: { dir: 'dist/src/cli', format: 'esm', entryFileNames: '[name].js', chunkFileNames: 'main.bundle.[name].js' },
};
