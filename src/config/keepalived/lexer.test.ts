import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DiagnosticSink } from '../../errors/index.js';
import { stripComment, tokenizeLine } from './lexer.js';

const words = (line: string): string[] => tokenizeLine(stripComment(line), 'f', 1, new DiagnosticSink()).map((t) => t.text);

describe('keepalived lexer', () => {
  it('strips # and ! comments anywhere, including glued to a brace', () => {
    assert.deepEqual(words('real_server 10.0.0.201 80 {#:真实WEB服务器地址与端口'), ['real_server', '10.0.0.201', '80', '{']);
    assert.deepEqual(words('global_defs { #全局定义'), ['global_defs', '{']);
    assert.deepEqual(words('weight 1 !comment'), ['weight', '1']);
    assert.deepEqual(words('! Configuration File for keepalived'), []);
  });

  it('keeps comment characters inside quotes', () => {
    assert.deepEqual(words('misc_path "/bin/x --tag #1 !"'), ['misc_path', '/bin/x --tag #1 !']);
  });

  it('splits braces glued to words', () => {
    assert.deepEqual(words('url{path /}'), ['url', '{', 'path', '/', '}']);
    assert.deepEqual(words('track_script{chk}'), ['track_script', '{', 'chk', '}']);
  });

  it('joins quoted and unquoted parts of one word, as the man page describes', () => {
    assert.deepEqual(words(`abcd" efg h jkl "mnop`), ['abcd efg h jkl mnop']);
    assert.deepEqual(words(`abcd "efg h jkl" mnop`), ['abcd', 'efg h jkl', 'mnop']);
  });

  it('decodes escapes inside quotes', () => {
    assert.deepEqual(words(String.raw`x "a\tb\x41\101\\\"c\cA"`), ['x', 'a\tbAA\\"c\x01']);
  });

  it('keeps an unresolved ${NAME} together', () => {
    assert.deepEqual(words('priority ${UNDEF}'), ['priority', '${UNDEF}']);
  });

  it('reports an unterminated quote with its column', () => {
    const sink = new DiagnosticSink();
    tokenizeLine('auth_pass "abc', 'k.conf', 7, sink);
    assert.equal(sink.items.length, 1);
    assert.equal(sink.items[0]?.code, 'E_SYNTAX');
    assert.deepEqual(sink.items[0]?.loc, { file: 'k.conf', line: 7, col: 11 });
  });

  it('records 1-based columns', () => {
    const toks = tokenizeLine('  lb_algo  rr', 'f', 3, new DiagnosticSink());
    assert.deepEqual(toks.map((t) => t.loc.col), [3, 12]);
  });

  it('a quoted brace is a word, not a block', () => {
    const t = tokenizeLine('x "{"', 'f', 1, new DiagnosticSink());
    assert.equal(t[1]?.quoted, true);
    assert.equal(t[1]?.text, '{');
  });
});
