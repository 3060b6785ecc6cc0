/**
 * keepalived's notify_fifo_script, vrrp_notify_fifo_script and lvs_notify_fifo_script: the
 * reader of a notify FIFO, started by the daemon with the FIFO's path as its last argument
 * once the FIFO exists, and left running (no timeout: keepalived's TIMER_NEVER). The reader
 * ends on its own when the FIFO's writers close it at stop; one still running after the grace
 * is stopped like a timed-out script. One that ends early is reported, not restarted, as
 * keepalived does; a reload starts, keeps or stops readers by (FIFO, script).
 */
import type { GlobalDefs, ScriptSpec } from '../model/types.js';
import { describeOutcome, runScript as realRunScript, type RunScriptOptions, type ScriptOutcome } from './script.js';

export interface FifoScriptEvent {
  readonly fifo: string;
  readonly script: string;
  readonly ok: boolean;
  readonly outcome: string;
}

interface Reader {
  readonly key: string;
  readonly abort: AbortController;
  readonly done: Promise<void>;
}

/** The (FIFO, script) pairs global_defs asks for. */
export function fifoReaders(g: GlobalDefs): { fifo: string; script: ScriptSpec }[] {
  const out: { fifo: string; script: ScriptSpec }[] = [];
  for (const [fifo, script] of [[g.notifyFifo, g.notifyFifoScript], [g.vrrpNotifyFifo, g.vrrpNotifyFifoScript], [g.lvsNotifyFifo, g.lvsNotifyFifoScript]] as const) {
    if (fifo !== undefined && script !== undefined && !out.some((r) => r.fifo === fifo)) out.push({ fifo, script });
  }
  return out;
}

export class FifoScripts {
  private readonly readers = new Map<string, Reader>();

  constructor(
    private readonly ensureFifo: (path: string) => void,
    private readonly report: (e: FifoScriptEvent) => void,
    private readonly run: (spec: ScriptSpec, o: RunScriptOptions) => Promise<ScriptOutcome> = realRunScript,
  ) {}

  /** Start, keep or stop the readers `g` asks for. */
  set(g: GlobalDefs): void {
    const want = new Map(fifoReaders(g).map((r) => [r.fifo, r]));
    for (const [fifo, r] of [...this.readers]) {
      const w = want.get(fifo);
      if (w && r.key === keyOf(w.fifo, w.script)) continue;
      r.abort.abort();
      this.readers.delete(fifo);
    }
    for (const { fifo, script } of want.values()) {
      if (this.readers.has(fifo)) continue;
      try {
        this.ensureFifo(fifo);
      } catch (err: unknown) {
        this.report({ fifo, script: script.text, ok: false, outcome: `not started: ${err instanceof Error ? err.message : String(err)}` });
        continue;
      }
      const abort = new AbortController();
      const done = this.run(script, { timeoutMs: Number.POSITIVE_INFINITY, args: [fifo], defaultUser: g.scriptUser, signal: abort.signal })
        .then((o) => this.report({ fifo, script: script.text, ok: o.exitCode === 0, outcome: abort.signal.aborted ? 'stopped' : `ended: ${describeOutcome(o, 0)}` }))
        .catch((err: unknown) => this.report({ fifo, script: script.text, ok: false, outcome: `cannot run: ${err instanceof Error ? err.message : String(err)}` }));
      this.readers.set(fifo, { key: keyOf(fifo, script), abort, done });
    }
  }

  /** At stop, after the writers closed: give the readers `graceMs` to end, then stop them. */
  async stop(graceMs = 1000): Promise<void> {
    const all = [...this.readers.values()];
    this.readers.clear();
    if (all.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(all.map((r) => r.done)), new Promise((r) => { timer = setTimeout(r, graceMs); })]);
    clearTimeout(timer);
    for (const r of all) r.abort.abort();
    await Promise.all(all.map((r) => r.done));
  }
}

function keyOf(fifo: string, s: ScriptSpec): string {
  return `${fifo}\n${s.text}\n${s.user ?? ''}:${s.group ?? ''}`;
}
