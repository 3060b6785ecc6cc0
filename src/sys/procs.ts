/**
 * The running processes as /proc shows them, for vrrp_track_process: each one's name (the
 * comm field of /proc/PID/stat, zombies left out as keepalived leaves them out) and, when
 * asked, its command line (/proc/PID/cmdline split at NULs). A process that exits while it
 * is read is skipped.
 */
import fs from 'node:fs';
import type { ProcessEntry } from '../vrrp/track.js';

export function readProcesses(o: { cmdline: boolean; root?: string }): ProcessEntry[] {
  const root = o.root ?? '/proc';
  const out: ProcessEntry[] = [];
  let names: string[];
  try {
    names = fs.readdirSync(root);
  } catch {
    return out;
  }
  for (const pid of names) {
    if (!/^[1-9][0-9]*$/.test(pid)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`${root}/${pid}/stat`, 'latin1');
    } catch {
      continue;
    }
    // "PID (comm) S …": the name may hold spaces and parentheses, so the last ')' ends it.
    const open = stat.indexOf('(');
    const close = stat.lastIndexOf(')');
    if (open < 0 || close < open) continue;
    if (stat.charAt(close + 2) === 'Z') continue;
    const comm = stat.slice(open + 1, close);
    let cmdline: string[] | null = null;
    if (o.cmdline) {
      try {
        const raw = fs.readFileSync(`${root}/${pid}/cmdline`, 'utf8');
        cmdline = raw.endsWith('\0') ? raw.slice(0, -1).split('\0') : raw === '' ? [] : raw.split('\0');
      } catch {
        continue;
      }
    }
    out.push({ comm, cmdline });
  }
  return out;
}
