/**
 * FakeAnnouncer: an in-memory speaker behind the Announcer boundary, for tests of
 * everything above it. It keeps the routes it was told to originate, reports sessions as
 * the test sets them, and can be made to fail (unreachable, refusing a prefix).
 */
import { FulcrumError } from '../errors/index.js';
import { BgpErrorCode, type Announcer, type BgpRoute, type BgpSession, type SessionState, type SpeakerConfig } from './types.js';

export class FakeAnnouncer implements Announcer {
  readonly name = 'fake speaker';
  config: SpeakerConfig | null = null;
  /** Calls, in order: 'configure', 'announce 10.0.0.1/32', 'withdraw …', 'close'. */
  readonly calls: string[] = [];
  private readonly table = new Map<string, BgpRoute>();
  private readonly states = new Map<string, { state: SessionState; upSince: number | null }>();
  /** Every call fails as an unreachable speaker would. */
  down = false;
  /** Prefixes the speaker refuses to originate. */
  readonly refuse = new Set<string>();
  closed = false;

  private check(): void {
    if (this.down || this.closed) throw new FulcrumError(BgpErrorCode.SPEAKER, 'the fake speaker is down');
  }

  configure(cfg: SpeakerConfig): Promise<void> {
    this.check();
    this.calls.push('configure');
    this.config = cfg;
    for (const n of cfg.neighbors) if (!this.states.has(n.address)) this.states.set(n.address, { state: 'active', upSince: null });
    for (const k of [...this.states.keys()]) if (!cfg.neighbors.some((n) => n.address === k)) this.states.delete(k);
    return Promise.resolve();
  }

  routes(): Promise<BgpRoute[]> {
    this.check();
    return Promise.resolve([...this.table.values()]);
  }

  announce(route: BgpRoute): Promise<void> {
    this.check();
    if (this.refuse.has(route.prefix)) return Promise.reject(new FulcrumError(BgpErrorCode.REFUSED, `the fake speaker refuses ${route.prefix}`));
    this.calls.push(`announce ${route.prefix}`);
    this.table.set(route.prefix, route);
    return Promise.resolve();
  }

  withdraw(prefix: string): Promise<void> {
    this.check();
    this.calls.push(`withdraw ${prefix}`);
    this.table.delete(prefix);
    return Promise.resolve();
  }

  sessions(): Promise<BgpSession[]> {
    this.check();
    const cfg = this.config;
    return Promise.resolve((cfg?.neighbors ?? []).map((n) => {
      const s = this.states.get(n.address) ?? { state: 'active' as const, upSince: null };
      return { neighbor: n.address, remoteAs: n.remoteAs, state: s.state, upSince: s.upSince, received: 0 };
    }));
  }

  close(): Promise<void> {
    this.calls.push('close');
    this.table.clear();
    this.closed = true;
    return Promise.resolve();
  }

  /** Test hook: a session changes state. */
  setSession(neighbor: string, state: SessionState, at: number): void {
    this.states.set(neighbor, { state, upSince: state === 'established' ? at : null });
  }
}
