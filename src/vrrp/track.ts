/**
 * Tracking (pure): vrrp_script results with rise/fall hysteresis, and what tracked
 * scripts and interfaces do to an instance — keepalived.conf(5)'s rules:
 *
 *   weight  tracked thing OK     tracked thing failing
 *   0       —                    the instance goes to FAULT
 *   W > 0   priority + W         —
 *   W < 0   —                    priority − |W|
 *   reverse swaps the sign of the adjustment (W > 0: − W while OK; W < 0: + |W| while
 *           failing) and, with weight 0, means FAULT while the thing is OK.
 *
 * A track_file holds a number N (a missing or empty file reads 0), keepalived's rule:
 *   weight 0   N ≠ 0 is FAULT (reverse: N = 0 is FAULT)
 *   weight W   priority + N × W (reverse: − N × W), taken within −254..253; −254 is FAULT
 *
 * The instance's own interface is tracked with weight 0 unless dont_track_primary. Sync
 * group trackers only ever fault (keepalived ignores their weights). The owner (base
 * priority 255) is never adjusted; everyone else stays within 1..254.
 */
import type { TrackedFile, TrackedInterface, TrackedProcess, TrackedScript, TrackFile, TrackProcess, VrrpInstance, VrrpScript, VrrpSyncGroup } from '../model/types.js';

/** A vrrp_script's standing: `ok` after `rise` successes in a row, failing after `fall` failures. */
export interface ScriptStanding {
  readonly ok: boolean;
  /** Consecutive results against the current standing. */
  readonly streak: number;
}

export function initialStanding(s: VrrpScript): ScriptStanding {
  return { ok: !s.initFail, streak: 0 };
}

/** Fold one run's outcome (exit 0 = success) into the standing. */
export function foldScript(st: ScriptStanding, success: boolean, s: VrrpScript): ScriptStanding {
  if (success === st.ok) return st.streak === 0 ? st : { ok: st.ok, streak: 0 };
  const streak = st.streak + 1;
  const need = success ? s.rise : s.fall;
  return streak >= Math.max(1, need) ? { ok: success, streak: 0 } : { ok: st.ok, streak };
}

export interface TrackInput {
  /** vrrp_script name → is it OK now (after hysteresis)? Missing = not run yet: its initial standing. */
  readonly scripts: ReadonlyMap<string, boolean>;
  readonly scriptDefs: ReadonlyMap<string, VrrpScript>;
  /** Interface name → up (undefined: no such interface, which counts as down). */
  readonly interfaceUp: (name: string) => boolean;
  /** track_file name → the number its file holds now (missing: 0). */
  readonly files?: ReadonlyMap<string, number>;
  readonly fileDefs?: ReadonlyMap<string, TrackFile>;
  /** vrrp_track_process name → has it quorum now (missing: not yet known, as in quorum). */
  readonly processes?: ReadonlyMap<string, boolean>;
  readonly processDefs?: ReadonlyMap<string, TrackProcess>;
}

/** One running process as /proc shows it: its name (comm), and its command line when read. */
export interface ProcessEntry {
  readonly comm: string;
  /** argv, split at NULs (null: not read). */
  readonly cmdline: readonly string[] | null;
}

/**
 * Does `p` match `def`, as keepalived's track_process compares: the name (comm) exactly, or
 * with fullCommand argv[0] exactly; then, with paramMatch, the arguments — exact: the same
 * list; partial: these first; initial: these first, the last one a prefix.
 */
export function processMatches(def: TrackProcess, p: ProcessEntry): boolean {
  if (!def.fullCommand) return p.comm === def.process;
  const argv = p.cmdline;
  if (!argv || argv[0] !== def.process) return false;
  const args = argv.slice(1);
  const want = def.params;
  switch (def.paramMatch) {
    case 'none': return true;
    case 'exact': return args.length === want.length && want.every((w, i) => args[i] === w);
    case 'partial': return args.length >= want.length && want.every((w, i) => args[i] === w);
    case 'initial': return args.length >= want.length && want.every((w, i) => (i === want.length - 1 ? (args[i] ?? '').startsWith(w) : args[i] === w));
  }
}

/**
 * A tracked process's standing: `up` (quorum held, as it counts), and since when the raw
 * count has said otherwise (fork_delay / terminate_delay must pass before it counts).
 */
export interface ProcessStanding {
  readonly up: boolean;
  readonly since: number | null;
}

/** Fold one count taken at `now` (ms) into the standing. */
export function foldProcess(st: ProcessStanding, count: number, def: TrackProcess, now: number): ProcessStanding {
  const inQuorum = count >= def.quorum && count <= def.quorumMax;
  if (inQuorum === st.up) return st.since === null ? st : { up: st.up, since: null };
  const delay = (inQuorum ? def.forkDelay : def.terminateDelay) * 1000;
  const since = st.since ?? now;
  return now - since >= delay ? { up: inQuorum, since: null } : { up: st.up, since };
}

/** What a track_file's value does: a priority change, or FAULT. */
export function fileEffect(value: number, weight: number, reverse: boolean): { fault: boolean; delta: number } {
  if (weight === 0) return { fault: (value === 0) === reverse, delta: 0 };
  const d = Math.max(-254, Math.min(253, value * weight * (reverse ? -1 : 1)));
  return d <= -254 ? { fault: true, delta: 0 } : { fault: false, delta: d };
}

export interface TrackVerdict {
  /** The priority to advertise. */
  readonly priority: number;
  /** Why the instance is in FAULT (empty: it is not). */
  readonly faults: readonly string[];
}

function adjust(ok: boolean, weight: number, reverse: boolean): { fault: boolean; delta: number } {
  if (weight === 0) return { fault: reverse ? ok : !ok, delta: 0 };
  if (weight > 0) return { fault: false, delta: ok ? (reverse ? -weight : weight) : 0 };
  return { fault: false, delta: ok ? 0 : (reverse ? -weight : weight) };
}

function scriptOk(name: string, t: TrackInput): boolean {
  const v = t.scripts.get(name);
  if (v !== undefined) return v;
  const def = t.scriptDefs.get(name);
  return def ? !def.initFail : false;
}

/** The effective priority and fault reasons of `inst` (with its sync group's trackers, if any). */
export function trackVerdict(inst: VrrpInstance, group: VrrpSyncGroup | undefined, t: TrackInput): TrackVerdict {
  const faults: string[] = [];
  let delta = 0;
  if (inst.interface !== undefined && !inst.dontTrackPrimary && !t.interfaceUp(inst.interface)) faults.push(`interface ${inst.interface} is down`);
  const iface = (x: TrackedInterface, faultOnly: boolean): void => {
    const up = t.interfaceUp(x.name);
    const r = adjust(up, faultOnly ? 0 : x.weight, x.reverse);
    if (r.fault) faults.push(`tracked interface ${x.name} is ${up ? 'up (reverse)' : 'down'}`);
    delta += r.delta;
  };
  const script = (x: TrackedScript, faultOnly: boolean): void => {
    const ok = scriptOk(x.name, t);
    const w = faultOnly ? 0 : x.weight ?? t.scriptDefs.get(x.name)?.weight ?? 0;
    const r = adjust(ok, w, x.reverse || (x.weight === undefined && (t.scriptDefs.get(x.name)?.reverse ?? false)));
    if (r.fault) faults.push(`track_script ${x.name} ${ok ? 'succeeds (reverse)' : 'fails'}`);
    delta += r.delta;
  };
  const file = (x: TrackedFile, faultOnly: boolean): void => {
    const def = t.fileDefs?.get(x.name);
    const value = t.files?.get(x.name) ?? 0;
    const w = faultOnly ? 0 : x.weight ?? def?.weight ?? 1;
    const r = fileEffect(value, w, x.weight === undefined ? (x.reverse || (def?.reverse ?? false)) : x.reverse);
    if (r.fault) faults.push(`track_file ${x.name} reads ${value}${w === 0 ? '' : ` (× weight ${w})`}`);
    delta += r.delta;
  };
  const proc = (x: TrackedProcess, faultOnly: boolean): void => {
    const def = t.processDefs?.get(x.name);
    const up = t.processes?.get(x.name) ?? true;
    const w = faultOnly ? 0 : x.weight ?? def?.weight ?? 0;
    const r = adjust(up, w, x.weight === undefined ? (x.reverse || (def?.reverse ?? false)) : x.reverse);
    if (r.fault) faults.push(`track_process ${x.name} ${up ? 'has quorum (reverse)' : 'has lost quorum'}`);
    delta += r.delta;
  };
  for (const x of inst.trackInterfaces) iface(x, false);
  for (const x of inst.trackProcesses ?? []) proc(x, false);
  for (const x of inst.trackScripts) script(x, false);
  for (const x of inst.trackFiles ?? []) file(x, false);
  if (group) {
    for (const x of group.trackInterfaces) iface(x, true);
    for (const x of group.trackScripts) script(x, true);
    for (const x of group.trackFiles ?? []) file(x, true);
    for (const x of group.trackProcesses ?? []) proc(x, true);
  }
  const priority = inst.priority === 255 ? 255 : Math.max(1, Math.min(254, inst.priority + delta));
  return { priority, faults };
}

/**
 * The number in a track file, read as keepalived does (strtol, base 0): leading space, an
 * optional sign, decimal, 0x hex or 0 octal, anything after it ignored; an empty or absent
 * file is 0. Null when the number is outside 32 bits (keepalived ignores the read).
 */
export function parseTrackFileValue(text: string | null): number | null {
  if (text === null) return 0;
  const m = /^\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)/.exec(text);
  if (!m) return 0;
  const digits = m[2] as string;
  const magnitude = /^0[xX]/.test(digits) ? Number.parseInt(digits.slice(2), 16) : digits.length > 1 && digits.startsWith('0') ? Number.parseInt(digits, 8) : Number.parseInt(digits, 10);
  const v = m[1] === '-' ? -magnitude : magnitude;
  return v < -2147483648 || v > 2147483648 ? null : v;
}
