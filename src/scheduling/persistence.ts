/**
 * Persistence templates (IPVS "connection templates"): (service, masked client) → server.
 *
 * - PPC: the template key is the service (VIP:port); PCC: the service with port 0, so one
 *   client sticks to one server across every port of the VIP; port groups and firewall-mark
 *   services: the group or mark, one template across its ports.
 * - The client address is masked by the persistence granularity (netmask / prefix).
 * - A template outlives its connections until it expires: expiry is `timeout` after its
 *   last use; while it still controls connections at that moment it is re-armed for
 *   another `timeout`, as IPVS's template timer does.
 * - A template whose server was removed is dropped on lookup; one whose server is quiescent
 *   (weight 0) is dropped when `expireQuiescentTemplate` is set (IPVS sysctl
 *   expire_quiescent_template), otherwise it keeps sending that client to the quiescent
 *   server.
 */
import type { Dest } from './types.js';

export interface PersistenceOptions {
  readonly expireQuiescentTemplate: boolean;
}

interface Template {
  dest: Dest;
  timeout: number;
  lastUse: number;
  /** Connections currently controlled by the template (IPVS n_control). */
  control: number;
  expiresAt: number;
}

/**
 * Where a service's templates live: this process's own table (PersistenceTable), or a table
 * shared by every data-plane worker (dataplane/shared), so a client sticks to one server
 * whichever worker accepts it.
 */
export interface TemplateStore {
  lookup(key: string, now: number): Dest | null;
  /** False when the template could not be kept (a full shared table): the connection goes on without it. */
  bind(key: string, dest: Dest, timeout: number, now: number): boolean;
  release(key: string, dest: Dest, now: number): void;
  sweep(now: number): number;
  countFor(dest: Dest): number;
  readonly size: number;
  clear(): void;
  /** The server each template points at (key → dest key), for the simulator and tests. */
  snapshot(): Map<string, string>;
  /**
   * Connection sync: the templates held now — the masked client (the key's last part), the
   * server, and the seconds left (one that controls connections: its whole timeout).
   */
  held(now: number): { client: string; dest: Dest; remaining: number }[];
  /**
   * Connection sync: keep a template another director made (it controls no connection here)
   * until `now + timeout`; one already pointing at `dest` with more than half that left (or
   * controlling connections) is left as it is, as the kernel plane treats a refresh.
   */
  adopt(key: string, dest: Dest, timeout: number, now: number): 'installed' | 'unchanged' | 'full';
}

/** The masked client of a template key (`scope|client`). */
export function templateClient(key: string): string {
  return key.slice(key.lastIndexOf('|') + 1);
}

export class PersistenceTable implements TemplateStore {
  private readonly templates = new Map<string, Template>();
  constructor(private readonly opts: PersistenceOptions = { expireQuiescentTemplate: false }) {}

  static key(scope: string, maskedClient: string): string {
    return `${scope}|${maskedClient}`;
  }

  /** The server a template sends this client to, or null (none, expired, or invalid). */
  lookup(key: string, now: number): Dest | null {
    const t = this.templates.get(key);
    if (!t) return null;
    if (this.expired(t, now) || !t.dest.available || (this.opts.expireQuiescentTemplate && t.dest.weight === 0)) {
      this.templates.delete(key);
      return null;
    }
    return t.dest;
  }

  /** A new connection goes through (or creates) the template. */
  bind(key: string, dest: Dest, timeout: number, now: number): boolean {
    const t = this.templates.get(key);
    if (t && t.dest === dest) {
      t.lastUse = now;
      t.timeout = timeout;
      t.control++;
      t.expiresAt = now + timeout;
    } else {
      this.templates.set(key, { dest, timeout, lastUse: now, control: 1, expiresAt: now + timeout });
    }
    return true;
  }

  /** A connection the template controlled has ended. */
  release(key: string, dest: Dest, now: number): void {
    const t = this.templates.get(key);
    if (!t || t.dest !== dest || t.control === 0) return;
    t.control--;
    if (t.control === 0 && now > t.expiresAt) {
      // The timer fired while connections remained and re-armed: next firing after `now`.
      const periods = Math.ceil((now - t.lastUse) / t.timeout);
      t.expiresAt = t.lastUse + periods * t.timeout;
    }
  }

  private expired(t: Template, now: number): boolean {
    return t.control === 0 && now >= t.expiresAt;
  }

  /** Drop expired templates; returns how many were dropped. */
  sweep(now: number): number {
    let n = 0;
    for (const [k, t] of this.templates) {
      if (this.expired(t, now) || !t.dest.available) {
        this.templates.delete(k);
        n++;
      }
    }
    return n;
  }

  /** Templates pointing at `dest` (to show drain progress). */
  countFor(dest: Dest): number {
    let n = 0;
    for (const t of this.templates.values()) if (t.dest === dest) n++;
    return n;
  }

  get size(): number {
    return this.templates.size;
  }

  /** Forget every template (persistence turned off for the service). */
  clear(): void {
    this.templates.clear();
  }

  /** The server each template points at (key → dest key), for the simulator. */
  snapshot(): Map<string, string> {
    return new Map([...this.templates].map(([k, t]) => [k, t.dest.key]));
  }

  held(now: number): { client: string; dest: Dest; remaining: number }[] {
    const out: { client: string; dest: Dest; remaining: number }[] = [];
    for (const [k, t] of this.templates) {
      if (this.expired(t, now) || !t.dest.available) continue;
      out.push({ client: templateClient(k), dest: t.dest, remaining: t.control > 0 ? t.timeout : t.expiresAt - now });
    }
    return out;
  }

  adopt(key: string, dest: Dest, timeout: number, now: number): 'installed' | 'unchanged' | 'full' {
    const t = this.templates.get(key);
    if (t && t.dest === dest && !this.expired(t, now)) {
      if (t.control > 0 || t.expiresAt - now > timeout / 2) return 'unchanged';
      t.expiresAt = now + timeout;
      t.lastUse = now;
      return 'installed';
    }
    this.templates.set(key, { dest, timeout, lastUse: now, control: 0, expiresAt: now + timeout });
    return 'installed';
  }
}
