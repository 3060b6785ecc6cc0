/**
 * health — keepalived's checkers and the machinery that runs them.
 *
 * - types.ts: the `Checker` boundary (one probe → ProbeResult with evidence), the Clock.
 * - runner.ts: timing per checker (warmup, delay_loop, connect_timeout, retry,
 *   delay_before_retry, alpha, rise) as a pure step function plus a runner.
 * - checkers/: TCP_CHECK, HTTP_GET/SSL_GET, SMTP_CHECK, DNS_CHECK, MISC_CHECK, UDP_CHECK,
 *   PING_CHECK (raw ICMP through sys/), FILE_CHECK.
 * - monitor.ts: every checker and agent probe of a configuration → observations for the
 *   director, events on `fulcrum:health`, notify scripts and mail on transitions.
 * - fake.ts + compliance.ts: a scripted Checker and the suite every checker passes.
 */
export { ProbeErrorCode, abortHook, networkFailure, probeAbort, verdict, type Abortable, type AbortHook, type Checker, type Clock, type ProbeContext, type ProbeResult, type ProbeTarget } from './types.js';
export { FakeClock, systemClock } from './clock.js';
export { CheckRunner, ProbeAbort, initialCheckState, runnerTiming, stepCheck, type CheckReport, type CheckState, type CheckStep, type RunnerTiming } from './runner.js';
export { createChecker, probeTarget, type CheckerDeps, type CheckerFactory } from './factory.js';
export { HEALTH_CHANNEL, HealthMonitor, publishHealth, type AgentProber, type HealthEvent, type HealthMonitorOptions } from './monitor.js';
export { FakeChecker } from './fake.js';
export { httpGet, hostHeader, requestText, statusMatches, MAX_BODY_BYTES, MAX_HEAD_BYTES, type HttpReply, type HttpRequestOptions } from './checkers/http.js';
export { matchesHexPattern } from './checkers/udp.js';
export { miscVerdict } from './checkers/misc.js';
export { fileVerdict } from './checkers/file.js';
export { echoRequest, inetChecksum, parseEchoReply, Pinger, PingChecker } from './checkers/ping.js';
