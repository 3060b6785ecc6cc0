/**
 * keepalived's VRRP e-mail alerts (`smtp_alert` in a vrrp_instance, else global_defs'
 * `smtp_alert_vrrp`, else `smtp_alert`; off by default): one message per state an instance
 * enters, worded as keepalived's vrrp_smtp_notifier words it, so mail filters keep matching —
 * Subject `[router_id] VRRP Instance NAME - Entering MASTER state`. `no_email_faults` leaves
 * FAULT out. Runs on the control plane from the VRRP events; a failed send is reported as a
 * notify outcome and changes nothing else.
 */
import os from 'node:os';
import { subscribe, unsubscribe, channel } from 'node:diagnostics_channel';
import type { FulcrumConfig, GlobalDefs, VrrpInstance } from '../model/types.js';
import { VRRP_CHANNEL, type VrrpEvent } from '../vrrp/node.js';
import { errorMessage, FailureCode, reportFailure, supervise } from '../errors/index.js';
import type { MailAlert, Mailer } from './mail.js';

/** Whether an instance mails its state changes (and mail is configured at all). */
export function vrrpAlertsEnabled(g: GlobalDefs, inst: VrrpInstance): boolean {
  if (g.smtpServer === undefined || g.notificationEmail.length === 0) return false;
  return inst.smtpAlert ?? g.smtpAlertVrrp ?? g.smtpAlert ?? false;
}

/** The alert for entering `state` (null: a state keepalived does not mail). */
export function vrrpAlert(g: GlobalDefs, instance: string, state: 'MASTER' | 'BACKUP' | 'FAULT' | 'STOP'): MailAlert {
  const router = g.routerId ?? os.hostname();
  const [what, body] = {
    MASTER: ['Entering MASTER state', '=> VRRP Instance is now owning VRRP VIPs <='],
    BACKUP: ['Entering BACKUP state', '=> VRRP Instance is no longer owning VRRP VIPs <='],
    FAULT: ['Entering FAULT state', '=> VRRP Instance is no longer owning VRRP VIPs <='],
    STOP: ['Stopping', '=> VRRP Instance stopping <='],
  }[state];
  return { subject: `[${router}] VRRP Instance ${instance} - ${what}`, text: `${body}\r\n` };
}

export class VrrpMailNotifier {
  /** The state each instance last mailed (keepalived's last_email_state). */
  private readonly last = new Map<string, string>();
  private queue: Promise<void> = Promise.resolve();
  private readonly onEvent = (m: unknown): void => this.event(m as VrrpEvent);

  constructor(private readonly mailer: (g: GlobalDefs) => Mailer | null, private readonly config: () => FulcrumConfig | null) {}

  attach(): () => void {
    subscribe(VRRP_CHANNEL, this.onEvent);
    return () => unsubscribe(VRRP_CHANNEL, this.onEvent);
  }

  /** Every queued message sent (or failed). */
  idle(): Promise<void> {
    return this.queue;
  }

  private event(e: VrrpEvent): void {
    if (e.type !== 'transition') return;
    const cfg = this.config();
    const inst = cfg?.vrrpInstances.find((i) => i.name === e.instance);
    if (!cfg || !inst || !vrrpAlertsEnabled(cfg.global, inst)) return;
    const state = e.to === 'INIT' ? (e.reason === 'shutdown' ? 'STOP' : null) : e.to;
    if (state === null || (state === 'FAULT' && cfg.global.noEmailFaults === true)) return;
    if (this.last.get(inst.name) === state) return;
    this.last.set(inst.name, state);
    const m = this.mailer(cfg.global);
    if (!m) return;
    const alert = vrrpAlert(cfg.global, inst.name, state);
    const next = this.queue.then(async () => {
      try {
        await m.send(alert);
        publishVrrp({ type: 'notify', instance: inst.name, script: 'smtp_alert', ok: true, outcome: `mailed "${alert.subject}"` });
      } catch (err: unknown) {
        publishVrrp({ type: 'notify', instance: inst.name, script: 'smtp_alert', ok: false, outcome: `mail not sent: ${errorMessage(err)}` });
        reportFailure('notify', FailureCode.SCRIPT, err, { instance: inst.name });
      }
    });
    this.queue = next;
    supervise('notify', next);
  }
}

const vrrpEvents = channel(VRRP_CHANNEL);
function publishVrrp(e: VrrpEvent): void {
  if (vrrpEvents.hasSubscribers) vrrpEvents.publish(e);
}
