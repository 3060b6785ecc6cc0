/**
 * keepalived.conf preprocessing: files → logical lines of tokens.
 *
 * In keepalived's order: `include` lines are found first (before anything else touches the
 * line); then `@id` / `@^id` conditional lines; then `$NAME=VALUE` parameter definitions
 * (multi-line with a trailing `\`); then `~SEQ(...)` / `~SEQx(...)` / `~LST(...)` line
 * generators; then `$NAME` / `${NAME}` substitution (recursive, at use time; undefined names
 * stay as written); then tokenizing. A multi-line parameter expands to several lines, each
 * processed again, so definitions inside it take effect in order.
 *
 * Pure: all file access goes through the injected `ConfigFs`.
 */
import path from 'node:path';
import type { DiagnosticSink, SourceLocation } from '../../errors/index.js';
import { DiagnosticCode } from '../../errors/index.js';
import { stripComment, tokenizeLine, type Token } from './lexer.js';

/** What the preprocessor needs of a file system. */
export interface ConfigFs {
  /** Size in bytes, or throws (ENOENT, EACCES, EISDIR…). */
  size(file: string): number;
  read(file: string): Uint8Array;
  /** Canonical path (symlinks resolved), for include-loop detection. */
  realpath(file: string): string;
  /** Absolute paths matching a glob (braces supported), sorted; [] when none. */
  glob(pattern: string): string[];
}

export interface PreprocessOptions {
  /** keepalived's config-id (`-i`); default: first label of the host name. */
  readonly configId: string;
  /** Environment for `${_ENV NAME}`. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Per-file size limit in bytes. */
  readonly maxFileBytes: number;
  /** Limit on logical lines after all expansion (guards against runaway ~SEQ). */
  readonly maxLines: number;
  readonly maxIncludeDepth: number;
  /** For `${_RANDOM}`; injected so tests are deterministic. */
  readonly random: () => number;
}

export const DEFAULT_PREPROCESS_OPTIONS: PreprocessOptions = {
  configId: '',
  env: {},
  maxFileBytes: 16 * 1024 * 1024,
  maxLines: 2_000_000,
  maxIncludeDepth: 32,
  random: Math.random,
};

export interface LogicalLine {
  readonly tokens: readonly Token[];
}

export interface PreprocessResult {
  readonly lines: LogicalLine[];
  /** Every file read, in order (the main file first). */
  readonly files: string[];
}

const INCLUDE_WORDS = new Set(['include', 'includer', 'includem', 'includew', 'includeb', 'includea']);
const DEF_RE = /^\s*\$([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s;
const GEN_RE = /^\s*~(SEQx?|LST)\s*\(/;
/** A generator after a block's `{` on the same line: keepalived reads the rest as a line of its own. */
const GEN_AFTER_BRACE_RE = /^([^"'~]*\{)\s*(~(?:SEQx?|LST)\s*\(.*)$/;
const MAX_SUBST_ROUNDS = 64;
const MAX_LINE_CHARS = 1_000_000;

interface Pending {
  readonly text: string;
  readonly loc: SourceLocation;
  /** Directory of the file the text came from (for ${_PWD}). */
  readonly dir: string;
  /** Already the result of a substitution that was read again (never twice). */
  readonly again?: boolean;
}

/** Locate a byte offset in text as 1-based line and column. */
function offsetToLoc(file: string, text: string, offset: number): SourceLocation {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { file, line, col: offset - lineStart + 1 };
}

/**
 * Decode a file's bytes as text. NUL bytes or mostly-control-character content is binary
 * (an error located at the first offending byte). Invalid UTF-8 elsewhere — e.g. a comment
 * in a legacy encoding — is replaced and warned about, since keepalived reads bytes.
 */
export function decodeConfigText(file: string, bytes: Uint8Array, sink: DiagnosticSink): string | null {
  const nul = bytes.indexOf(0);
  if (nul >= 0) {
    const before = new TextDecoder('utf-8').decode(bytes.subarray(0, nul));
    sink.error(DiagnosticCode.BINARY, 'file contains a NUL byte: this is not a text configuration',
      offsetToLoc(file, before, before.length), undefined, 'a text file');
    return null;
  }
  const text = new TextDecoder('utf-8').decode(bytes);
  let control = 0;
  let firstBad = -1;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const bad = (c < 32 && c !== 9 && c !== 10 && c !== 13 && c !== 12 && c !== 11) || c === 0xfffd;
    if (bad) {
      control++;
      if (firstBad < 0) firstBad = i;
    }
  }
  if (firstBad >= 0 && control * 10 > text.length) {
    sink.error(DiagnosticCode.BINARY, `file looks binary (${control} control or undecodable characters)`,
      offsetToLoc(file, text, firstBad), undefined, 'a text file');
    return null;
  }
  if (firstBad >= 0) {
    sink.warn(DiagnosticCode.ADJUSTED, 'invalid UTF-8 or control characters replaced',
      offsetToLoc(file, text, firstBad));
  }
  return text;
}

/** Split `~SEQ(...)` argument text at top-level commas, honouring `{…}` groups. */
function splitArgs(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const c of s) {
    if (c === '{') depth++;
    if (c === '}') depth--;
    if (c === ',' && depth === 0) {
      out.push(cur.trim());
      cur = '';
    } else cur += c;
  }
  out.push(cur.trim());
  return out;
}

function parseIntLiteral(s: string): number | null {
  if (/^-?0x[0-9a-fA-F]+$/.test(s)) return s.startsWith('-') ? -parseInt(s.slice(3), 16) : parseInt(s.slice(2), 16);
  if (/^-?[0-9]+$/.test(s)) return parseInt(s, 10);
  return null;
}

export class Preprocessor {
  private readonly params = new Map<string, string>();
  private readonly lines: LogicalLine[] = [];
  private readonly files: string[] = [];
  private readonly stack: string[] = [];
  private aborted = false;

  constructor(
    private readonly fs: ConfigFs,
    private readonly sink: DiagnosticSink,
    private readonly opts: PreprocessOptions = DEFAULT_PREPROCESS_OPTIONS,
  ) {}

  run(mainFile: string): PreprocessResult {
    this.processFile(mainFile, undefined);
    return { lines: this.lines, files: this.files };
  }

  /** Preprocess text that did not come from a file (tests, API); includes resolve against `dir`. */
  runText(text: string, file: string): PreprocessResult {
    this.processText(text, file);
    return { lines: this.lines, files: this.files };
  }

  private processFile(file: string, from: SourceLocation | undefined): void {
    const at = from ?? { file, line: 1, col: 1 };
    let real: string;
    try {
      real = this.fs.realpath(file);
    } catch (err: unknown) {
      this.sink.error(DiagnosticCode.FILE, `cannot open '${file}': ${describeFsError(err)}`, at, from ? 'include' : undefined);
      return;
    }
    if (this.stack.includes(real)) {
      const chain = [...this.stack.slice(this.stack.indexOf(real)), real].join(' → ');
      this.sink.error(DiagnosticCode.INCLUDE_LOOP, `include loop: ${chain}`, at, 'include');
      return;
    }
    if (this.stack.length >= this.opts.maxIncludeDepth) {
      this.sink.error(DiagnosticCode.INCLUDE_DEPTH, `includes nested more than ${this.opts.maxIncludeDepth} deep`, at, 'include');
      return;
    }
    let bytes: Uint8Array;
    try {
      const size = this.fs.size(file);
      if (size > this.opts.maxFileBytes) {
        this.sink.error(DiagnosticCode.TOO_LARGE,
          `'${file}' is ${size} bytes, over the ${this.opts.maxFileBytes}-byte limit for a configuration file`,
          at, from ? 'include' : undefined, `at most ${this.opts.maxFileBytes} bytes`);
        return;
      }
      bytes = this.fs.read(file);
    } catch (err: unknown) {
      this.sink.error(DiagnosticCode.FILE, `cannot read '${file}': ${describeFsError(err)}`, at, from ? 'include' : undefined);
      return;
    }
    const text = decodeConfigText(file, bytes, this.sink);
    if (text === null) return;
    this.files.push(file);
    this.stack.push(real);
    this.processText(text, file);
    this.stack.pop();
  }

  private processText(text: string, file: string): void {
    const dir = path.dirname(file);
    const raw = text.split('\n');
    for (let i = 0; i < raw.length && !this.aborted; i++) {
      let line = raw[i] as string;
      if (line.endsWith('\r')) line = line.slice(0, -1);
      const loc: SourceLocation = { file, line: i + 1, col: 1 };
      const body = stripComment(line);

      // include is recognised before any other processing, as keepalived does.
      const firstWord = /^\s*(\S+)/.exec(body)?.[1];
      if (firstWord !== undefined && INCLUDE_WORDS.has(firstWord)) {
        this.include(body, file, loc, firstWord);
        continue;
      }
      // A multi-line definition: keep reading while the line ends with a backslash.
      const def = DEF_RE.exec(body);
      if (def && body.trimEnd().endsWith('\\')) {
        let value = body.trimEnd().slice(0, -1);
        while (i + 1 < raw.length) {
          i++;
          const rawNext = (raw[i] as string).replace(/\r$/, '');
          // A comment-only line inside the definition is skipped; the definition goes on.
          if (/^\s*[#!]/.test(rawNext)) continue;
          let next = stripComment(rawNext);
          const more = next.trimEnd().endsWith('\\');
          if (more) next = next.trimEnd().slice(0, -1);
          value += '\n' + next;
          if (!more) break;
        }
        this.handle([{ text: value, loc, dir }]);
        continue;
      }
      this.handle([{ text: body, loc, dir }]);
    }
  }

  private include(body: string, file: string, loc: SourceLocation, word: string): void {
    // The file name is the rest of the line taken whole: braces in it are glob alternatives,
    // not blocks, so it is not tokenized like other lines.
    const m = /^(\s*\S+\s*)(.*?)\s*$/.exec(body) as RegExpExecArray;
    let name = m[2] as string;
    const tloc: SourceLocation = { ...loc, col: (m[1] as string).length + 1 };
    if (/^(["']).*\1$/.test(name)) name = name.slice(1, -1);
    // Parameters in the path (`include ${_PWD}/conf.d/*.conf`) are substituted first.
    const sub = this.substitute(name, { text: name, loc: tloc, dir: path.dirname(file) });
    if (sub === null) return;
    name = sub.trim();
    if (name === '') {
      this.sink.error(DiagnosticCode.MISSING, 'include needs a file name or pattern', loc, word, 'include FILENAME');
      return;
    }
    const target = { text: name, loc: tloc };
    const pattern = path.isAbsolute(target.text) ? target.text : path.join(path.dirname(file), target.text);
    const isGlob = /[*?[{]/.test(target.text);
    if (!isGlob) {
      this.processFile(pattern, target.loc);
      return;
    }
    let matches: string[];
    try {
      matches = this.fs.glob(pattern);
    } catch (err: unknown) {
      this.sink.error(DiagnosticCode.FILE, `cannot expand '${target.text}': ${describeFsError(err)}`, target.loc, word);
      return;
    }
    if (matches.length === 0) {
      this.sink.warn(DiagnosticCode.NO_MATCH, `'${target.text}' matches no file`, target.loc, word);
      return;
    }
    for (const m of matches) this.processFile(m, target.loc);
  }

  /** Process lines through conditionals, definitions, generators and substitution. */
  private handle(initial: Pending[]): void {
    const queue = initial.slice().reverse();
    while (queue.length > 0 && !this.aborted) {
      const item = queue.pop() as Pending;
      let text = item.text;

      // @id / @^id conditional configuration.
      const cond = /^(\s*)@(\^?)(\S*)\s?/.exec(text);
      if (cond) {
        const negate = cond[2] === '^';
        const matches = cond[3] === this.opts.configId;
        if (matches === negate) continue;
        text = ' '.repeat(cond[0].length) + text.slice(cond[0].length);
      }

      const def = DEF_RE.exec(text);
      if (def) {
        this.params.set(def[1] as string, (def[2] as string).trim());
        continue;
      }

      const split = GEN_AFTER_BRACE_RE.exec(text);
      if (split) {
        queue.push({ text: split[2] as string, loc: item.loc, dir: item.dir });
        queue.push({ text: split[1] as string, loc: item.loc, dir: item.dir });
        continue;
      }
      const gen = GEN_RE.exec(text);
      if (gen) {
        const expanded = this.expandGenerator(text, item);
        if (expanded) for (let k = expanded.length - 1; k >= 0; k--) queue.push(expanded[k] as Pending);
        continue;
      }

      const substituted = this.substitute(text, item);
      if (substituted === null) continue;
      if (substituted !== text && !item.again) {
        // A prefix that came from a parameter counts as written: `$IF_MAIN=@main` then
        // `$IF_MAIN priority 240` is conditional; a line that now starts a comment is one.
        if (/^\s*[#!]/.test(substituted)) continue;
        if (/^\s*@/.test(substituted) || GEN_RE.test(substituted)) {
          queue.push({ text: substituted, loc: item.loc, dir: item.dir, again: true });
          continue;
        }
      }
      if (substituted.includes('\n')) {
        // A multi-line parameter: each of its lines is processed again, in order.
        const parts = substituted.split('\n');
        for (let k = parts.length - 1; k >= 0; k--) queue.push({ text: parts[k] as string, loc: item.loc, dir: item.dir });
        continue;
      }
      if (substituted.length > MAX_LINE_CHARS) {
        this.sink.error(DiagnosticCode.LIMIT, `line longer than ${MAX_LINE_CHARS} characters after substitution`, item.loc);
        continue;
      }
      const tokens = tokenizeLine(substituted, item.loc.file, item.loc.line, this.sink);
      if (tokens.length === 0) continue;
      if (this.lines.length >= this.opts.maxLines) {
        this.sink.error(DiagnosticCode.LIMIT, `more than ${this.opts.maxLines} configuration lines after expansion`, item.loc);
        this.aborted = true;
        return;
      }
      this.lines.push({ tokens });
    }
  }

  /** `~SEQ(var, [start,] [step,] end) rest` and `~LST(var, v1, v2…) rest` → definition + line pairs. */
  private expandGenerator(text: string, item: Pending): Pending[] | null {
    const m = GEN_RE.exec(text) as RegExpExecArray;
    const kind = m[1] as string;
    // Find the matching ')' honouring braces.
    let depth = 0;
    let end = -1;
    for (let i = m[0].length; i < text.length; i++) {
      const c = text[i];
      if (c === '{') depth++;
      else if (c === '}') depth--;
      else if (c === ')' && depth === 0) {
        end = i;
        break;
      }
    }
    if (end < 0) {
      this.sink.error(DiagnosticCode.SYNTAX, `~${kind}( is not closed`, item.loc, `~${kind}`, "')'");
      return null;
    }
    const args = splitArgs(text.slice(m[0].length, end)).map((a) => this.substitute(a, item) ?? a);
    const rest = text.slice(end + 1);
    const out: Pending[] = [];
    const push = (defs: [string, string][]): void => {
      for (const [k, v] of defs) out.push({ text: `$${k}=${v}`, loc: item.loc, dir: item.dir });
      out.push({ text: rest, loc: item.loc, dir: item.dir });
    };
    if (kind === 'LST') {
      const head = args[0] ?? '';
      const names = head.startsWith('{') ? head.slice(1, -1).split(',').map((s) => s.trim()) : [head];
      if (names.some((n) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(n)) || args.length < 2) {
        this.sink.error(DiagnosticCode.SYNTAX, 'bad ~LST specification', item.loc, '~LST', '~LST(var, value, …) or ~LST({a,b}, {1,2}, …)');
        return null;
      }
      for (const a of args.slice(1)) {
        const vals = a.startsWith('{') ? a.slice(1, -1).split(',').map((s) => s.trim()) : [a];
        if (vals.length !== names.length) {
          this.sink.error(DiagnosticCode.SYNTAX, `~LST value '${a}' has ${vals.length} parts for ${names.length} variables`, item.loc, '~LST');
          return null;
        }
        push(names.map((n, k) => [n, vals[k] as string]));
      }
      return out;
    }
    const name = args[0] ?? '';
    const nums = args.slice(1).map(parseIntLiteral);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name) || nums.length < 1 || nums.length > 3 || nums.some((v) => v === null)) {
      this.sink.error(DiagnosticCode.SYNTAX, `bad ~${kind} specification`, item.loc, `~${kind}`, `~${kind}(var, [start,] [step,] end) with integers`);
      return null;
    }
    const v = nums as number[];
    const endV = v[v.length - 1] as number;
    const start = v.length >= 2 ? (v[0] as number) : endV >= 0 ? 1 : -1;
    const step = v.length === 3 ? (v[1] as number) : endV >= start ? 1 : -1;
    if (step === 0 || (step > 0 && start > endV) || (step < 0 && start < endV)) {
      if (step === 0) this.sink.error(DiagnosticCode.RANGE, `~${kind} step is 0`, item.loc, `~${kind}`);
      return out;
    }
    const count = Math.floor((endV - start) / step) + 1;
    if (count > this.opts.maxLines) {
      this.sink.error(DiagnosticCode.LIMIT, `~${kind} would generate ${count} lines`, item.loc, `~${kind}`);
      return null;
    }
    for (let x = start; step > 0 ? x <= endV : x >= endV; x += step) {
      push([[name, kind === 'SEQx' ? x.toString(16) : String(x)]]);
    }
    return out;
  }

  /** Replace `$NAME` (followed by white space or end) and `${NAME}`; null on runaway recursion. */
  private substitute(text: string, item: Pending): string | null {
    if (!text.includes('$')) return text;
    let cur = text;
    for (let round = 0; round < MAX_SUBST_ROUNDS; round++) {
      let changed = false;
      const next = cur.replace(
        /\$\{([A-Za-z_][A-Za-z0-9_]*)(?:\s+([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)(?=\s|$)/g,
        (whole: string, braced: string | undefined, extra: string | undefined, bare: string | undefined) => {
          const name = (braced ?? bare) as string;
          const val = this.lookup(name, extra, item);
          if (val === undefined) return whole;
          changed = true;
          return val;
        },
      );
      // A multi-line value is not substituted further as a whole: its lines are read one
      // by one, in order (keepalived does the same), so a `$X=…` inside it takes effect for
      // the lines after it.
      if (!changed || next.includes('\n') || GEN_RE.test(next)) return next;
      cur = next;
    }
    this.sink.error(DiagnosticCode.LIMIT, `parameter substitution does not terminate after ${MAX_SUBST_ROUNDS} rounds (a parameter refers to itself?)`, item.loc);
    return null;
  }

  private lookup(name: string, extra: string | undefined, item: Pending): string | undefined {
    switch (name) {
      case '_PWD': return path.resolve(item.dir);
      case '_INSTANCE': return this.opts.configId;
      case '_HASH': return '#';
      case '_BANG': return '!';
      case '_ENV': return extra !== undefined ? (this.opts.env[extra.trim()] ?? '') : undefined;
      case '_RANDOM': {
        const [lo, hi] = (extra ?? '').trim().split(/\s+/).filter(Boolean).map(Number);
        const min = Number.isFinite(lo) ? (lo as number) : 0;
        const max = Number.isFinite(hi) ? (hi as number) : 32767;
        return String(min + Math.floor(this.opts.random() * (max - min + 1)));
      }
      default:
        return extra === undefined ? this.params.get(name) : undefined;
    }
  }
}

export function describeFsError(err: unknown): string {
  if (err && typeof err === 'object' && 'code' in err) {
    const code = String((err as { code: unknown }).code);
    const words: Record<string, string> = {
      ENOENT: 'no such file or directory',
      EACCES: 'permission denied',
      EISDIR: 'is a directory',
      ENOTDIR: 'a path component is not a directory',
      ELOOP: 'too many symbolic links',
    };
    return `${words[code] ?? 'error'} (${code})`;
  }
  return err instanceof Error ? err.message : String(err);
}
