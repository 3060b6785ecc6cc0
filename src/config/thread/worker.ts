/**
 * The configuration reader's thread body: load one file (with its includes) and post the
 * result back. Run by `threadConfigLoader`, one thread per load, with memory limits; this
 * module has no other job.
 */
import os from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { loadKeepalivedConfig } from '../keepalived/index.js';

/** The reader thread's nice value (0 normal … 19 least). */
const READER_NICE = 10;

// Reading a file is the least urgent work in the process: on Linux a thread's nice value is
// its own (setpriority on the calling task), so this thread yields the CPU to the one that
// relays traffic and serves the API, and a bomb's seconds of parsing come out of idle time
// first. Raising one's own nice value needs no privilege; if it fails, the load still runs.
try { os.setPriority(READER_NICE); } catch { /* not Linux, or a sandbox refusing it: read at normal priority */ }

const { file, configId } = workerData as { file: string; configId?: string };
const r = loadKeepalivedConfig(file, configId !== undefined ? { configId } : {});
// A refused configuration is not sent back (only its diagnostics): a bomb's best-effort
// model could be huge, and copying it into the daemon's thread is work for nothing.
parentPort?.postMessage(r.ok ? r : { ...r, config: { ...r.config, virtualServers: [], vrrpInstances: [], virtualServerGroups: [] } });
