/**
 * The boundary between the daemon and VRRP: `VrrpRunner`. The daemon prepares a
 * configuration (start or reload), then commits or aborts it — a reload is one transaction
 * across VRRP and the data plane — and learns which virtual addresses are held.
 *
 *  - `LocalVrrpRunner` runs a VrrpNode on the caller's event loop over an injected host and
 *    clock (tests, with FakeSegment and FakeClock).
 *  - `ProcessVrrpRunner` (process/runner.ts) runs it in a child process of its own, as
 *    keepalived runs its VRRP child: nothing the control plane or the proxy does (a long
 *    reload, a huge batch, a CPU stall) can delay an advertisement, and a crash on either
 *    side is contained and seen.
 */
import type { FulcrumConfig } from '../model/types.js';
import { VrrpNode, type InstanceStatus, type VrrpNodeOptions } from './node.js';

/** A prepared start or reload: commit it, or abort it (nothing changes). */
export interface VrrpTransaction {
  commit(): Promise<void>;
  abort(): Promise<void>;
}

export interface VrrpRunner {
  /** Check and open what `config` needs; rejects (a SysError with its code) when it cannot, with nothing changed. */
  prepare(config: FulcrumConfig): Promise<VrrpTransaction>;
  /** Virtual addresses held now (instances in MASTER), as addressKey spells them. */
  held(): ReadonlySet<string>;
  /** Each instance, `since` in milliseconds since the Unix epoch. */
  status(): InstanceStatus[];
  drops(): Readonly<Record<string, number>>;
  /** Masters say goodbye (priority 0), addresses go, notify_stop runs. */
  stop(): Promise<void>;
}

/** No VRRP at all: the daemon's runner when nothing can run it (and a null object for tests). */
export const NO_VRRP: VrrpRunner = {
  prepare: () => Promise.resolve({ commit: () => Promise.resolve(), abort: () => Promise.resolve() }),
  held: () => new Set(),
  status: () => [],
  drops: () => ({}),
  stop: () => Promise.resolve(),
};

export class LocalVrrpRunner implements VrrpRunner {
  private node: VrrpNode | null = null;
  private heldNow: ReadonlySet<string> = new Set();

  constructor(private readonly o: Omit<VrrpNodeOptions, 'onHeldChange'>, private readonly onHeld: (held: ReadonlySet<string>) => void = () => undefined) {}

  prepare(config: FulcrumConfig): Promise<VrrpTransaction> {
    try {
      if (this.node === null && config.vrrpInstances.length === 0) return NO_VRRP.prepare(config);
      const node = this.node ?? new VrrpNode({ ...this.o, onHeldChange: (h) => { this.heldNow = h; this.onHeld(h); } });
      const t = node.prepare(config);
      this.node = node;
      return Promise.resolve({
        commit: () => { t.commit(); return Promise.resolve(); },
        abort: () => { t.abort(); return Promise.resolve(); },
      });
    } catch (err: unknown) {
      return Promise.reject(err);
    }
  }

  held(): ReadonlySet<string> {
    return this.heldNow;
  }

  status(): InstanceStatus[] {
    // The node's clock is monotonic (performance.now in this process); readers get wall-clock time.
    const now = Date.now();
    const mono = performance.now();
    return (this.node?.status() ?? []).map((v) => ({ ...v, since: Math.round(now - (mono - v.since)) }));
  }

  drops(): Readonly<Record<string, number>> {
    return this.node?.drops() ?? {};
  }

  stop(): Promise<void> {
    return this.node?.stop() ?? Promise.resolve();
  }
}
