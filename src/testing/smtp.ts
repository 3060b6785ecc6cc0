/**
 * A real SMTP server on loopback (the smtp-server package) that keeps every message it is
 * sent, for tests of e-mail alerts. Headers are unfolded so a test can match a whole line.
 */
import type net from 'node:net';
import { SMTPServer } from 'smtp-server';

export interface SmtpSink {
  readonly port: number;
  /** Each message as received (DATA), headers unfolded. */
  readonly mails: string[];
  close(): Promise<void>;
}

export async function startSmtpSink(): Promise<SmtpSink> {
  const mails: string[] = [];
  const smtp = new SMTPServer({
    authOptional: true, disabledCommands: ['STARTTLS'], logger: false,
    onData(stream, _session, cb) {
      let text = '';
      stream.on('data', (c: Buffer) => { text += c.toString(); });
      stream.on('end', () => { mails.push(text.replace(/\r\n /g, ' ')); cb(); });
    },
  });
  await new Promise<void>((r) => smtp.listen(0, '127.0.0.1', r));
  return {
    port: (smtp.server.address() as net.AddressInfo).port,
    mails,
    close: () => new Promise<void>((r) => smtp.close(() => r())),
  };
}
