/**
 * The configuration reader's thread body: load one file (with its includes) and post the
 * result back. Run by `threadConfigLoader`, one thread per load, with memory limits; this
 * module has no other job.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { loadKeepalivedConfig } from '../keepalived/index.js';

const { file, configId } = workerData as { file: string; configId?: string };
const r = loadKeepalivedConfig(file, configId !== undefined ? { configId } : {});
parentPort?.postMessage(r);
