/**
 * The configuration reader's thread body: load one file (with its includes) and post the
 * result back. Run by `threadConfigLoader`, one thread per load, with memory limits; this
 * module has no other job.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { loadKeepalivedConfig } from '../keepalived/index.js';

const { file, configId } = workerData as { file: string; configId?: string };
const r = loadKeepalivedConfig(file, configId !== undefined ? { configId } : {});
// A refused configuration is not sent back (only its diagnostics): a bomb's best-effort
// model could be huge, and copying it into the daemon's thread is work for nothing.
parentPort?.postMessage(r.ok ? r : { ...r, config: { ...r.config, virtualServers: [], vrrpInstances: [], virtualServerGroups: [] } });
