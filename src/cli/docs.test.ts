import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildProgram } from './main.js';
import { ADM_USAGE } from './adm.js';
import { bashCompletion, confManPage, fulcrumManPage, markdownToRoff, roffEscape, roffInline, zshCompletion } from './docs.js';
import { admOptionWords } from './gen-docs.js';
import { defaultConfigFile, DEFAULT_CONFIG_FILES } from './paths.js';
import { runCheck } from './check.js';

const meta = { version: '9.9.9', date: '2026-11-30' };
const program = (): ReturnType<typeof buildProgram> => buildProgram({ out: () => undefined, err: () => undefined }, () => undefined);

test('roff escaping: backslashes, hyphens, leading control characters, non-ASCII', () => {
  assert.equal(roffEscape('a\\b'), 'a\\eb');
  assert.equal(roffEscape('--workers'), '\\-\\-workers');
  assert.equal(roffEscape('.TH not a request'), '\\&.TH not a request');
  assert.equal(roffEscape("'quoted"), "\\&'quoted");
  assert.equal(roffEscape('a → b'), 'a \\[u2192] b');
  assert.equal(roffInline('use `lb_kind DR` and **never** *this* [link](http://x)'), 'use \\fBlb_kind DR\\fR and \\fBnever\\fR \\fIthis\\fR link');
});

test('markdownToRoff: sections, lists, code, tables', () => {
  const r = markdownToRoff('# Title\n\n## Part one\n\nText `x`.\n\n- item one\n  continued\n- item two\n\n```\n.code\n```\n\n| a | b | c |\n| --- | --- | --- |\n| k | v1 | v2 |\n');
  assert.deepEqual(r, ['.SH "PART ONE"', '.PP', 'Text \\fBx\\fR.', '.IP \\(bu 4', 'item one', 'continued', '.IP \\(bu 4', 'item two',
    '.PP', '.RS 4', '.nf', '\\&.code', '.fi', '.RE', '.TP', 'k', 'b: v1; c: v2']);
});

test('fulcrum(8) documents every subcommand and every option --help shows', () => {
  const p = program();
  const page = fulcrumManPage(p, ADM_USAGE, meta);
  assert.match(page, /^\.TH FULCRUM 8 2026-11-30 "fulcrum 9\.9\.9"/m);
  for (const c of p.commands) {
    assert.ok(page.includes(`.SS "fulcrum ${c.name()}`), c.name());
    for (const o of c.options) assert.ok(page.includes(roffEscape(o.flags)), `${c.name()} ${o.flags}`);
  }
  assert.ok(page.includes(roffEscape('--start-daemon master|backup')), "adm's ipvsadm usage");
});

test('fulcrum.conf(5) is docs/configuration.md plus every keepalived keyword it does not describe', () => {
  const md = '## global_defs\n\n`router_id` and `vrrp_version`.\n';
  const page = confManPage(md, new Set(['router_id', 'vrrp_version', 'enable_snmp_vrrp', 'bfd_instance']), (k) => (k.startsWith('bfd') ? 'BFD is off' : 'SNMP is off'), meta);
  assert.match(page, /^\.SH "GLOBAL_DEFS"$/m);
  assert.match(page, /These 2 are not described above/);
  assert.match(page, /^BFD is off\n\\fBbfd_instance\\fR$/m);
  assert.match(page, /^SNMP is off\n\\fBenable_snmp_vrrp\\fR$/m);
  assert.doesNotMatch(page, /\\fBrouter_id\\fR,|\\fBrouter_id\\fR$/m);
});

test('completions: every subcommand, its options, and every ipvsadm option for adm', () => {
  const p = program();
  const words = admOptionWords();
  for (const w of ['-L', '--list', '-n', '--stats', '--start-daemon', '-t', '--tcp-service', '--persistent-conn']) assert.ok(words.includes(w), w);
  const bash = bashCompletion(p, words);
  const zsh = zshCompletion(p, words);
  for (const c of p.commands) {
    assert.match(bash, new RegExp(`^    ${c.name()}\\)`, 'm'));
    assert.match(zsh, new RegExp(`^    ${c.name()}\\) _arguments`, 'm'));
    for (const o of c.options) if (o.long) assert.ok(bash.includes(o.long) && zsh.includes(`'${o.long}`), `${c.name()} ${o.long}`);
  }
  assert.match(bash, /case "\$prev" in --file\|-f\|--ipvsadm\) COMPREPLY=\(\$\(compgen -f/);
  assert.match(zsh, /'--file:file:_files'/);
});

test('default configuration file: /etc/fulcrum/fulcrum.conf, else keepalived.conf, and says which', () => {
  assert.deepEqual(DEFAULT_CONFIG_FILES, ['/etc/fulcrum/fulcrum.conf', '/etc/keepalived/keepalived.conf']);
  assert.deepEqual(defaultConfigFile((f) => f === '/etc/fulcrum/fulcrum.conf'), { file: '/etc/fulcrum/fulcrum.conf', said: 'no -f given: reading /etc/fulcrum/fulcrum.conf' });
  assert.deepEqual(defaultConfigFile(() => true).file, '/etc/fulcrum/fulcrum.conf');
  assert.deepEqual(defaultConfigFile((f) => f.includes('keepalived')), {
    file: '/etc/keepalived/keepalived.conf', said: 'no -f given: reading /etc/keepalived/keepalived.conf (/etc/fulcrum/fulcrum.conf does not exist)',
  });
  const none = defaultConfigFile(() => false);
  assert.equal(none.file, null);
  assert.match(none.said, /none of \/etc\/fulcrum\/fulcrum\.conf, \/etc\/keepalived\/keepalived\.conf exists/);
  const err: string[] = [];
  assert.equal(runCheck({}, { out: () => undefined, err: (t) => err.push(t) }, () => false), 2);
  assert.match(err.join('\n'), /no -f given and none of/);
});
