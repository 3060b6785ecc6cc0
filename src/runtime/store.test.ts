import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { withTempDir } from '../testing/index.js';
import { EMPTY_OVERLAY, type RuntimeOverlay } from './overlay.js';
import { FileRuntimeStore } from './store.js';

const ov = (weight: number): RuntimeOverlay => ({
  ...EMPTY_OVERLAY,
  servers: [{ service: 'tcp 10.0.0.1:80', key: '10.0.1.1:80', state: 'edited', server: { family: 'inet', address: '10.0.1.1', port: 80, method: 'nat', weight, uthreshold: 0, lthreshold: 0 } }],
});
const weightOf = (o: RuntimeOverlay): number | undefined => {
  const e = o.servers[0];
  return e && e.state !== 'deleted' ? e.server.weight : undefined;
};
/** A store in `dir` that saved weights 1 (compacted into the file) and 2 (in the journal), then closed. */
async function savedTwice(dir: string): Promise<{ file: string; journal: string }> {
  const file = path.join(dir, 'runtime.json');
  const s = new FileRuntimeStore(file);
  await s.save(ov(1));
  await s.save(ov(2));
  s.close();
  return { file, journal: s.journal };
}
const lines = (file: string): number => fs.readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').length;

test('runtime store: a save is one journal append; the file follows; a fresh store reads the newest save back', () => withTempDir(async (dir) => {
  const file = path.join(dir, 'state', 'runtime.json');
  const s = new FileRuntimeStore(file);
  await s.save(ov(1));
  assert.equal(fs.statSync(s.journal).size, 0, 'the first save writes the file durably and empties the journal');
  assert.equal(weightOf(JSON.parse(fs.readFileSync(file, 'utf8')) as RuntimeOverlay), 1);
  await s.save(ov(2));
  await s.save(ov(3));
  assert.equal(lines(s.journal), 2, 'later saves append');
  const shown = (): number | undefined => weightOf(JSON.parse(fs.readFileSync(file, 'utf8')) as RuntimeOverlay);
  assert.equal(shown(), 1, 'the file an operator reads is written later, once for a burst');
  assert.equal(weightOf(new FileRuntimeStore(file).load()), 3, 'what a restart reads is the newest save');
  s.writeCopy();
  assert.equal(shown(), 3, 'written now, it is current');
  await s.save(ov(4));
  s.close();
  assert.equal(shown(), 4, 'and when the store closes');
  // A crash after the append, before the file was renamed: the journal is the truth.
  fs.writeFileSync(file, '{"version": 1, "serv');
  assert.equal(weightOf(new FileRuntimeStore(file).load()), 4, 'a damaged file under a journal entry does not matter');
}));

test('runtime store: the operator\'s copy is written FILE_DELAY_MS after a save, on the event loop', () => withTempDir(async (dir) => {
  const file = path.join(dir, 'runtime.json');
  const s = new FileRuntimeStore(file);
  await s.save(ov(1));
  await s.save(ov(2));
  const t = Date.now();
  while (weightOf(JSON.parse(fs.readFileSync(file, 'utf8')) as RuntimeOverlay) !== 2 && Date.now() - t < 5000) await new Promise((r) => setTimeout(r, 10));
  assert.equal(weightOf(JSON.parse(fs.readFileSync(file, 'utf8')) as RuntimeOverlay), 2);
  s.close();
}));

test('runtime store: closed while a flush is under way, the save still completes and is read back', () => withTempDir(async (dir) => {
  const file = path.join(dir, 'runtime.json');
  const s = new FileRuntimeStore(file);
  await s.save(ov(1));
  const flushing = s.save(ov(2));
  s.close();
  await flushing;
  assert.equal(weightOf(new FileRuntimeStore(file).load()), 2);
}));

test('runtime store: a save cut short is ignored, and the next start compacts it away', () => withTempDir(async (dir) => {
  const { file, journal } = await savedTwice(dir);
  fs.appendFileSync(journal, JSON.stringify(ov(9)).slice(0, 40));
  const again = new FileRuntimeStore(file);
  assert.equal(weightOf(again.load()), 2, 'the torn line was never acknowledged');
  await again.save(ov(4));
  assert.equal(fs.statSync(again.journal).size, 0, 'the first save of a new store compacts (the torn tail goes)');
  await again.save(ov(5));
  assert.equal(weightOf(new FileRuntimeStore(file).load()), 5);
  again.close();
}));

test('runtime store: damage is named with its file and line; set aside moves file and journal', () => withTempDir(async (dir) => {
  const { file, journal } = await savedTwice(dir);
  fs.appendFileSync(journal, '{"version": 2}\n');
  assert.throws(() => new FileRuntimeStore(file).load(), (err: unknown) => {
    assert.ok(err instanceof Error && 'code' in err && err.code === 'E_RUNTIME_STATE');
    assert.ok(err.message.startsWith(`${journal}:2: not a version 1 runtime overlay`), err.message);
    return true;
  });
  const moved = new FileRuntimeStore(file).setAside();
  assert.ok(moved?.startsWith(`${file}.rejected-`), String(moved));
  assert.equal(fs.existsSync(`${moved}.journal`), true);
  assert.equal(fs.existsSync(file) || fs.existsSync(journal), false);
  assert.deepEqual(new FileRuntimeStore(file).load(), EMPTY_OVERLAY);
  // With an empty journal, the file is what counts, and its damage is named too.
  fs.writeFileSync(file, 'nope');
  fs.writeFileSync(journal, '');
  assert.throws(() => new FileRuntimeStore(file).load(), new RegExp(`^.*${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: not JSON`));
}));

test('runtime store: past its bound the journal is compacted into the file', () => withTempDir(async (dir) => {
  const file = path.join(dir, 'runtime.json');
  const s = new FileRuntimeStore(file, 500);
  const sizes: number[] = [];
  for (let w = 1; w <= 9; w++) {
    await s.save(ov(w));
    sizes.push(fs.statSync(s.journal).size);
    assert.equal(weightOf(new FileRuntimeStore(file).load()), w);
  }
  const line = JSON.stringify(ov(1)).length + 1;
  assert.ok(sizes.every((n) => n < 500 + line), `the journal stays within its bound and one line: ${sizes.join(', ')}`);
  assert.ok(sizes.filter((n) => n === 0).length >= 3, `the journal was emptied again: ${sizes.join(', ')}`);
  s.close();
}));
