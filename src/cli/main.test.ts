import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildProgram, CHECK_OPTIONS, main, quickCheckOptions } from './main.js';

describe("check's arguments without commander", () => {
  it('names exactly the options commander defines for check, each taking a value or not as there', () => {
    const check = buildProgram({ out: () => undefined, err: () => undefined }, () => undefined).commands.find((c) => c.name() === 'check');
    assert.ok(check);
    const fromCommander = new Map<string, { key: string; value: boolean }>();
    for (const o of check.options) {
      const spec = { key: o.attributeName(), value: o.required || o.optional };
      if (o.short) fromCommander.set(o.short, spec);
      if (o.long) fromCommander.set(o.long, spec);
    }
    assert.deepEqual(new Map(Object.entries(CHECK_OPTIONS).map(([k, v]) => [k, { key: v.key, value: v.value }])), fromCommander);
  });

  it('reads the plain forms and leaves every other line to commander', () => {
    assert.deepEqual(quickCheckOptions([]), {});
    assert.deepEqual(quickCheckOptions(['-f', 'a.conf', '--dump', '--locations', '-q']), { file: 'a.conf', dump: true, locations: true, quiet: true });
    assert.deepEqual(quickCheckOptions(['--file=a.conf', '--config-id', 'lb1', '--quiet']), { file: 'a.conf', configId: 'lb1', quiet: true });
    assert.deepEqual(quickCheckOptions(['--ipvsadm', 'r.rules', '-i', 'x', '-f', 'b.conf', '--file', 'c.conf']), { ipvsadm: 'r.rules', configId: 'x', file: 'c.conf' });
    for (const args of [['--help'], ['-h'], ['-f'], ['-f', '-q'], ['--dump=yes'], ['-qf', 'a.conf'], ['-fa.conf'], ['a.conf'], ['--', '-f', 'a'], ['--nope'], ['--constructor'], ['toString']]) {
      assert.equal(quickCheckOptions(args), null, args.join(' '));
    }
  });

  it('answers as commander does where it hands over', async () => {
    const run = async (argv: string[]): Promise<{ code: number; out: string; err: string }> => {
      let out = '';
      let err = '';
      const code = await main(argv, { out: (t) => { out += t; }, err: (t) => { err += t; } });
      return { code, out, err };
    };
    const help = await run(['check', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.out, /--ipvsadm <FILE>/);
    const missing = await run(['check', '-f']);
    assert.equal(missing.code, 2);
    assert.match(missing.err, /argument missing/);
    const unknown = await run(['check', '--nope']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.err, /unknown option '--nope'/);
  });
});
