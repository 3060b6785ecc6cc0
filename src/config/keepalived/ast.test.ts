import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DiagnosticSink } from '../../errors/index.js';
import { parseBlocks, type AstNode } from './ast.js';
import { Preprocessor, DEFAULT_PREPROCESS_OPTIONS } from './preprocess.js';
import { nodeConfigFs } from './fs.js';

function tree(text: string): { root: AstNode[]; sink: DiagnosticSink } {
  const sink = new DiagnosticSink();
  const { lines } = new Preprocessor(nodeConfigFs, sink, DEFAULT_PREPROCESS_OPTIONS).runText(text, 't.conf');
  return { root: parseBlocks(lines, sink), sink };
}
const shape = (nodes: AstNode[]): unknown =>
  nodes.map((n) => [n.keyword.text, ...n.args.map((a) => a.text), ...(n.block ? [shape(n.block)] : [])]);

describe('keepalived block structure', () => {
  it('nests blocks and keeps statement arguments', () => {
    const { root, sink } = tree('a 1 2 {\n  b {\n    c 3\n  }\n  d\n}\ne 4\n');
    assert.equal(sink.items.length, 0);
    assert.deepEqual(shape(root), [['a', '1', '2', [['b', [['c', '3']]], ['d']]], ['e', '4']]);
  });

  it('accepts one-line blocks and text after an opening brace', () => {
    const { root } = tree('track_script { chk_a }\nreal_server 1.2.3.4 80 { weight 2\n}\nx { y { z } }');
    assert.deepEqual(shape(root), [['track_script', [['chk_a']]], ['real_server', '1.2.3.4', '80', [['weight', '2']]], ['x', [['y', [['z']]]]]]);
  });

  it('attaches a brace alone on the next line to the statement before it', () => {
    const { root, sink } = tree('virtual_ipaddress\n{\n 10.0.0.1\n}\n');
    assert.equal(sink.items.length, 0);
    assert.deepEqual(shape(root), [['virtual_ipaddress', [['10.0.0.1']]]]);
  });

  it('reports a block never closed at its opening brace', () => {
    const { sink } = tree('global_defs {\n router_id x\nvrrp_instance V {\n}\n');
    assert.deepEqual(sink.items.map((d) => [d.code, d.loc?.line, d.loc?.col, d.keyword]), [['E_SYNTAX', 1, 13, 'global_defs']]);
  });

  it('reports a stray closing brace where it is', () => {
    const { sink } = tree('a {\n}\n  }\n');
    assert.deepEqual(sink.items.map((d) => [d.code, d.loc?.line, d.loc?.col]), [['E_SYNTAX', 3, 3]]);
  });

  it('limits nesting depth without recursion', () => {
    const { sink } = tree('a {'.repeat(5000) + '}'.repeat(5000));
    assert.deepEqual(sink.items.map((d) => d.code), ['E_LIMIT']);
  });
});
