/**
 * `fulcrum check`: validate a keepalived.conf (-f) or a file of ipvsadm lines (--ipvsadm).
 * Exit 0 with a one-line summary when valid; exit 1 with every located error otherwise.
 * Warnings are printed either way. `--dump` prints the normalized model as JSON.
 */
import fs from 'node:fs';
import { defaultConfigFile } from './paths.js';
import { formatDiagnostic, type Diagnostic } from '../errors/index.js';
import { describeFsError } from '../config/keepalived/preprocess.js';
import { loadKeepalivedConfig, parseIpvsadmRules } from '../config/index.js';
import type { VirtualServer } from '../model/types.js';
import { canonicalJson } from './json.js';

export interface CheckOptions {
  readonly file?: string | undefined;
  readonly ipvsadm?: string | undefined;
  readonly dump?: boolean | undefined;
  readonly locations?: boolean | undefined;
  readonly configId?: string | undefined;
  readonly quiet?: boolean | undefined;
}

export interface Io {
  out(text: string): void;
  err(text: string): void;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function serversSummary(vss: readonly VirtualServer[]): string {
  const rs = vss.reduce((n, v) => n + v.realServers.length, 0);
  return `${plural(vss.length, 'virtual server')} (${plural(rs, 'real server')})`;
}

function report(diags: readonly Diagnostic[], io: Io, quiet: boolean): { errors: number; warnings: number } {
  let errors = 0;
  let warnings = 0;
  for (const d of diags) {
    if (d.severity === 'error') errors++;
    else warnings++;
    if (d.severity === 'error' || !quiet) io.err(formatDiagnostic(d));
  }
  return { errors, warnings };
}

export function runCheck(given: CheckOptions, io: Io, exists: (p: string) => boolean = (p) => fs.existsSync(p)): number {
  if (given.file !== undefined && given.ipvsadm !== undefined) {
    io.err('fulcrum check: give exactly one of -f FILE (keepalived.conf) or --ipvsadm FILE');
    return 2;
  }
  let opts = given;
  if (given.file === undefined && given.ipvsadm === undefined) {
    // As `fulcrum run` does: the file the director would read.
    const found = defaultConfigFile(exists);
    io.err(`fulcrum check: ${found.said}`);
    if (found.file === null) return 2;
    opts = { ...given, file: found.file };
  }
  if (opts.ipvsadm !== undefined) {
    let text: string;
    try {
      text = fs.readFileSync(opts.ipvsadm, 'utf8');
    } catch (err: unknown) {
      io.err(`${opts.ipvsadm}:1:1: error E_FILE: cannot read: ${describeFsError(err)}`);
      return 1;
    }
    const r = parseIpvsadmRules(text, opts.ipvsadm);
    const { errors, warnings } = report(r.diagnostics, io, opts.quiet ?? false);
    if (opts.dump && r.ok) io.out(canonicalJson({ virtualServers: r.virtualServers, timeouts: r.table.timeouts }, opts));
    if (!r.ok) {
      io.err(`fulcrum check: ${opts.ipvsadm}: ${plural(errors, 'error')}, ${plural(warnings, 'warning')}`);
      return 1;
    }
    if (!opts.dump) io.out(`${opts.ipvsadm}: OK — ${plural(r.commands.length, 'command')}, ${serversSummary(r.virtualServers)}, ${plural(warnings, 'warning')}`);
    return 0;
  }
  const file = opts.file as string;
  const r = loadKeepalivedConfig(file, opts.configId !== undefined ? { configId: opts.configId } : {});
  const { errors, warnings } = report(r.diagnostics, io, opts.quiet ?? false);
  if (!r.ok) {
    io.err(`fulcrum check: ${file}: ${plural(errors, 'error')}, ${plural(warnings, 'warning')}`);
    return 1;
  }
  if (opts.dump) {
    io.out(canonicalJson(r.config, opts));
    return 0;
  }
  const c = r.config;
  const extra = r.files.length > 1 ? `, ${plural(r.files.length - 1, 'included file')}` : '';
  io.out(`${file}: OK — ${plural(c.vrrpInstances.length, 'VRRP instance')}, ${serversSummary(c.virtualServers)}${extra}, ${plural(warnings, 'warning')}`);
  return 0;
}
