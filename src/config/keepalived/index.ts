/**
 * keepalived.conf front end: file(s) → located diagnostics + FulcrumConfig.
 *
 * Stages, each pure except the injected file system:
 *   preprocess (includes, @conditionals, $PARAMS, ~SEQ/~LST, comments, quotes) → tokens
 *   parseBlocks (braces → statement tree) → compileConfig (keywords → typed model + checks).
 */
import os from 'node:os';
import { ConfigError, DiagnosticSink, type Diagnostic } from '../../errors/index.js';
import type { FulcrumConfig } from '../../model/types.js';
import { parseBlocks } from './ast.js';
import { compileConfig } from './compile.js';
import { nodeConfigFs } from './fs.js';
import { DEFAULT_PREPROCESS_OPTIONS, Preprocessor, type ConfigFs, type PreprocessOptions } from './preprocess.js';

export type { ConfigFs, PreprocessOptions } from './preprocess.js';
export { nodeConfigFs } from './fs.js';
export { splitCommand } from './values.js';
export { normalizeHex, parseRange } from './lvs.js';

export interface LoadOptions extends Partial<PreprocessOptions> {
  readonly fs?: ConfigFs;
}

export interface LoadResult {
  /** Present even with errors (best effort); use only when `ok`. */
  readonly config: FulcrumConfig;
  readonly diagnostics: readonly Diagnostic[];
  /** Files read, main file first. */
  readonly files: readonly string[];
  readonly ok: boolean;
}

function options(o: LoadOptions): PreprocessOptions {
  return {
    ...DEFAULT_PREPROCESS_OPTIONS,
    configId: os.hostname().split('.')[0] ?? '',
    env: process.env,
    ...o,
  };
}

function finish(sink: DiagnosticSink, lines: Parameters<typeof parseBlocks>[0], files: string[]): LoadResult {
  const root = parseBlocks(lines, sink);
  const config = compileConfig(root, sink);
  return { config, diagnostics: sink.items, files, ok: !sink.hasErrors };
}

/** Read and validate a keepalived.conf (with its includes). Never throws on bad input. */
export function loadKeepalivedConfig(file: string, opts: LoadOptions = {}): LoadResult {
  const sink = new DiagnosticSink();
  const pre = new Preprocessor(opts.fs ?? nodeConfigFs, sink, options(opts));
  const { lines, files } = pre.run(file);
  return finish(sink, lines, files);
}

/** Validate configuration text; `file` names it in diagnostics and anchors relative includes. */
export function parseKeepalivedText(text: string, file = '<input>', opts: LoadOptions = {}): LoadResult {
  const sink = new DiagnosticSink();
  const pre = new Preprocessor(opts.fs ?? nodeConfigFs, sink, options(opts));
  const { lines, files } = pre.runText(text, file);
  return finish(sink, lines, files);
}

/** Like loadKeepalivedConfig, but throws ConfigError when there are errors. */
export function loadKeepalivedConfigOrThrow(file: string, opts: LoadOptions = {}): FulcrumConfig {
  const r = loadKeepalivedConfig(file, opts);
  if (!r.ok) throw new ConfigError(r.diagnostics);
  return r.config;
}
