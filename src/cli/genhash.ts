/**
 * `fulcrum genhash`: like keepalived's genhash, fetch a URL from a real server the way
 * HTTP_GET/SSL_GET will, and print the MD5 of the body to paste into `digest`. It uses
 * the checker's own request code, so the digest always matches what the checker computes.
 */
import net from 'node:net';
import { hostHeader, httpGet } from '../health/index.js';
import type { Io } from './check.js';

export interface GenhashOptions {
  readonly server: string;
  readonly port?: string | undefined;
  readonly url: string;
  readonly useSsl?: boolean | undefined;
  readonly useVirtualhost?: string | undefined;
  readonly sni?: string | undefined;
  readonly protocol: string;
  readonly timeout: string;
  readonly verbose?: boolean | undefined;
}

export async function runGenhash(o: GenhashOptions, io: Io): Promise<number> {
  if (!net.isIP(o.server)) {
    io.err(`fulcrum genhash: --server: '${o.server}' is not an IP address`);
    return 2;
  }
  const port = Number(o.port ?? (o.useSsl ? 443 : 80));
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    io.err(`fulcrum genhash: --port: '${o.port ?? ''}' is not a port`);
    return 2;
  }
  if (o.protocol !== '1.0' && o.protocol !== '1.0C' && o.protocol !== '1.1') {
    io.err(`fulcrum genhash: --protocol: '${o.protocol}' is not 1.0, 1.0C or 1.1`);
    return 2;
  }
  const timeoutMs = Number(o.timeout) * 1000;
  if (!(timeoutMs > 0)) {
    io.err(`fulcrum genhash: --timeout: '${o.timeout}' is not a number of seconds`);
    return 2;
  }
  const target = { family: net.isIPv6(o.server) ? 'inet6' as const : 'inet' as const, address: o.server, port };
  const host = o.useVirtualhost ?? hostHeader(target, o.useSsl === true);
  const ac = new AbortController();
  const t = setTimeout(() => ac.abort(), timeoutMs);
  try {
    const r = await httpGet(target, { path: o.url, host, protocol: o.protocol, tls: o.useSsl === true, servername: o.sni }, ac.signal, { digest: true, text: false });
    if (o.verbose) {
      io.out(`HTTP status: ${r.status}`);
      for (const [k, v] of r.headers) io.out(`${k}: ${v}`);
      io.out(`body: ${r.bodyBytes} bytes`);
    }
    io.out(`MD5SUM = ${r.digest ?? ''}`);
    return 0;
  } catch (err: unknown) {
    const e = err as { code?: string; message?: string };
    io.err(`fulcrum genhash: ${o.server}:${port}${o.url}: ${e.code === 'ABORT_ERR' ? `no complete reply within ${o.timeout} s` : e.message ?? String(err)}`);
    return 1;
  } finally {
    clearTimeout(t);
  }
}
