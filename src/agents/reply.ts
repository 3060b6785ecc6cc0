/**
 * One parser for both server-agent dialects, and the pure rules that turn what agents said
 * into a real server's state.
 *
 * - Coyote Point Equalizer: the reply is one integer −1..100 — the server's load
 *   (−1 unavailable, 0 idle, 100 saturated).
 * - HAProxy agent-check: words separated by spaces, tabs or commas, up to a `#` that starts
 *   a free-text description: `up`, `down`/`fail`/`stopped`, `ready`, `drain`, `maint`,
 *   `N%` (weight relative to the configured one), `maxconn:N`; Fulcrum also accepts
 *   `weight:N` (an absolute weight).
 * Several words may come in one reply. Only the first line counts. Every word gets a
 * record of what it did (or why it was ignored), so an operator can see why a server's
 * weight moved.
 */

export type AgentOpState = 'up' | 'down';
export type AgentAdminState = 'ready' | 'drain' | 'maint';

export interface AgentWord {
  readonly word: string;
  /** What the word did, or why it was ignored. */
  readonly effect: string;
  readonly ignored: boolean;
}

export interface AgentReply {
  readonly load?: number | undefined;
  readonly op?: AgentOpState | undefined;
  readonly admin?: AgentAdminState | undefined;
  readonly weightPercent?: number | undefined;
  readonly weight?: number | undefined;
  readonly maxconn?: number | undefined;
  readonly comment?: string | undefined;
  readonly words: readonly AgentWord[];
}

export type AgentParse =
  | { readonly ok: true; readonly reply: AgentReply }
  | { readonly ok: false; readonly error: string; readonly words: readonly AgentWord[] };

/** Longest reply line considered (longer input is cut there). */
export const MAX_AGENT_REPLY = 512;

export function parseAgentReply(raw: string): AgentParse {
  const line = (raw.split(/\r?\n/)[0] ?? '').slice(0, MAX_AGENT_REPLY);
  const hash = line.indexOf('#');
  const body = hash >= 0 ? line.slice(0, hash) : line;
  const comment = hash >= 0 ? line.slice(hash + 1).trim() : undefined;
  const out: { -readonly [K in keyof AgentReply]: AgentReply[K] } = { words: [] };
  const words: AgentWord[] = [];
  const did = (word: string, effect: string): void => { words.push({ word, effect, ignored: false }); };
  const skip = (word: string, effect: string): void => { words.push({ word, effect, ignored: true }); };
  for (const w of body.split(/[\s,]+/).filter(Boolean)) {
    const lw = w.toLowerCase();
    let m: RegExpExecArray | null;
    if (/^-?[0-9]+$/.test(w)) {
      const n = Number(w);
      if (n < -1 || n > 100) skip(w, 'load outside -1..100');
      else {
        out.load = n;
        did(w, n === -1 ? 'load -1: server unavailable' : `load ${n}`);
      }
    } else if (lw === 'up') {
      out.op = 'up';
      did(w, 'operational state up');
    } else if (lw === 'down' || lw === 'fail' || lw === 'stopped') {
      out.op = 'down';
      did(w, 'operational state down');
    } else if (lw === 'ready' || lw === 'drain' || lw === 'maint') {
      out.admin = lw;
      did(w, lw === 'ready' ? 'admin state ready (out of drain/maint)' : lw === 'drain' ? 'admin state drain: weight 0, connections finish' : 'admin state maint: out of rotation');
    } else if ((m = /^([0-9]+(?:\.[0-9]+)?)%$/.exec(w))) {
      out.weightPercent = Number(m[1]);
      did(w, `weight ${out.weightPercent}% of configured`);
    } else if ((m = /^maxconn:([0-9]+)$/i.exec(w))) {
      out.maxconn = Number(m[1]);
      did(w, out.maxconn === 0 ? 'maxconn unlimited' : `maxconn ${out.maxconn}`);
    } else if ((m = /^weight:([0-9]+)$/i.exec(w))) {
      const n = Number(m[1]);
      if (n > 65535) skip(w, 'weight above 65535');
      else {
        out.weight = n;
        did(w, `weight ${n}`);
      }
    } else skip(w, 'not a word of either agent protocol');
  }
  out.words = words;
  if (comment !== undefined && comment !== '') out.comment = comment;
  if (words.every((x) => x.ignored)) {
    const error = line.trim() === '' ? 'empty reply' : `no usable word in ${JSON.stringify(line.slice(0, 80))}`;
    return { ok: false, error, words };
  }
  return { ok: true, reply: out };
}

/** What the agents have said so far about one real server (HAProxy states persist). */
export interface AgentState {
  readonly load?: number | undefined;
  readonly op: AgentOpState;
  readonly admin: AgentAdminState;
  readonly weightPercent?: number | undefined;
  readonly weight?: number | undefined;
  readonly maxconn?: number | undefined;
  /** A probe got no usable reply. */
  readonly silent: boolean;
  readonly lastError?: string | undefined;
}

export const INITIAL_AGENT_STATE: AgentState = { op: 'up', admin: 'ready', silent: false };

/** Fold one probe outcome into the state: a reply updates what it names; silence marks it. */
export function foldAgent(s: AgentState, outcome: AgentParse | { ok: false; error: string }): AgentState {
  if (!outcome.ok) return { ...s, silent: true, lastError: outcome.error };
  const r = outcome.reply;
  return {
    load: r.load ?? s.load,
    op: r.op ?? s.op,
    admin: r.admin ?? s.admin,
    weightPercent: r.weightPercent ?? (r.weight !== undefined ? undefined : s.weightPercent),
    weight: r.weight ?? (r.weightPercent !== undefined ? undefined : s.weight),
    maxconn: r.maxconn ?? s.maxconn,
    silent: false,
  };
}

export interface AgentEffect {
  /** The server may take traffic. */
  readonly alive: boolean;
  /** The weight the agent asks for, when it asks for one. */
  readonly weight?: number | undefined;
  /** The load to give the agent scheduler (−1..100), when known. */
  readonly load?: number | undefined;
  /** Upper connection threshold from maxconn, when given (0 = none). */
  readonly maxconn?: number | undefined;
  readonly reason: string;
}

/**
 * The effect on a real server. `requireResponse`: silence means down (default: silence
 * changes nothing — the last state stands).
 */
export function agentEffect(s: AgentState, baseWeight: number, requireResponse: boolean): AgentEffect {
  const load = s.load;
  if (s.silent && requireResponse) return { alive: false, reason: `no agent response (${s.lastError ?? 'silent'})` };
  if (s.op === 'down') return { alive: false, load, reason: 'agent says down' };
  if (s.admin === 'maint') return { alive: false, load, reason: 'agent says maint' };
  if (load === -1) return { alive: false, load, reason: 'agent load -1 (unavailable)' };
  const maxconn = s.maxconn;
  if (s.admin === 'drain') return { alive: true, weight: 0, load, maxconn, reason: 'agent says drain' };
  if (s.weight !== undefined) return { alive: true, weight: s.weight, load, maxconn, reason: `agent weight ${s.weight}` };
  if (s.weightPercent !== undefined) {
    const w = Math.min(65535, Math.round((baseWeight * s.weightPercent) / 100));
    return { alive: true, weight: w, load, maxconn, reason: `agent weight ${s.weightPercent}%` };
  }
  return { alive: true, load, maxconn, reason: load !== undefined ? `agent load ${load}` : 'agent up' };
}
