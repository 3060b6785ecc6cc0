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
const BUNDLED = new Set(['./check.js', './adm.js']);
const MAIN = /[\\/]dist[\\/]src[\\/]cli[\\/]main\.js$/;

export default {
  input: { 'main.bundle': 'dist/src/cli/main.js' },
  platform: 'node',
  external: (id, importer) => importer !== undefined && MAIN.test(importer) && /^\.\/[\w-]+\.js$/.test(id) && !BUNDLED.has(id),
  output: { dir: 'dist/src/cli', format: 'esm', entryFileNames: '[name].js', chunkFileNames: 'main.bundle.[name].js' },
};
