// Audit records to syslog as well (config `audit.syslog`): the local socket (/dev/log: journald,
// rsyslog, syslog-ng) or a remote collector over UDP or TCP. Node has no Unix datagram sockets,
// so one long-running `logger` (util-linux, on every Linux) frames and sends the messages: each
// line written to its stdin becomes one message, RFC 3164 (what /dev/log readers expect, journald
// included) or RFC 5424 (remote collectors; TCP with RFC 6587 octet counting). logger connects
// lazily and reconnects when the syslog daemon restarts. RFC 3164 on a local socket is the form
// syslog(3) writes there (no hostname: journald takes the word after the time as the program). A line never blocks the gateway: beyond
// 1 MiB waiting (the collector is stuck), lines are dropped and counted.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Logger } from '@gsra/common';

export interface SyslogConfig {
  /** '/dev/log' (or another Unix socket path), 'udp://host:port' or 'tcp://host:port'. */
  target: string;
  /** Syslog facility (default authpriv: access records, readable by administrators only). */
  facility: string;
  format: 'rfc3164' | 'rfc5424';
  /** The program name in each message. */
  tag: string;
}

export const SYSLOG_FACILITIES = [
  'auth',
  'authpriv',
  'daemon',
  'user',
  'local0',
  'local1',
  'local2',
  'local3',
  'local4',
  'local5',
  'local6',
  'local7',
] as const;

/** At most this much may wait for logger before lines are dropped. */
const MAX_BACKLOG = 1 << 20;
/** A record longer than this is cut by logger; audit lines are far shorter. */
const MAX_MESSAGE = 16384;
const RESTART_MS = 5000;

/** logger's arguments for a config (exported for the tests). */
export function loggerArgs(c: SyslogConfig, pid = process.pid): string[] {
  const remote = /^(udp|tcp):\/\/(\[[^\]]+\]|[^:/]+):(\d+)$/.exec(c.target);
  // On a local socket logger's own form is RFC 3164 without the hostname, as syslog(3) writes it.
  const format = remote || c.format === 'rfc5424' ? [`--${c.format}`] : [];
  const args = ['--id=' + pid, '-t', c.tag, '-p', `${c.facility}.info`, ...format, '-S', String(MAX_MESSAGE)];
  if (remote) {
    const host = remote[2]!.replace(/^\[|\]$/g, '');
    args.push(remote[1] === 'udp' ? '-d' : '-T', '-n', host, '-P', remote[3]!);
    if (remote[1] === 'tcp') args.push('--octet-count');
  } else {
    args.push('-u', c.target, '--socket-errors=off');
  }
  if (c.format === 'rfc5424') args.push('--msgid', 'flow');
  return args;
}

export class SyslogSink {
  private child: ChildProcess | undefined;
  private closed = false;
  private restartTimer: NodeJS.Timeout | undefined;
  /** Lines dropped because logger was not running or too far behind. */
  dropped = 0;

  constructor(
    private readonly c: SyslogConfig,
    private readonly log: Logger,
  ) {
    if (!/^(udp|tcp):\/\//.test(c.target) && !existsSync(c.target))
      log.warn('audit to syslog: the socket does not exist yet; records are sent once it does', {
        target: c.target,
      });
    this.start();
  }

  private start(): void {
    const child = spawn('logger', loggerArgs(this.c), { stdio: ['pipe', 'ignore', 'pipe'] });
    this.child = child;
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-500)));
    child.stdin!.on('error', () => {}); // an exit is reported below
    child.on('error', (e) => this.log.error('audit to syslog: cannot run logger', { reason: e.message }));
    child.on('exit', (code) => {
      if (this.child === child) this.child = undefined;
      if (this.closed) return;
      this.log.error('audit to syslog: logger stopped; restarting in 5 s', {
        target: this.c.target,
        code,
        reason: err.trim() || undefined,
      });
      this.restartTimer = setTimeout(() => this.start(), RESTART_MS);
      this.restartTimer.unref();
    });
  }

  /** Sends one record (a line break inside would split it, so there is none). */
  send(text: string): void {
    const stdin = this.child?.stdin;
    if (!stdin || !stdin.writable || stdin.writableLength > MAX_BACKLOG) {
      this.dropped++;
      return;
    }
    stdin.write(text.replace(/[\r\n]+/g, ' ') + '\n');
  }

  /** Sends what is queued, then stops logger. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.stdin!.end();
    const timer = setTimeout(() => child.kill(), 2000);
    await exited;
    clearTimeout(timer);
  }
}
