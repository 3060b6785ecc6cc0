/**
 * The VRRP child process: a LocalVrrpRunner over the real host network and clock, driven by
 * the daemon through IPC (protocol.ts). Its events (transitions, drops, notify outcomes,
 * internal failures) go back to the daemon, which logs and counts them. If the daemon goes
 * away (its IPC channel closes), VRRP stops as on a clean stop — masters send priority 0
 * and remove their addresses — because nothing would serve the addresses any more.
 */
import { subscribe } from 'node:diagnostics_channel';
import { FAILURE_CHANNEL, errorCode, errorMessage } from '../../errors/index.js';
import { systemClock } from '../../health/index.js';
import { ffiHostNetwork } from '../../sys/index.js';
import { VRRP_CHANNEL } from '../node.js';
import { LocalVrrpRunner, type VrrpTransaction } from '../runner.js';
import type { FromChild, ToChild } from './protocol.js';

const send = (m: FromChild): void => {
  if (process.connected) process.send?.(m);
};

let stopping: Promise<void> | null = null;
const runner = new LocalVrrpRunner({ host: ffiHostNetwork, clock: systemClock }, (held) => {
  send({ t: 'held', addresses: [...held] });
  pushStatus();
});
const pending = new Map<number, VrrpTransaction>();

function pushStatus(): void {
  send({ t: 'status', status: runner.status(), drops: runner.drops() });
}

for (const name of [VRRP_CHANNEL, FAILURE_CHANNEL]) {
  subscribe(name, (message) => {
    send({ t: 'event', channel: name, message });
    if (name === VRRP_CHANNEL) pushStatus();
  });
}
// Counters (adverts sent/received) move without events: a snapshot every second.
setInterval(pushStatus, 1000).unref();

function stop(): Promise<void> {
  stopping ??= runner.stop().finally(() => {
    pushStatus();
    process.disconnect?.();
    setTimeout(() => process.exit(0), 50).unref();
  });
  return stopping;
}

process.on('disconnect', () => { stop().catch(() => process.exit(1)); });
process.on('SIGTERM', () => { stop().catch(() => process.exit(1)); });
process.on('SIGINT', () => undefined); // the daemon decides; a terminal's Ctrl-C reaches both

process.on('message', (raw: unknown) => {
  const m = raw as ToChild;
  const reply = (p: Promise<unknown>): void => {
    p.then(() => send({ t: 'reply', id: m.id, ok: true }), (err: unknown) => send({ t: 'reply', id: m.id, ok: false, code: errorCode(err) ?? 'E_VRRP', message: errorMessage(err) }));
  };
  switch (m.t) {
    case 'prepare':
      reply(runner.prepare(m.config).then((tx) => { pending.set(m.id, tx); }));
      return;
    case 'commit':
    case 'abort': {
      const tx = pending.get(m.id);
      pending.delete(m.id);
      reply((tx ? (m.t === 'commit' ? tx.commit() : tx.abort()) : Promise.resolve()).then(pushStatus));
      return;
    }
    case 'stop':
      reply(stop());
      return;
  }
});

send({ t: 'ready' });
