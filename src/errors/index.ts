/**
 * errors — typed errors and located diagnostics shared by every module.
 *
 * Every error Fulcrum reports carries a stable `code` (scripts may match on it; messages
 * may be reworded). Configuration problems are `Diagnostic`s that name where they are
 * (`file:line:col`), the keyword involved and what was expected.
 */

/** A position in a source file. `line` and `col` are 1-based; `col` counts characters. */
export interface SourceLocation {
  readonly file: string;
  readonly line: number;
  readonly col: number;
}

export type Severity = 'error' | 'warning';

/**
 * Stable diagnostic codes. Errors start with `E_`, warnings with `W_`.
 * Never renumber or rename one: tests and operators' scripts match on them.
 */
export const DiagnosticCode = {
  /** The file could not be read (missing, unreadable, not a regular file). */
  FILE: 'E_FILE',
  /** The file is larger than the configured limit. */
  TOO_LARGE: 'E_TOO_LARGE',
  /** The file is not text (NUL bytes or invalid UTF-8). */
  BINARY: 'E_BINARY',
  /** An include loop: a file includes itself, directly or not. */
  INCLUDE_LOOP: 'E_INCLUDE_LOOP',
  /** Includes nested deeper than the limit. */
  INCLUDE_DEPTH: 'E_INCLUDE_DEPTH',
  /** A lexical or structural problem: unterminated quote, unbalanced brace. */
  SYNTAX: 'E_SYNTAX',
  /** A required argument or block is missing. */
  MISSING: 'E_MISSING',
  /** A value of the wrong form: bad number, bad address, unknown enum word. */
  BAD_VALUE: 'E_BAD_VALUE',
  /** A number outside its allowed range. */
  RANGE: 'E_RANGE',
  /** The same object is declared twice (real server, virtual server, instance). */
  DUPLICATE: 'E_DUPLICATE',
  /** A name refers to something not declared (vrrp_script, instance, group). */
  REFERENCE: 'E_REFERENCE',
  /** Settings that contradict each other (DR with port mapping, priority 255 BACKUP, …). */
  CONTRADICTION: 'E_CONTRADICTION',
  /** A configuration that defines nothing to serve (no virtual_server, no vrrp_instance). */
  EMPTY: 'E_EMPTY_CONFIG',
  /** What a command names is not there (ipvsadm's "No such service", "No such destination"). */
  NOT_FOUND: 'E_NOT_FOUND',
  /** A feature Fulcrum recognises but does not implement. */
  UNSUPPORTED: 'E_UNSUPPORTED',
  /** Too many tokens, lines or expansions (a guard against runaway input). */
  LIMIT: 'E_LIMIT',
  /** A keyword keepalived would ignore too: reported, not fatal. */
  UNKNOWN_KEYWORD: 'W_UNKNOWN_KEYWORD',
  /** A deprecated alias was used; its modern name is given. */
  DEPRECATED: 'W_DEPRECATED',
  /** A value was adjusted (rounded, truncated, clamped) the way keepalived does. */
  ADJUSTED: 'W_ADJUSTED',
  /** A setting is accepted but has no effect in this context. */
  IGNORED: 'W_IGNORED',
  /** An include pattern matched no file. */
  NO_MATCH: 'W_NO_MATCH',
  /** Settings accepted as written that work against each other (one defeats the other's purpose). */
  CONFLICT: 'W_CONFLICT',
} as const;

export type DiagnosticCode = (typeof DiagnosticCode)[keyof typeof DiagnosticCode];

export interface Diagnostic {
  readonly severity: Severity;
  readonly code: DiagnosticCode;
  readonly message: string;
  readonly loc?: SourceLocation | undefined;
  /** The keyword (or ipvsadm option) the problem is about. */
  readonly keyword?: string | undefined;
  /** What would have been accepted, in words. */
  readonly expected?: string | undefined;
}

/** `file:line:col` — the form editors and compilers use. */
export function formatLocation(loc: SourceLocation): string {
  return `${loc.file}:${loc.line}:${loc.col}`;
}

/** One line per diagnostic: `file:line:col: error E_CODE: 'keyword': message (expected …)`. */
export function formatDiagnostic(d: Diagnostic): string {
  const where = d.loc ? `${formatLocation(d.loc)}: ` : '';
  const kw = d.keyword !== undefined ? `'${d.keyword}': ` : '';
  const exp = d.expected !== undefined ? ` (expected ${d.expected})` : '';
  return `${where}${d.severity} ${d.code}: ${kw}${d.message}${exp}`;
}

/** Base of every error Fulcrum throws on purpose. `code` is stable. */
export class FulcrumError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A configuration (keepalived.conf or ipvsadm rules) that failed validation. */
export class ConfigError extends FulcrumError {
  readonly diagnostics: readonly Diagnostic[];
  constructor(diagnostics: readonly Diagnostic[]) {
    const errors = diagnostics.filter((d) => d.severity === 'error');
    const first = errors[0];
    const head = first ? formatDiagnostic(first) : 'invalid configuration';
    const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : '';
    super('E_CONFIG', `${head}${more}`);
    this.diagnostics = diagnostics;
  }
}

/** Collects diagnostics while a pass runs; passes never throw on bad input. */
export class DiagnosticSink {
  readonly items: Diagnostic[] = [];
  /** Upper bound on stored diagnostics, so garbage input cannot exhaust memory. */
  readonly limit: number;
  private droppedErrors = 0;
  private droppedWarnings = 0;

  constructor(limit = 1000) {
    this.limit = limit;
  }

  add(d: Diagnostic): void {
    if (this.items.length < this.limit) this.items.push(d);
    else if (d.severity === 'error') this.droppedErrors++;
    else this.droppedWarnings++;
  }

  error(code: DiagnosticCode, message: string, loc?: SourceLocation, keyword?: string, expected?: string): void {
    this.add({ severity: 'error', code, message, loc, keyword, expected });
  }

  warn(code: DiagnosticCode, message: string, loc?: SourceLocation, keyword?: string, expected?: string): void {
    this.add({ severity: 'warning', code, message, loc, keyword, expected });
  }

  get errorCount(): number {
    return this.items.filter((d) => d.severity === 'error').length + this.droppedErrors;
  }

  get hasErrors(): boolean {
    return this.errorCount > 0;
  }

  /** How many diagnostics were not stored because the limit was reached. */
  get droppedCount(): number {
    return this.droppedErrors + this.droppedWarnings;
  }
}

export { serialQueue, type Serial } from './serial.js';
export {
  errorCode, errorMessage, FAILURE_CHANNEL, FailureCode, FailureCounts, reportFailure, supervise, type InternalFailure,
} from './failure.js';
