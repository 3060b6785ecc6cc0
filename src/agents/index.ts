/**
 * agents — server agents (Coyote Point Equalizer's integer load protocol on TCP 1510, and
 * HAProxy's agent-check words): one reply parser for both dialects (reply.ts), the pure
 * rules that turn replies into a real server's state and weight, the director-side probe
 * (probe.ts), and the `fulcrum agent` server that runs on real servers (server.ts, load.ts).
 */
export {
  agentEffect, foldAgent, parseAgentReply, INITIAL_AGENT_STATE, MAX_AGENT_REPLY,
  type AgentAdminState, type AgentEffect, type AgentOpState, type AgentParse, type AgentReply, type AgentState, type AgentWord,
} from './reply.js';
export { probeAgent, type AgentProbeOutcome } from './probe.js';
export { computeLoad, countEstablished, parseWeights, readSample, DEFAULT_LOAD_WEIGHTS, type LoadBreakdown, type LoadSample, type LoadWeights } from './load.js';
export { AgentServer, formatReply, type AgentDialect, type AgentServerEvent, type AgentServerOptions, type LoadSource } from './server.js';
