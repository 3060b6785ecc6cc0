/**
 * HTTP_GET and SSL_GET (keepalived check_http.c), and the request genhash makes.
 *
 * The request is written by hand because keepalived's `http_protocol` picks the request
 * line: 1.0 (default), 1.0C (1.0 with `Connection: close`) or 1.1 (with `Connection:
 * close`), which Node's HTTP client cannot send. The reply is read just far enough:
 * the status line and headers (bounded), and the body only when a digest or regex needs
 * it — streamed through MD5, never buffered whole, and capped.
 */
import { createHash } from 'node:crypto';
import type net from 'node:net';
import type { HttpCheck, HttpUrl } from '../../model/types.js';
import type { Abortable, Checker, ProbeContext, ProbeResult, ProbeTarget } from '../types.js';
import { networkFailure, probeAbort, ProbeErrorCode, verdict } from '../types.js';
import { connectStream, openStream, readStream, type ProbeStream } from '../stream.js';

/** Bytes of status line + headers accepted before the reply is called malformed. */
export const MAX_HEAD_BYTES = 16 * 1024;
/** Bytes of body hashed before giving up (a digest over more is not a health check). */
export const MAX_BODY_BYTES = 16 * 1024 * 1024;
/** Bytes of body kept as text for `regex`. */
const MAX_REGEX_BYTES = 1024 * 1024;

export interface HttpRequestOptions {
  readonly path: string;
  readonly host: string;
  readonly protocol: '1.0' | '1.0C' | '1.1';
  readonly tls: boolean;
  readonly servername?: string | undefined;
  /** The request's bytes when the caller made them once (`requestText(o)` otherwise). */
  readonly wire?: Buffer | undefined;
}

export interface HttpReply {
  readonly status: number;
  /** Lower-case names; parsed only when the body is read (a status check needs none of them). */
  readonly headers: ReadonlyMap<string, string>;
  /** Lower-case hex MD5 of the (de-chunked) body; undefined when the body was not read. */
  readonly digest?: string | undefined;
  /** The first MAX_REGEX_BYTES of the body, when asked for. */
  readonly text?: string | undefined;
  readonly bodyBytes: number;
}

export class HttpProbeError extends Error {
  constructor(readonly code: typeof ProbeErrorCode.PROTOCOL | typeof ProbeErrorCode.MISMATCH, message: string) {
    super(message);
  }
}

export function requestText(o: HttpRequestOptions): string {
  const version = o.protocol === '1.1' ? 'HTTP/1.1' : 'HTTP/1.0';
  const close = o.protocol === '1.0' ? '' : 'Connection: close\r\n';
  return `GET ${o.path} ${version}\r\nUser-Agent: KeepAliveClient\r\nHost: ${o.host}\r\n${close}\r\n`;
}

/** `Host` value for an address: IPv6 in brackets, the port unless it is the scheme's default. */
export function hostHeader(target: Pick<ProbeTarget, 'address' | 'port' | 'family'>, tlsOn: boolean): string {
  const h = target.family === 'inet6' ? `[${target.address}]` : target.address;
  return target.port === (tlsOn ? 443 : 80) ? h : `${h}:${target.port}`;
}

/** Decodes `Transfer-Encoding: chunked`, passing data bytes on. */
class Dechunker {
  private state: 'size' | 'data' | 'crlf' | 'trailer' | 'done' = 'size';
  private line = '';
  private left = 0;
  constructor(private readonly onData: (b: Buffer) => void) {}

  get done(): boolean {
    return this.state === 'done';
  }

  push(c: Buffer): void {
    let i = 0;
    while (i < c.length && this.state !== 'done') {
      if (this.state === 'data') {
        const n = Math.min(this.left, c.length - i);
        this.onData(c.subarray(i, i + n));
        i += n;
        this.left -= n;
        if (this.left === 0) this.state = 'crlf';
        continue;
      }
      const ch = c[i++] ?? 0;
      if (ch !== 0x0a) {
        this.line += String.fromCharCode(ch);
        if (this.line.length > 1024) throw new HttpProbeError(ProbeErrorCode.PROTOCOL, 'chunk header too long');
        continue;
      }
      const l = this.line.replace(/\r$/, '');
      this.line = '';
      if (this.state === 'crlf') {
        if (l !== '') throw new HttpProbeError(ProbeErrorCode.PROTOCOL, 'missing CRLF after chunk');
        this.state = 'size';
      } else if (this.state === 'size') {
        const size = parseInt(l.split(';')[0] ?? '', 16);
        if (!Number.isFinite(size) || size < 0 || !/^[0-9a-fA-F]+/.test(l)) throw new HttpProbeError(ProbeErrorCode.PROTOCOL, `bad chunk size '${l.slice(0, 20)}'`);
        if (size === 0) this.state = 'trailer';
        else {
          this.left = size;
          this.state = 'data';
        }
      } else if (l === '') this.state = 'done';
    }
  }
}

/**
 * One GET. Reads the head; reads the body only when `wantBody` (digest, regex). Rejects
 * with network errors, ABORT_ERR, or HttpProbeError for a malformed or oversized reply.
 */
export async function httpGet(target: ProbeTarget, o: HttpRequestOptions, signal: Abortable, want: { digest: boolean; text: boolean }): Promise<HttpReply> {
  let sock: ProbeStream | null = null;
  const body = want.digest || want.text;
  try {
    sock = o.tls ? await connectStream(target, signal, { tls: { servername: o.servername } }) : await openStream(target, signal, true);
    sock.write(o.wire ?? requestText(o));
    let head: Buffer | null = null;
    let status = 0;
    let headers: ReadonlyMap<string, string> = NO_HEADERS;
    let rest: Buffer | null = null;
    const how = await readStream(sock, signal, (c) => {
      // Chunks are the stream's own copies: the first is kept as it is.
      const h = head === null ? c : Buffer.concat([head, c]);
      head = h;
      const end = h.indexOf('\r\n\r\n');
      const lfEnd = end < 0 ? h.indexOf('\n\n') : -1;
      if (end < 0 && lfEnd < 0) {
        if (h.length > MAX_HEAD_BYTES) throw new HttpProbeError(ProbeErrorCode.PROTOCOL, `reply head larger than ${MAX_HEAD_BYTES} bytes`);
        return false;
      }
      const cut = end >= 0 ? end + 4 : lfEnd + 2;
      const eol = h.indexOf(0x0a);
      const first = h.toString('latin1', 0, eol > 0 && h[eol - 1] === 0x0d ? eol - 1 : eol);
      const m = STATUS_LINE.exec(first);
      if (!m) throw new HttpProbeError(ProbeErrorCode.PROTOCOL, `not an HTTP status line: ${JSON.stringify(first.slice(0, 80))}`);
      status = Number(m[1]);
      if (body) {
        headers = parseHeaders(h.toString('latin1', eol + 1, cut));
        rest = h.subarray(cut);
      }
      return true;
    });
    if (how === 'end' && status === 0) throw new HttpProbeError(ProbeErrorCode.PROTOCOL, head === null ? 'connection closed without a reply' : 'connection closed inside the reply head');
    if (!body) return { status, headers, bodyBytes: 0 };
    return await readBody(sock, signal, headers, rest ?? Buffer.alloc(0), status, want);
  } finally {
    sock?.destroy();
  }
}

const STATUS_LINE = /^HTTP\/1\.[01] ([0-9]{3})(?: .*)?$/;
const NO_HEADERS: ReadonlyMap<string, string> = new Map();

/** Header lines (after the status line) into lower-case names and trimmed values. */
function parseHeaders(text: string): Map<string, string> {
  const headers = new Map<string, string>();
  for (const l of text.split(/\r?\n/)) {
    const i = l.indexOf(':');
    if (i > 0) headers.set(l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim());
  }
  return headers;
}

async function readBody(
  sock: ProbeStream, signal: Abortable, headers: ReadonlyMap<string, string>, first: Buffer, status: number, want: { digest: boolean; text: boolean },
): Promise<HttpReply> {
  const md5 = createHash('md5');
  const textParts: Buffer[] = [];
  let textBytes = 0;
  let bodyBytes = 0;
  const sink = (b: Buffer): void => {
    bodyBytes += b.length;
    if (bodyBytes > MAX_BODY_BYTES) throw new HttpProbeError(ProbeErrorCode.PROTOCOL, `body larger than ${MAX_BODY_BYTES} bytes`);
    md5.update(b);
    if (want.text && textBytes < MAX_REGEX_BYTES) {
      const part = b.subarray(0, MAX_REGEX_BYTES - textBytes);
      textParts.push(Buffer.from(part));
      textBytes += part.length;
    }
  };
  const te = headers.get('transfer-encoding')?.toLowerCase() ?? '';
  const clRaw = headers.get('content-length');
  const cl = clRaw !== undefined && /^[0-9]+$/.test(clRaw) ? Number(clRaw) : undefined;
  let complete: () => boolean;
  let feed: (b: Buffer) => void;
  if (te.includes('chunked')) {
    const d = new Dechunker(sink);
    feed = (b) => d.push(b);
    complete = () => d.done;
  } else if (cl !== undefined) {
    let left = cl;
    feed = (b) => {
      const part = b.subarray(0, left);
      left -= part.length;
      sink(part);
    };
    complete = () => left === 0;
  } else {
    feed = sink;
    complete = () => false;
  }
  if (first.length > 0) feed(first);
  if (!complete()) {
    const how = await readStream(sock, signal, (c) => {
      feed(c);
      return complete();
    });
    if (how === 'end' && (te.includes('chunked') || cl !== undefined) && !complete()) {
      throw new HttpProbeError(ProbeErrorCode.PROTOCOL, 'connection closed before the end of the body');
    }
  }
  return {
    status, headers, bodyBytes,
    digest: md5.digest('hex'),
    ...(want.text ? { text: Buffer.concat(textParts).toString('utf8') } : {}),
  };
}

export function statusMatches(url: HttpUrl, status: number): boolean {
  return url.statusCodes.some(([lo, hi]) => status >= lo && status <= hi);
}

function rangesText(url: HttpUrl): string {
  return url.statusCodes.map(([lo, hi]) => (lo === hi ? String(lo) : `${lo}-${hi}`)).join(',');
}

export class HttpChecker implements Checker {
  readonly type: 'HTTP_GET' | 'SSL_GET';
  private readonly regexes: (RegExp | null)[];
  /** Each url's request, made once: it depends on the configuration alone. */
  private readonly requests: HttpRequestOptions[];
  private readonly wants: { digest: boolean; text: boolean }[];

  constructor(private readonly target: ProbeTarget, private readonly cfg: HttpCheck, defaultHost?: string) {
    this.type = cfg.type;
    this.regexes = cfg.urls.map((u) => (u.regex !== undefined ? new RegExp(u.regex) : null));
    const tlsOn = cfg.type === 'SSL_GET';
    this.requests = cfg.urls.map((url) => {
      const host = url.virtualhost ?? cfg.virtualhost ?? defaultHost;
      const o: HttpRequestOptions = {
        path: url.path,
        host: host ?? hostHeader(target, tlsOn),
        protocol: cfg.httpProtocol,
        tls: tlsOn,
        servername: cfg.enableSni ? cfg.sniName ?? host : undefined,
      };
      // UTF-8: the bytes the configuration file had, as keepalived sends them.
      return { ...o, wire: Buffer.from(requestText(o), 'utf8') };
    });
    this.wants = cfg.urls.map((url, i) => ({ digest: url.digest !== undefined, text: this.regexes[i] != null }));
  }

  async check(ctx: ProbeContext): Promise<ProbeResult> {
    const start = performance.now();
    let last: number | undefined;
    const urls = this.cfg.urls;
    for (let i = 0; i < urls.length; i++) {
      const url = urls[i]!;
      const re = this.regexes[i] ?? null;
      let reply: HttpReply;
      try {
        reply = await httpGet(this.target, this.requests[i]!, probeAbort(ctx), this.wants[i]!);
      } catch (err: unknown) {
        if (err instanceof HttpProbeError) return verdict(start, performance.now(), { ok: false, code: err.code, detail: `${url.path}: ${err.message}` });
        const f = networkFailure(err);
        return verdict(start, performance.now(), { ok: false, code: f.code, detail: `${url.path}: ${f.detail}` });
      }
      last = reply.status;
      if (!statusMatches(url, reply.status)) {
        return verdict(start, performance.now(), { ok: false, code: ProbeErrorCode.MISMATCH, status: reply.status, detail: `${url.path}: status ${reply.status} not in ${rangesText(url)}` });
      }
      if (url.digest !== undefined && reply.digest !== url.digest) {
        return verdict(start, performance.now(), { ok: false, code: ProbeErrorCode.MISMATCH, status: reply.status, detail: `${url.path}: digest ${reply.digest ?? '?'} is not ${url.digest}` });
      }
      if (re !== null && re.test(reply.text ?? '') === url.regexNoMatch) {
        return verdict(start, performance.now(), { ok: false, code: ProbeErrorCode.MISMATCH, status: reply.status, detail: `${url.path}: body ${url.regexNoMatch ? 'matches' : 'does not match'} /${url.regex ?? ''}/` });
      }
    }
    return verdict(start, performance.now(), { ok: true, status: last });
  }

  close(): void {}
}
