/**
 * keepalived.conf block structure: logical lines → a tree of statements.
 *
 * A statement is a keyword and its arguments up to the end of the line. A `{` opens a block
 * owned by the statement it ends (or, alone on a line, by the statement just before it);
 * `}` closes the innermost block. Blocks may be written on one line (`track_script { chk }`)
 * and text may follow `{` on its line. Unbalanced braces are located errors; the parse never
 * throws and is iterative, so deep nesting cannot overflow the stack.
 */
import type { DiagnosticSink, SourceLocation } from '../../errors/index.js';
import { DiagnosticCode } from '../../errors/index.js';
import { isClose, isOpen, type Token } from './lexer.js';
import type { LogicalLine } from './preprocess.js';

export interface AstNode {
  readonly keyword: Token;
  readonly args: Token[];
  /** null when the statement has no block. */
  block: AstNode[] | null;
  /** Where the block's `{` was. */
  open?: SourceLocation;
}

export const MAX_BLOCK_DEPTH = 64;

export function parseBlocks(lines: readonly LogicalLine[], sink: DiagnosticSink): AstNode[] {
  const root: AstNode[] = [];
  const stack: { nodes: AstNode[]; owner: AstNode | null }[] = [{ nodes: root, owner: null }];
  let tooDeep = 0; // braces opened past the depth limit, skipped but counted for balance

  for (const line of lines) {
    let cur: AstNode | null = null;
    for (let ti = 0; ti < line.tokens.length; ti++) {
      const t = line.tokens[ti] as Token;
      const top = stack[stack.length - 1] as { nodes: AstNode[]; owner: AstNode | null };
      if (isOpen(t)) {
        if (tooDeep > 0 || stack.length > MAX_BLOCK_DEPTH) {
          if (tooDeep === 0) sink.error(DiagnosticCode.LIMIT, `blocks nested more than ${MAX_BLOCK_DEPTH} deep`, t.loc);
          tooDeep++;
          cur = null;
          continue;
        }
        let owner: AstNode | null = cur;
        if (owner === null && ti === 0) {
          // `{` alone at the start of a line belongs to the previous statement if it has no block.
          const prev = top.nodes[top.nodes.length - 1];
          if (prev && prev.block === null) owner = prev;
        }
        if (owner === null) {
          sink.error(DiagnosticCode.SYNTAX, "'{' without a keyword before it", t.loc, '{', 'KEYWORD [ARGS] {');
          owner = { keyword: { ...t, text: '' }, args: [], block: null };
        } else if (owner.block !== null) {
          sink.error(DiagnosticCode.SYNTAX, `'${owner.keyword.text}' already has a block`, t.loc, owner.keyword.text);
          owner = { keyword: owner.keyword, args: [], block: null };
        }
        owner.block = [];
        owner.open = t.loc;
        stack.push({ nodes: owner.block, owner });
        cur = null;
        continue;
      }
      if (isClose(t)) {
        if (tooDeep > 0) {
          tooDeep--;
        } else if (stack.length === 1) {
          sink.error(DiagnosticCode.SYNTAX, "unbalanced '}': no block is open here", t.loc, '}');
        } else {
          stack.pop();
        }
        cur = null;
        continue;
      }
      if (tooDeep > 0) continue;
      if (cur === null) {
        cur = { keyword: t, args: [], block: null };
        top.nodes.push(cur);
      } else {
        cur.args.push(t);
      }
    }
  }
  for (let k = stack.length - 1; k >= 1; k--) {
    const owner = (stack[k] as { owner: AstNode | null }).owner as AstNode;
    sink.error(DiagnosticCode.SYNTAX, `block of '${owner.keyword.text}' opened here is never closed`,
      owner.open, owner.keyword.text, "a matching '}'");
  }
  return root;
}
