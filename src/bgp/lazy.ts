/**
 * An Announcer loaded on first use. The GoBGP speaker pulls in gRPC and protobuf (about
 * 16 MiB of resident memory); a director without `fulcrum_bgp` never calls its announcer,
 * so it never pays for them.
 */
import type { Announcer, BgpRoute, BgpSession, SpeakerConfig } from './types.js';

export class LazyAnnouncer implements Announcer {
  private inner: Announcer | null = null;
  private loading: Promise<Announcer> | null = null;

  constructor(private readonly load: () => Promise<Announcer>, private readonly pending = 'gobgpd (loading)') {}

  get name(): string {
    return this.inner?.name ?? this.pending;
  }

  private get(): Promise<Announcer> {
    if (this.inner) return Promise.resolve(this.inner);
    this.loading ??= this.load().then((a) => {
      this.inner = a;
      return a;
    }, (err: unknown) => {
      this.loading = null;
      throw err;
    });
    return this.loading;
  }

  async configure(cfg: SpeakerConfig): Promise<void> { return (await this.get()).configure(cfg); }
  async routes(): Promise<BgpRoute[]> { return (await this.get()).routes(); }
  async announce(route: BgpRoute): Promise<void> { return (await this.get()).announce(route); }
  async withdraw(prefix: string): Promise<void> { return (await this.get()).withdraw(prefix); }
  async sessions(): Promise<BgpSession[]> { return (await this.get()).sessions(); }
  /** Nothing loaded: nothing to close. */
  async close(): Promise<void> { if (this.inner || this.loading) await (await this.get()).close(); }
}
