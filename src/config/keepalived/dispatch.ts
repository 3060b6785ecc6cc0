/**
 * Keyword dispatch for one block: known keywords call their handler; keywords keepalived
 * knows but Fulcrum does not act on are warned as ignored; anything else is warned as
 * unknown (keepalived ignores unknown keywords too) — always with a location.
 */
import { DiagnosticCode, type DiagnosticSink } from '../../errors/index.js';
import type { AstNode } from './ast.js';
import { Values } from './values.js';
import { ignoredReason, KEEPALIVED_KEYWORDS } from './known.js';

export type Handler = (node: AstNode) => void;

/** Deprecated spellings → their current keyword. */
export const DEPRECATED_ALIASES: Readonly<Record<string, string>> = {
  nb_get_retry: 'retry',
  nb_sget_retry: 'retry',
  delay_before_retry_sec: 'delay_before_retry',
  vrrp_track_file: 'track_file',
};

export function dispatch(
  block: readonly AstNode[],
  where: string,
  handlers: Readonly<Record<string, Handler>>,
  sink: DiagnosticSink,
  ignored: ReadonlySet<string> = new Set(),
): void {
  dispatchWith(block, where, handlers, undefined, sink, ignored);
}

/**
 * `dispatch` with a state handed to every handler: a block read many times over (a
 * real_server, 160,000 of them in a generated file) can use one static handler table
 * instead of a table of fresh closures per block.
 */
export function dispatchWith<S>(
  block: readonly AstNode[],
  where: string,
  handlers: Readonly<Record<string, (node: AstNode, state: S) => void>>,
  state: S,
  sink: DiagnosticSink,
  ignored: ReadonlySet<string> = new Set(),
): void {
  for (const node of block) {
    const kw = node.keyword.text;
    const h = Object.hasOwn(handlers, kw) ? handlers[kw] : undefined;
    if (h) {
      const modern = DEPRECATED_ALIASES[kw];
      if (modern !== undefined && handlers[modern] === h) {
        sink.warn(DiagnosticCode.DEPRECATED, `deprecated; use '${modern}'`, node.keyword.loc, kw);
      }
      handled.add(node);
      h(node, state);
    } else if (ignored.has(kw) || KEEPALIVED_KEYWORDS.has(kw)) {
      // keepalived's keyword, not a typo: say why it does nothing here.
      sink.warn(DiagnosticCode.IGNORED, `${ignoredReason(kw)} (in ${where}); ignored`, node.keyword.loc, kw);
    } else {
      const near = suggest(kw, Object.keys(handlers));
      sink.warn(DiagnosticCode.UNKNOWN_KEYWORD, `unknown keyword in ${where}, ignored${near ? `; did you mean '${near}'?` : ''}`,
        node.keyword.loc, kw);
    }
  }
}

/** Nodes some handler took (unknown and ignored keywords are not in it). */
const handled = new WeakSet<AstNode>();

/**
 * After compiling: a block on a keyword whose handler never read it (often a one-line
 * `weight 3 TCP_CHECK { … }`, where the block hangs off `weight`) would otherwise vanish
 * silently, checkers and all — report it where its `{` is.
 */
export function reportUnreadBlocks(root: readonly AstNode[], sink: DiagnosticSink): void {
  const stack = [...root];
  for (let n = stack.pop(); n !== undefined; n = stack.pop()) {
    if (n.block === null) continue;
    if (handled.has(n) && !Values.blockRead(n)) {
      sink.error(DiagnosticCode.SYNTAX, 'takes no block; write one statement per line', n.open, n.keyword.text,
        'a value on the same line, and each keyword on its own line');
    }
    for (const c of n.block) stack.push(c); // not push(...): a block may hold 100k+ lines
  }
}

/** The closest known keyword by edit distance, if it is close enough to be a typo. */
function suggest(word: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Math.max(2, Math.floor(word.length / 4)) + 1;
  for (const k of known) {
    const d = editDistance(word.toLowerCase(), k.toLowerCase(), bestD);
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best;
}

function editDistance(a: string, b: string, cap: number): number {
  if (Math.abs(a.length - b.length) >= cap) return cap;
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length] ?? cap;
}
