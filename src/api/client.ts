/**
 * A small client for the control API (used by `fulcrum adm`): JSON over the unix socket or
 * over TCP with a bearer token, bounded in time. Errors keep the server's code and message.
 */
import http from 'node:http';
import { FulcrumError } from '../errors/index.js';

export type ApiTarget =
  | { readonly socketPath: string; readonly token?: string | undefined }
  | { readonly url: string; readonly token?: string | undefined };

export interface ApiResponse<T = unknown> {
  readonly status: number;
  readonly body: T;
  readonly text: string;
  readonly headers: http.IncomingHttpHeaders;
}

export const ClientErrorCode = {
  /** Nothing answers (daemon not running, wrong socket). */
  UNREACHABLE: 'E_API_UNREACHABLE',
  TIMEOUT: 'E_API_TIMEOUT',
} as const;

/** One request; resolves with any HTTP status, rejects only when there is no answer. */
export function apiRequest<T = unknown>(target: ApiTarget, method: string, path: string, body?: unknown, opts: { timeoutMs?: number; raw?: string } = {}): Promise<ApiResponse<T>> {
  const payload = opts.raw ?? (body === undefined ? undefined : JSON.stringify(body));
  const headers: Record<string, string> = { accept: 'application/json' };
  if (payload !== undefined) {
    headers['content-type'] = 'application/json';
    // Node sends a DELETE's body neither chunked nor with a length unless told: always say it.
    headers['content-length'] = String(Buffer.byteLength(payload));
  }
  if (target.token) headers['authorization'] = `Bearer ${target.token}`;
  // `servername: ''`: no TLS name to work out. Without it Node's agent tests the host with
  // net.isIP for every request, and the first test compiles its IPv6 pattern — 12 ms of a
  // `fulcrum adm` on Node 24 (a CPU profile), for a name that only TLS would use.
  const base: http.RequestOptions & { servername: string } = 'socketPath' in target
    ? { socketPath: target.socketPath, path, method, headers, servername: '' }
    : (() => {
      const u = new URL(path, target.url);
      return { host: u.hostname.replace(/^\[|\]$/g, ''), port: u.port, path: `${u.pathname}${u.search}`, method, headers, servername: '' };
    })();
  const where = 'socketPath' in target ? target.socketPath : target.url;
  return new Promise((resolve, reject) => {
    const req = http.request(base, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = text;
        if ((res.headers['content-type'] ?? '').includes('application/json') && text !== '') {
          try {
            parsed = JSON.parse(text);
          } catch {
            parsed = text;
          }
        }
        resolve({ status: res.statusCode ?? 0, body: parsed as T, text, headers: res.headers });
      });
      res.on('error', reject);
    });
    req.setTimeout(opts.timeoutMs ?? 30_000, () => req.destroy(new FulcrumError(ClientErrorCode.TIMEOUT, `${where}: no answer within ${opts.timeoutMs ?? 30_000} ms`)));
    req.on('error', (err: Error) => {
      if (err instanceof FulcrumError) return reject(err);
      const code = (err as NodeJS.ErrnoException).code;
      reject(new FulcrumError(ClientErrorCode.UNREACHABLE, `cannot reach the fulcrum API at ${where}: ${code === 'ENOENT' || code === 'ECONNREFUSED' ? 'is `fulcrum run` running? (' + (code ?? '') + ')' : err.message}`));
    });
    if (payload !== undefined) req.end(payload);
    else req.end();
  });
}
