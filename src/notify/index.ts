/**
 * notify — actions on state changes outside the data plane: operator scripts (run without
 * a shell, as script_user, with a timeout), notify_up/notify_down, and e-mail alerts per
 * keepalived's global_defs through nodemailer.
 */
export { describeOutcome, resolveUser, runScript, type RunScriptOptions, type ScriptOutcome, type ScriptUser } from './script.js';
export { alertsEnabled, realServerAlert, smtpMailer, type MailAlert, type Mailer } from './mail.js';
export { NOTIFY_TIMEOUT_MS, ScriptAndMailNotifier, type Notifier, type NotifyReport, type QuorumTransition, type ServerTransition } from './notifier.js';
