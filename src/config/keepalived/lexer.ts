/**
 * keepalived.conf lexical layer: one source line → tokens.
 *
 * Rules (keepalived.conf(5), "Quoted strings"): tokens are separated by white space;
 * `"` and `'` quote (the quotes are removed, quoted and unquoted parts of one word join);
 * inside quotes shell-like escapes apply (\a \b \E \f \n \r \t \v \nnn \xXX \cC, \C → C);
 * `#` and `!` start a comment anywhere outside quotes; `{` and `}` are tokens of their own
 * even when glued to a word (`80 {#comment`), except inside a `${NAME}` parameter reference.
 */
import type { DiagnosticSink, SourceLocation } from '../../errors/index.js';
import { DiagnosticCode } from '../../errors/index.js';

export interface Token {
  readonly text: string;
  /** True if any part of the token was quoted: a quoted `{` is not a brace. */
  readonly quoted: boolean;
  readonly loc: SourceLocation;
}

export function isOpen(t: Token): boolean {
  return !t.quoted && t.text === '{';
}
export function isClose(t: Token): boolean {
  return !t.quoted && t.text === '}';
}

const isSpace = (c: string): boolean => c === ' ' || c === '\t' || c === '\r' || c === '\f' || c === '\v';

/**
 * Remove a trailing comment (outside quotes). Returns the text before `#`/`!`.
 * Escapes inside quotes are skipped so `"a\"#b"` keeps its `#`.
 */
export function stripComment(line: string): string {
  let quote = '';
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = '';
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if (c === '#' || c === '!') {
      return line.slice(0, i);
    }
  }
  return line;
}

/** Decode one escape sequence starting after the backslash at `s[i]`; returns [text, next index]. */
function decodeEscape(s: string, i: number): [string, number] {
  const c = s[i];
  if (c === undefined) return ['\\', i];
  switch (c) {
    case 'a': return ['\x07', i + 1];
    case 'b': return ['\b', i + 1];
    case 'E': return ['\x1b', i + 1];
    case 'f': return ['\f', i + 1];
    case 'n': return ['\n', i + 1];
    case 'r': return ['\r', i + 1];
    case 't': return ['\t', i + 1];
    case 'v': return ['\v', i + 1];
    case 'x': {
      const m = /^[0-9a-fA-F]{1,2}/.exec(s.slice(i + 1));
      if (!m) return ['x', i + 1];
      return [String.fromCharCode(parseInt(m[0], 16)), i + 1 + m[0].length];
    }
    case 'c': {
      const n = s[i + 1];
      if (n === undefined) return ['c', i + 1];
      return [String.fromCharCode(n.toUpperCase().charCodeAt(0) ^ 0x40), i + 2];
    }
    default: {
      const m = /^[0-7]{1,3}/.exec(s.slice(i));
      if (m) return [String.fromCharCode(parseInt(m[0], 8) & 0xff), i + m[0].length];
      return [c, i + 1];
    }
  }
}

/**
 * Split one comment-free line into tokens. `colBase` is added to 0-based offsets to give
 * 1-based columns. Unterminated quotes are reported and close at end of line.
 */
export function tokenizeLine(
  text: string,
  file: string,
  line: number,
  sink: DiagnosticSink,
  colBase = 1,
): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i] as string;
    if (isSpace(c)) {
      i++;
      continue;
    }
    const start = i;
    if (c === '{' || c === '}') {
      tokens.push({ text: c, quoted: false, loc: { file, line, col: start + colBase } });
      i++;
      continue;
    }
    let buf = '';
    let quoted = false;
    while (i < n) {
      const ch = text[i] as string;
      if (isSpace(ch) || ch === '}') break;
      if (ch === '{') {
        // `${NAME}` left unresolved (undefined parameter) stays one word, as keepalived leaves it.
        if (text[i - 1] === '$') {
          const close = text.indexOf('}', i);
          if (close > 0) {
            buf += text.slice(i, close + 1);
            i = close + 1;
            continue;
          }
        }
        break;
      }
      if (ch === '"' || ch === "'") {
        quoted = true;
        const qloc = i;
        i++;
        let closed = false;
        while (i < n) {
          const q = text[i] as string;
          if (q === ch) {
            closed = true;
            i++;
            break;
          }
          if (q === '\\') {
            const [dec, next] = decodeEscape(text, i + 1);
            buf += dec;
            i = next;
            continue;
          }
          buf += q;
          i++;
        }
        if (!closed) {
          sink.error(DiagnosticCode.SYNTAX, `unterminated ${ch === '"' ? 'double' : 'single'} quote`,
            { file, line, col: qloc + colBase }, undefined, `a closing ${ch} on the same line`);
        }
        continue;
      }
      buf += ch;
      i++;
    }
    tokens.push({ text: buf, quoted, loc: { file, line, col: start + colBase } });
  }
  return tokens;
}
