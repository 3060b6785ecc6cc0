/**
 * Names for `fulcrum adm -L` without `-n`, as ipvsadm prints them (gethostbyaddr and
 * getservbyport): a host's name from /etc/hosts, else its DNS PTR record; a port's service
 * name from /etc/services for the protocol. Unlike ipvsadm, a slow resolver never holds the
 * listing: every PTR query shares one deadline (default 1 s), and whatever has not answered
 * by then is printed numerically. Queries go through c-ares (`dns.Resolver`, cancellable),
 * not getaddrinfo's thread pool, so nothing outlives the command.
 */
import fs from 'node:fs';
import { Resolver } from 'node:dns/promises';
import type { NameLookup } from '../config/ipvsadm/list.js';

export interface NameSources {
  /** /etc/hosts text (null: none). */
  readonly hosts: string | null;
  /** /etc/services text (null: none). */
  readonly services: string | null;
  /** PTR lookup; rejects when there is none. */
  readonly reverse: (address: string) => Promise<string[]>;
  /** Stop every outstanding PTR query. */
  readonly cancel: () => void;
}

/** address → its first name in a hosts file (the canonical name, as glibc returns it). */
export function parseHosts(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const [addr, name] = raw.replace(/#.*/, '').trim().split(/\s+/);
    if (addr && name && !m.has(addr.toLowerCase())) m.set(addr.toLowerCase(), name);
  }
  return m;
}

/** `port/proto` → its service name in a services file (the first entry wins, as getservbyport). */
export function parseServices(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const [name, pp] = raw.replace(/#.*/, '').trim().split(/\s+/);
    if (!name || !pp || !/^\d+\/[a-z]+$/i.test(pp)) continue;
    const key = pp.toLowerCase();
    if (!m.has(key)) m.set(key, name);
  }
  return m;
}

/** The system's sources: /etc/hosts, /etc/services and the DNS servers of resolv.conf. */
export function systemNameSources(timeoutMs: number): NameSources {
  const read = (p: string): string | null => {
    try {
      return fs.readFileSync(p, 'utf8');
    } catch {
      return null;
    }
  };
  const resolver = new Resolver({ timeout: timeoutMs, tries: 1 });
  return { hosts: read('/etc/hosts'), services: read('/etc/services'), reverse: (a) => resolver.reverse(a), cancel: () => resolver.cancel() };
}

/**
 * Resolve `addresses` (hosts file first, then PTR within `deadlineMs` for all of them
 * together) and return the lookup the listing uses. Never rejects.
 */
export async function resolveNames(addresses: Iterable<string>, sources: NameSources, deadlineMs = 1000): Promise<NameLookup> {
  const hosts = sources.hosts !== null ? parseHosts(sources.hosts) : new Map<string, string>();
  const services = sources.services !== null ? parseServices(sources.services) : new Map<string, string>();
  const names = new Map<string, string>();
  const ask: string[] = [];
  for (const a of new Set(addresses)) {
    const h = hosts.get(a.toLowerCase());
    if (h !== undefined) names.set(a, h);
    else ask.push(a);
  }
  if (ask.length > 0) {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => { timer = setTimeout(resolve, deadlineMs); });
    const lookups = Promise.all(ask.map((a) => sources.reverse(a).then((n) => {
      if (n[0] !== undefined && n[0] !== '') names.set(a, n[0]);
    }, () => undefined)));
    await Promise.race([lookups, deadline]);
    clearTimeout(timer);
    sources.cancel();
  }
  return {
    host: (a) => names.get(a),
    port: (port, protocol) => services.get(`${port}/${protocol.toLowerCase()}`),
  };
}
