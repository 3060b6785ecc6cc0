/**
 * ipvsadm front end: command lines and `ipvsadm -S` save files → commands → an IPVS
 * table → the shared model. Shared by `fulcrum check --ipvsadm` and `fulcrum adm`.
 */
import { DiagnosticSink, type Diagnostic } from '../../errors/index.js';
import type { VirtualServer } from '../../model/types.js';
import { parseIpvsadmLine, splitLine, type IpvsCommand } from './parse.js';
import { EMPTY_TABLE, IpvsTableIndex, tableToVirtualServers, type IpvsTable } from './table.js';

export type { ArgToken, IpvsCommand, ServerOptions, ServiceId, ServiceOptions } from './parse.js';
export { IPVSADM_OPTIONS, joinArgs, parseHostPort, parseIpvsadmLine, splitLine } from './parse.js';
export type { IndexedService, IpvsService, IpvsTable, IpvsTimeouts } from './table.js';
export { applyIpvsCommand, EMPTY_TABLE, IpvsTableIndex, formatIpvsSave, ipvsRealServer, ipvsVirtualServer, METHOD_FLAG, serviceIdKey, tableToVirtualServers } from './table.js';
export { formatConnections, formatList, formatTimeouts, IPVS_VERSION_LINE, type ListFormat } from './list.js';

export interface IpvsadmRulesResult {
  readonly commands: readonly IpvsCommand[];
  readonly table: IpvsTable;
  readonly virtualServers: readonly VirtualServer[];
  readonly diagnostics: readonly Diagnostic[];
  readonly ok: boolean;
}

/**
 * Parse a file of ipvsadm lines (blank lines, `#` comments and a trailing `\` continuation
 * allowed) and apply them in order to `start`. Every bad line is reported; good lines
 * still apply, so one run lists every problem.
 */
export function parseIpvsadmRules(text: string, file = '<input>', start: IpvsTable = EMPTY_TABLE): IpvsadmRulesResult {
  const sink = new DiagnosticSink();
  const commands: IpvsCommand[] = [];
  const index = new IpvsTableIndex(start);
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let line = (lines[i] as string).replace(/\r$/, '');
    const lineNo = i + 1;
    while (line.endsWith('\\') && i + 1 < lines.length) line = line.slice(0, -1) + ' ' + (lines[++i] as string).replace(/\r$/, '');
    const words = splitLine(line, file, lineNo);
    if (words.length === 0) continue;
    const cmd = parseIpvsadmLine(words, sink);
    if (!cmd) continue;
    commands.push(cmd);
    index.apply(cmd, sink);
  }
  const table = index.toTable();
  return { commands, table, virtualServers: tableToVirtualServers(table), diagnostics: sink.items, ok: !sink.hasErrors };
}
