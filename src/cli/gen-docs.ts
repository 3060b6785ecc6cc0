/**
 * `node dist/src/cli/gen-docs.js [OUT]` (run by `npm run build`): writes the manual pages
 * and shell completions docs.ts generates into OUT (default dist/): man/fulcrum.8,
 * man/fulcrum.conf.5, completion/fulcrum.bash, completion/_fulcrum.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildProgram, VERSION } from './main.js';
import { ADM_USAGE } from './adm.js';
import { IPVSADM_OPTIONS } from '../config/ipvsadm/index.js';
import { ignoredReason, KEEPALIVED_KEYWORDS } from '../config/keepalived/known.js';
import { bashCompletion, confManPage, fulcrumManPage, zshCompletion, type ManMeta } from './docs.js';

/** Every spelling `fulcrum adm` accepts for an ipvsadm option. */
export function admOptionWords(): string[] {
  return [...new Set(IPVSADM_OPTIONS.flatMap((o) => [`--${o.long}`, ...(o.short !== undefined ? [`-${o.short}`] : [])]))];
}

/** The generated files, by path relative to OUT. */
export function generatedDocs(repo: string, meta: ManMeta): Record<string, string> {
  const program = buildProgram({ out: () => undefined, err: () => undefined }, () => undefined);
  const conf = fs.readFileSync(path.join(repo, 'docs', 'configuration.md'), 'utf8');
  return {
    'man/fulcrum.8': fulcrumManPage(program, ADM_USAGE, meta),
    'man/fulcrum.conf.5': confManPage(conf, KEEPALIVED_KEYWORDS, ignoredReason, meta),
    'completion/fulcrum.bash': bashCompletion(program, admOptionWords()),
    'completion/_fulcrum': zshCompletion(program, admOptionWords()),
  };
}

const here = fileURLToPath(import.meta.url);
if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === here) {
  const repo = path.resolve(path.dirname(here), '..', '..', '..');
  const out = path.resolve(process.argv[2] ?? path.join(repo, 'dist'));
  // SOURCE_DATE_EPOCH makes the page date reproducible (reproducible-builds.org).
  const epoch = Number(process.env['SOURCE_DATE_EPOCH'] ?? '');
  const date = new Date(Number.isFinite(epoch) && epoch > 0 ? epoch * 1000 : Date.now()).toISOString().slice(0, 10);
  for (const [rel, text] of Object.entries(generatedDocs(repo, { version: VERSION, date }))) {
    const p = path.join(out, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, text);
  }
}
