/**
 * api — the edges an operator talks to while Fulcrum runs: the control API (HTTP/JSON on a
 * unix socket, optionally TCP with a bearer token; server.ts), Prometheus /metrics
 * (prom-client; metrics.ts), the dashboard's data (view.ts) and the health/event board
 * built from the daemon's diagnostics channels (status.ts), and the traffic history behind
 * the dashboard's charts (history.ts).
 */
export { ApiError, ApiErrorCode, parseCommands, selectorOf, startApi, type ApiDaemon, type ApiOptions, type OpenPart, type RunningApi } from './server.js';
export { createMetrics, type Metrics } from './metrics.js';
export { StatusBoard, type CheckerStatus, type ServerHealth, type TimelineEvent, type TimelineKind } from './status.js';
export { statusView, type ServerState, type ServerView, type ServiceView, type StatusView, type VrrpView } from './view.js';
export { TrafficHistory, type HistorySeries, type HistoryView } from './history.js';
