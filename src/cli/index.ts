/**
 * cli — the `fulcrum` command line (an edge: parses arguments, calls into the core,
 * prints, returns exit codes). `main(argv)` is the entry point used by bin/fulcrum.js.
 */
export { main, VERSION } from './main.js';
export { runCheck } from './check.js';
export type { CheckOptions, Io } from './check.js';
export { canonicalJson } from './json.js';
