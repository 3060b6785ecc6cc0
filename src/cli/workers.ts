/**
 * `fulcrum run --workers N`: N proxy processes sharing each listening socket (node:cluster
 * with SCHED_NONE — the kernel hands each connection to one worker; Node 20 has no
 * `reusePort`). The primary only supervises: it forwards SIGHUP/SIGTERM/SIGINT, restarts a
 * worker that dies after it started, and exits when they have all stopped.
 *
 * Each worker schedules on its own, so per-worker state stays per worker: wrr/rr shares are
 * exact per worker, and persistence templates would not be shared — so a configuration
 * with persistence is refused with more than one worker (use sh or mh for stickiness).
 */
import cluster, { type Worker } from 'node:cluster';
import { loadKeepalivedConfig } from '../config/index.js';
import { serviceKey } from '../model/keys.js';
import type { Io } from './check.js';
import type { SignalSource } from './run.js';

/** Why this configuration cannot run with several workers (one line each), if it cannot. */
export function workerConflicts(file: string, configId: string | undefined): string[] {
  const r = loadKeepalivedConfig(file, configId !== undefined ? { configId } : {});
  if (!r.ok) return []; // the workers report configuration errors themselves, located
  const out = r.config.virtualServers.filter((vs) => vs.persistence !== null).map((vs) =>
    `virtual server ${serviceKey(vs)} is persistent, and persistence templates are per process: run it with --workers 1, or use lb_algo sh/mh for stickiness without persistence`);
  const kernel = r.config.virtualServers.filter((vs) => vs.method !== 'proxy');
  if (kernel.length > 0) out.push(`${kernel.length} virtual server(s) forward in the kernel (NAT/DR/TUN): the kernel uses every core already; run with --workers 1`);
  if (r.config.vrrpInstances.length > 0) out.push(`${r.config.vrrpInstances.length} vrrp_instance(s): VRRP runs in one process, and the listeners on its addresses follow it; run with --workers 1`);
  return out;
}

export function runPrimary(workers: number, io: Io, signals: SignalSource = process): Promise<number> {
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  return new Promise((resolve) => {
    const live = new Set<Worker>();
    const ready = new Set<Worker>();
    let stopping = false;
    let exitCode = 0;
    const fork = (): void => {
      const w = cluster.fork();
      live.add(w);
      w.on('message', (m: unknown) => {
        if (typeof m === 'object' && m !== null && (m as { ready?: unknown }).ready === true) ready.add(w);
      });
      w.on('exit', (code) => {
        live.delete(w);
        const wasReady = ready.delete(w);
        if (!stopping && !wasReady) {
          // It never started (bad configuration, no privilege): the others will fail alike.
          exitCode = code ?? 1;
          stop();
        } else if (!stopping) {
          io.err(`fulcrum run: worker ${w.process.pid} exited (${code}); starting another`);
          fork();
        }
        if (live.size === 0 && stopping) finish();
      });
    };
    const forward = (sig: NodeJS.Signals): void => { for (const w of live) w.process.kill(sig); };
    const onHup = (): void => forward('SIGHUP');
    const stop = (sig: NodeJS.Signals = 'SIGTERM'): void => {
      if (stopping) {
        forward(sig);
        return;
      }
      stopping = true;
      forward(sig);
      if (live.size === 0) finish();
    };
    const onTerm = (): void => stop('SIGTERM');
    const onInt = (): void => stop('SIGINT');
    const finish = (): void => {
      signals.removeListener('SIGHUP', onHup);
      signals.removeListener('SIGTERM', onTerm);
      signals.removeListener('SIGINT', onInt);
      resolve(exitCode);
    };
    signals.on('SIGHUP', onHup);
    signals.on('SIGTERM', onTerm);
    signals.on('SIGINT', onInt);
    for (let i = 0; i < workers; i++) fork();
  });
}
