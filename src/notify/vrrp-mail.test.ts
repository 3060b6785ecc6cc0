import { test } from 'node:test';
import assert from 'node:assert/strict';
import { channel } from 'node:diagnostics_channel';
import { startSmtpSink } from '../testing/smtp.js';
import { parseText } from '../testing/index.js';
import { VRRP_CHANNEL, type VrrpEvent } from '../vrrp/node.js';
import { smtpMailer } from './mail.js';
import { VrrpMailNotifier } from './vrrp-mail.js';

const vrrp = channel(VRRP_CHANNEL);
const transition = (instance: string, to: 'MASTER' | 'BACKUP' | 'FAULT' | 'INIT', reason: 'startup' | 'shutdown' | 'fault' = 'startup'): void => {
  vrrp.publish({ type: 'transition', instance, from: 'BACKUP', to, reason, priority: 100, master: null } satisfies VrrpEvent);
};

test('VRRP smtp_alert: each state an instance enters is one mail in keepalived\'s words, through a real SMTP server; smtp_alert_vrrp / smtp_alert give the default; no_email_faults; repeats are not mailed', async () => {
  const smtp = await startSmtpSink();
  const { mails, port } = smtp;
  const inst = (name: string, vrid: number, extra = ''): string => `vrrp_instance ${name} {\n interface eth0\n virtual_router_id ${vrid}\n priority 100\n virtual_ipaddress { 10.0.0.${vrid} }\n${extra}\n}\n`;
  const global = (extra: string): string => `global_defs {\n router_id LB_VRRP\n notification_email {\n  ops@example.test\n }\n smtp_server 127.0.0.1 ${port}\n ${extra}\n}\n`;
  let config = parseText(global('no_email_faults') + inst('VI_MAIL', 1, ' smtp_alert') + inst('VI_QUIET', 2)).config;
  assert.ok(config);
  const notifier = new VrrpMailNotifier(smtpMailer, () => config);
  const detach = notifier.attach();
  try {
    transition('VI_MAIL', 'BACKUP');
    transition('VI_MAIL', 'MASTER');
    transition('VI_MAIL', 'MASTER');
    transition('VI_QUIET', 'MASTER');
    transition('VI_MAIL', 'FAULT', 'fault');
    transition('VI_MAIL', 'INIT', 'shutdown');
    await notifier.idle();
    assert.deepEqual(mails.map((m) => /Subject: (.*)/.exec(m)?.[1]?.trim()), [
      '[LB_VRRP] VRRP Instance VI_MAIL - Entering BACKUP state',
      '[LB_VRRP] VRRP Instance VI_MAIL - Entering MASTER state',
      '[LB_VRRP] VRRP Instance VI_MAIL - Stopping',
    ], 'no repeat, nothing for the instance without smtp_alert, no FAULT with no_email_faults');
    assert.match(mails[1] ?? '', /=> VRRP Instance is now owning VRRP VIPs <=/);
    // smtp_alert_vrrp turns it on for every instance without its own smtp_alert.
    config = parseText(global('smtp_alert_vrrp') + inst('VI_QUIET', 2) + inst('VI_OFF', 3, ' smtp_alert off')).config;
    transition('VI_QUIET', 'FAULT', 'fault');
    transition('VI_OFF', 'MASTER');
    await notifier.idle();
    assert.equal(mails.length, 4);
    assert.match(mails[3] ?? '', /Subject: \[LB_VRRP\] VRRP Instance VI_QUIET - Entering FAULT state/);
  } finally {
    detach();
    await smtp.close();
  }
});
