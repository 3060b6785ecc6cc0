import { DiagnosticCode, type DiagnosticSink, type SourceLocation } from '../errors/index.js';

/**
 * A persistence engine (`ipvsadm --pe NAME`, keepalived's `persistence_engine NAME`): the
 * kernel has one, `sip` (persistence by SIP Call-ID). Fulcrum does not implement it; both
 * paths say so the same way, and persistence stays by client address.
 */
export function persistenceEngine(name: string, loc: SourceLocation, keyword: string, sink: DiagnosticSink): void {
  if (name.toLowerCase() !== 'sip') {
    sink.error(DiagnosticCode.BAD_VALUE, `unknown persistence engine '${name}'`, loc, keyword, 'sip');
    return;
  }
  sink.warn(DiagnosticCode.IGNORED, "the SIP persistence engine (persistence by Call-ID) is not implemented: persistence stays by client address", loc, keyword);
}
