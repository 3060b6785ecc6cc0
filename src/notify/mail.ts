/**
 * E-mail alerts per keepalived's global_defs (notification_email, notification_email_from,
 * smtp_server, smtp_helo_name, smtp_connect_timeout), sent with nodemailer. The message
 * follows keepalived's wording so existing mail filters keep matching:
 * Subject `[router_id] Realserver [ip]:port of virtual server [vip]:port - UP|DOWN`.
 *
 * nodemailer is imported at the first alert, not at start: most directors configure no SMTP,
 * and loading it costs the daemon about 5 MiB of resident memory (issue 22).
 */
import os from 'node:os';
import type { Transporter } from 'nodemailer';
import type { GlobalDefs } from '../model/types.js';

export interface MailAlert {
  readonly subject: string;
  readonly text: string;
}

export interface Mailer {
  send(alert: MailAlert): Promise<void>;
}

/** Whether alerts are on for a real server: its smtp_alert, else the global settings. */
export function alertsEnabled(g: GlobalDefs, rsSetting: boolean | undefined): boolean {
  if (g.smtpServer === undefined || g.notificationEmail.length === 0) return false;
  return rsSetting ?? g.smtpAlertChecker ?? g.smtpAlert ?? true;
}

export function realServerAlert(g: GlobalDefs, e: { service: string; server: string; up: boolean; reason: string }): MailAlert {
  const router = g.routerId ?? os.hostname();
  const state = e.up ? 'UP' : 'DOWN';
  return {
    subject: `[${router}] Realserver [${e.server}] of virtual server [${e.service}] - ${state}`,
    text: `=> ${e.up ? 'CHECK succeed on service' : 'CHECK failed on service'} : ${e.reason} <=\r\n`,
  };
}

/** A Mailer over SMTP; null when global_defs does not configure mail. */
export function smtpMailer(g: GlobalDefs): Mailer | null {
  const server = g.smtpServer;
  if (server === undefined || g.notificationEmail.length === 0) return null;
  const options = {
    host: server.host,
    port: server.port,
    secure: false,
    name: g.smtpHeloName ?? os.hostname(),
    connectionTimeout: g.smtpConnectTimeout * 1000,
    greetingTimeout: g.smtpConnectTimeout * 1000,
    socketTimeout: g.smtpConnectTimeout * 1000,
    // keepalived speaks plain SMTP to a relay; use STARTTLS only if the relay offers it.
    tls: { rejectUnauthorized: false },
  };
  let transport: Promise<Transporter> | undefined;
  const from = g.notificationEmailFrom ?? `keepalived@${os.hostname()}`;
  return {
    async send(alert) {
      transport ??= import('nodemailer').then((m) => m.default.createTransport(options));
      await (await transport).sendMail({ from, to: [...g.notificationEmail], subject: alert.subject, text: alert.text });
    },
  };
}
