/**
 * A data-plane worker thread: a ProxyDataPlane that relays traffic on its own event loop,
 * listening with SO_REUSEPORT beside the other workers and scheduling through the shared
 * state, driven by the control plane's messages (protocol.ts). It does nothing else — no
 * configuration, no health checks, no API — so nothing but relaying can stall it.
 */
import { subscribe } from 'node:diagnostics_channel';
import { parentPort, workerData } from 'node:worker_threads';
import { FAILURE_CHANNEL } from '../../errors/index.js';
import { PROXY_CHANNEL, ProxyDataPlane } from '../proxy/plane.js';
import { SharedState } from '../shared/state.js';
import { FdRegistry, haltReactors } from '../../sys/reactor.js';
import type { FromWorker, ToWorker, WorkerInit } from './protocol.js';

const init = workerData as WorkerInit;
const port = parentPort;
if (!port) throw new Error('the data-plane worker runs in a worker thread');
const send = (m: FromWorker): void => port.postMessage(m);

// An uncaught exception ends this thread, as Node would end it, but first the reactor's loop
// handle is closed: an epoll callback during the thread's teardown would abort the process.
// Its descriptors are closed by the control plane from the registry they are recorded in.
process.on('uncaughtException', (err: unknown) => {
  haltReactors();
  try {
    send({ t: 'fault', message: err instanceof Error ? err.message : String(err) });
  } finally {
    process.exit(1);
  }
});

const shared = new SharedState(init.buffers, init.index);
const plane = new ProxyDataPlane({ shared, tunables: init.tunables, ...(init.fds ? { fdRegistry: new FdRegistry(init.fds) } : {}) });

// Events go to the control plane, which logs and counts them.
for (const name of [PROXY_CHANNEL, FAILURE_CHANNEL]) subscribe(name, (message) => send({ t: 'event', channel: name, message }));
setInterval(() => send({ t: 'load', sessions: plane.sessionCount, pipes: plane.pipes() }), 1000).unref();

port.on('message', (m: ToWorker) => {
  switch (m.t) {
    case 'prepare':
      plane.prepare(m.plan).then(
        (f) => send({ t: 'prepared', id: m.id, failures: [...f].map(([index, x]) => ({ index, ...x })) }),
        (err: unknown) => send({ t: 'prepared', id: m.id, failures: m.plan.ops.map((_, index) => ({ index, code: 'E_DP_LISTEN' as const, message: String(err) })) }),
      );
      return;
    case 'commit':
      plane.commit(m.plan, new Set(m.skip)).then(() => send({ t: 'done', id: m.id }), () => send({ t: 'done', id: m.id }));
      return;
    case 'abort':
      plane.abort();
      send({ t: 'done', id: m.id });
      return;
    case 'connections':
      send({ t: 'connections', id: m.id, entries: plane.connectionList() });
      return;
    case 'stop-accepting':
      plane.stopAccepting().then(() => send({ t: 'done', id: m.id }), () => send({ t: 'done', id: m.id }));
      return;
    case 'close':
      plane.close(m.drainMs).catch(() => undefined).finally(() => {
        // Terminated next: no reactor callback may fire during the teardown.
        haltReactors();
        plane.publish();
        send({ t: 'done', id: m.id });
        port.close();
      }).catch(() => undefined);
      return;
    case 'crash':
      // Fault injection (tests): an uncaught exception, as a bug would throw.
      if (init.faults) setImmediate(() => { throw new Error('injected worker crash'); });
      return;
  }
});

send({ t: 'ready' });
