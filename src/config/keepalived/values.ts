/**
 * Reading typed values out of statement arguments, with located diagnostics.
 * Each reader returns `undefined` after reporting when the value is bad, so a pass can
 * carry on and report every problem in one run.
 */
import type { DiagnosticSink, SourceLocation } from '../../errors/index.js';
import { DiagnosticCode } from '../../errors/index.js';
import { parseIp, type ParsedIp } from '../../model/address.js';
import type { ScriptSpec } from '../../model/types.js';
import type { AstNode } from './ast.js';
import type { Token } from './lexer.js';

const INT_RE = /^[+-]?[0-9]+$/;
const DEC_RE = /^[+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$/;
const BOOL_WORDS: Record<string, boolean> = { on: true, true: true, yes: true, off: false, false: false, no: false };

/** Nodes whose `{ … }` block some handler read (through needBlock). */
const blocksRead = new WeakSet<AstNode>();

export class Values {
  constructor(readonly sink: DiagnosticSink) {}

  /** The i-th argument, or report it missing. */
  arg(node: AstNode, i: number, expected: string): Token | undefined {
    const t = node.args[i];
    if (t === undefined) {
      this.sink.error(DiagnosticCode.MISSING, 'missing argument', this.after(node), node.keyword.text, expected);
    }
    return t;
  }

  /** Where a missing argument would have been: just after the last token of the statement. */
  after(node: AstNode): SourceLocation {
    const last = node.args[node.args.length - 1] ?? node.keyword;
    return { ...last.loc, col: last.loc.col + Math.max(1, last.text.length) + 1 };
  }

  /** Warn about arguments past `max`. */
  /** Whether a handler asked for `node`'s block (dispatch reports blocks nobody read). */
  static blockRead(node: AstNode): boolean {
    return blocksRead.has(node);
  }

  extra(node: AstNode, max: number): void {
    const t = node.args[max];
    if (t !== undefined) {
      this.sink.warn(DiagnosticCode.IGNORED, `unexpected extra argument '${t.text}' ignored`, t.loc, node.keyword.text);
    }
  }

  noBlock(node: AstNode): void {
    if (node.block !== null) {
      this.sink.error(DiagnosticCode.SYNTAX, 'takes no block', node.open, node.keyword.text, 'a value on the same line');
    }
  }

  needBlock(node: AstNode): AstNode[] | undefined {
    blocksRead.add(node);
    if (node.block === null) {
      this.sink.error(DiagnosticCode.SYNTAX, 'needs a { … } block', this.after(node), node.keyword.text, "'{'");
      return undefined;
    }
    return node.block;
  }

  intToken(t: Token, keyword: string, min: number, max: number): number | undefined {
    if (!INT_RE.test(t.text)) {
      this.sink.error(DiagnosticCode.BAD_VALUE, `'${t.text}' is not an integer`, t.loc, keyword, `an integer ${min}..${max}`);
      return undefined;
    }
    const v = Number(t.text);
    if (!Number.isSafeInteger(v) || v < min || v > max) {
      this.sink.error(DiagnosticCode.RANGE, `${t.text} is out of range`, t.loc, keyword, `an integer ${min}..${max}`);
      return undefined;
    }
    return v;
  }

  int(node: AstNode, i: number, min: number, max: number): number | undefined {
    const t = this.arg(node, i, `an integer ${min}..${max}`);
    return t && this.intToken(t, node.keyword.text, min, max);
  }

  /** keepalived <TIMER>: seconds with optional fraction (microsecond resolution). */
  timerToken(t: Token, keyword: string, min: number, max: number): number | undefined {
    if (!DEC_RE.test(t.text)) {
      this.sink.error(DiagnosticCode.BAD_VALUE, `'${t.text}' is not a number of seconds`, t.loc, keyword, `seconds ${min}..${max}, fractions allowed`);
      return undefined;
    }
    const v = Math.round(Number(t.text) * 1e6) / 1e6;
    if (!Number.isFinite(v) || v < min || v > max) {
      this.sink.error(DiagnosticCode.RANGE, `${t.text} is out of range`, t.loc, keyword, `seconds ${min}..${max}`);
      return undefined;
    }
    return v;
  }

  timer(node: AstNode, i: number, min: number, max: number): number | undefined {
    const t = this.arg(node, i, `seconds ${min}..${max}`);
    return t && this.timerToken(t, node.keyword.text, min, max);
  }

  /** keepalived <BOOL>, where the argument is optional and its absence means true. */
  optBool(node: AstNode, i = 0): boolean | undefined {
    const t = node.args[i];
    if (t === undefined) return true;
    const v = BOOL_WORDS[t.text.toLowerCase()];
    if (v === undefined) {
      this.sink.error(DiagnosticCode.BAD_VALUE, `'${t.text}' is not a boolean`, t.loc, node.keyword.text, 'on|off|true|false|yes|no');
    }
    return v;
  }

  /** A word from a fixed set (case-insensitive), returned as listed in `allowed`. */
  oneOf<T extends string>(node: AstNode, i: number, allowed: readonly T[]): T | undefined {
    const t = this.arg(node, i, allowed.join('|'));
    if (!t) return undefined;
    const hit = allowed.find((a) => a.toLowerCase() === t.text.toLowerCase());
    if (hit === undefined) {
      this.sink.error(DiagnosticCode.BAD_VALUE, `unknown value '${t.text}'`, t.loc, node.keyword.text, allowed.join('|'));
    }
    return hit;
  }

  string(node: AstNode, i = 0): string | undefined {
    return this.arg(node, i, 'a string')?.text;
  }

  /** An interface name, valid as the kernel's dev_valid_name() says (see interfaceNameProblem). */
  ifname(node: AstNode, i = 0): string | undefined {
    const t = this.arg(node, i, 'an interface name');
    return t && this.ifnameToken(t, node.keyword.text);
  }

  ifnameToken(t: Token, keyword: string): string | undefined {
    const bad = interfaceNameProblem(t.text);
    if (bad) {
      this.sink.error(DiagnosticCode.BAD_VALUE, `'${t.text}' is not an interface name: ${bad}`, t.loc, keyword, 'an interface name (1–15 bytes; no /, :, white space)');
      return undefined;
    }
    return t.text;
  }

  ipToken(t: Token, keyword: string): ParsedIp | undefined {
    const ip = parseIp(t.text);
    if (!ip) {
      this.sink.error(DiagnosticCode.BAD_VALUE, `'${t.text}' is not an IP address`, t.loc, keyword, 'an IPv4 (a.b.c.d) or IPv6 address');
      return undefined;
    }
    return ip;
  }

  ip(node: AstNode, i: number): ParsedIp | undefined {
    const t = this.arg(node, i, 'an IP address');
    return t && this.ipToken(t, node.keyword.text);
  }

  portToken(t: Token, keyword: string, min = 0): number | undefined {
    return this.intToken(t, keyword, min, 65535);
  }

  /**
   * A script reference: `"path arg 'arg with spaces'" [user [:][group]]`. The command is
   * split into argv here, once, so nothing later ever hands it to a shell.
   */
  script(node: AstNode, i = 0): ScriptSpec | undefined {
    const t = this.arg(node, i, 'a script path, quoted if it has arguments');
    if (!t) return undefined;
    const argv = splitCommand(t.text);
    if (argv.length === 0) {
      this.sink.error(DiagnosticCode.BAD_VALUE, 'empty script', t.loc, node.keyword.text, 'a script path');
      return undefined;
    }
    // No program can receive a NUL inside an argument (exec takes C strings): refuse it here,
    // located, instead of at the first run.
    const nul = argv.find((a) => a.includes('\0'));
    if (nul !== undefined) {
      this.sink.error(DiagnosticCode.BAD_VALUE, `script argument ${JSON.stringify(nul)} contains a NUL byte, which no program can receive`, t.loc, node.keyword.text, 'a script path and arguments without NUL bytes');
      return undefined;
    }
    const user = node.args[i + 1]?.text;
    let group = node.args[i + 2]?.text;
    if (group?.startsWith(':')) group = group.slice(1) || undefined;
    this.extra(node, i + 3);
    return { argv, user, group, text: t.text };
  }
}

/**
 * Split a command string the way keepalived does for scripts: white space separates
 * arguments; single or double quotes keep spaces; backslash escapes the next character.
 */
export function splitCommand(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let quote = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i] as string;
    if (quote) {
      if (c === quote) quote = '';
      else if (c === '\\' && i + 1 < s.length) cur += s[++i];
      else cur += c;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\n') {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
      continue;
    }
    inWord = true;
    if (c === "'" || c === '"') quote = c;
    else if (c === '\\' && i + 1 < s.length) cur += s[++i];
    else cur += c;
  }
  if (inWord) out.push(cur);
  return out;
}

/** Linux's IFNAMSIZ less the terminating NUL: the longest interface name. */
export const IFNAME_MAX_BYTES = 15;

/**
 * Why `name` cannot be a Linux interface name, or null when it can: the kernel's
 * dev_valid_name() (1–15 bytes, not "." or "..", no '/', ':' or white space) — checked at
 * configuration time, because names end up in nftables chain names and netlink requests.
 */
export function interfaceNameProblem(name: string): string | null {
  if (name === '') return 'empty';
  if (Buffer.byteLength(name) > IFNAME_MAX_BYTES) return `longer than ${IFNAME_MAX_BYTES} bytes`;
  if (name === '.' || name === '..') return 'not a name';
  const c = /[/:\s\0]/.exec(name);
  if (c) return `contains ${c[0] === '/' || c[0] === ':' ? `'${c[0]}'` : 'white space or a control character'}`;
  // Beyond the kernel's rule: nothing that is not printable ASCII (nft quotes device names,
  // and a quote or a non-ASCII byte in one would need escaping nobody checks).
  if (/[^\x21-\x7e]|["'\\]/.test(name)) return 'contains a quote, a backslash or a character outside printable ASCII';
  return null;
}
