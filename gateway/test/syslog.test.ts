// Audit records to syslog: what a syslog daemon receives on a Unix datagram socket (as /dev/log)
// or over UDP, framed as RFC 3164 or RFC 5424, one record per message. The receiving socket is
// bound here: a Unix datagram socket (unix-dgram.ts), a UDP socket.
import t, { type Test } from 'tap';
import { createSocket } from 'node:dgram';
import { mkdtempSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { createLogger } from '@gsra/common';
import { SyslogSink, loggerArgs, type SyslogConfig } from '../src/syslog.ts';
import { unixDatagramReceiver } from './unix-dgram.ts';

const tmp = mkdtempSync(join(tmpdir(), 'gsra-syslog-'));
const logger = createLogger('gateway', { stream: new PassThrough() });
const record = { message: 'flow ended', user: 'alice', in: 'intra1.corp.example', payloadToEn: 1048806 };

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A receiving socket named `name`, and a sink sending to it; both go away with the test. */
async function listening(t: Test, name: string, over: Partial<SyslogConfig> = {}) {
  const path = join(tmp, name);
  const rx = unixDatagramReceiver(path);
  t.teardown(rx.stop);
  await rx.up;
  const sink = new SyslogSink(config({ target: path, ...over }), logger);
  t.teardown(() => sink.close());
  return { rx, sink };
}

const config = (over: Partial<SyslogConfig>): SyslogConfig => ({
  target: '/dev/log',
  facility: 'authpriv',
  format: 'rfc3164',
  tag: 'gsra-gateway',
  ...over,
});

t.test('RFC 3164 to a Unix socket, as syslog(3) writes it: <PRI>time tag[pid]: the record', async (t) => {
  const { rx, sink } = await listening(t, 'log-3164');
  sink.send(JSON.stringify(record));
  await until('one message', () => rx.got.length === 1);
  // authpriv (10) * 8 + info (6) = 86
  const m = /^<86>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d gsra-gateway\[(\d+)\]: (\{.*\})$/.exec(rx.got[0]!);
  t.ok(m, String(rx.got[0]));
  t.equal(Number(m?.[1]), process.pid, 'the gateway’s pid');
  t.same(JSON.parse(m?.[2] ?? 'null'), record);
});

t.test('RFC 5424 with another facility: version, ISO time, host, app, pid, msgid flow', async (t) => {
  const { rx, sink } = await listening(t, 'log-5424', { format: 'rfc5424', facility: 'local0' });
  sink.send(JSON.stringify(record));
  await until('one message', () => rx.got.length === 1);
  // local0 (16) * 8 + info (6) = 134
  const m = /^<134>1 (\S+) \S+ gsra-gateway (\d+) flow (?:-|\[[^\]]*\]) (\{.*\})$/.exec(rx.got[0]!);
  t.ok(m, String(rx.got[0]));
  t.ok(Number.isFinite(Date.parse(m?.[1] ?? '')), 'an RFC 3339 timestamp');
  t.same(JSON.parse(m?.[3] ?? 'null'), record);
});

t.test('each record is one message, even with a line break inside', async (t) => {
  const { rx, sink } = await listening(t, 'log-lines');
  sink.send('{"a":"one\ntwo"}');
  sink.send('{"b":2}');
  await until('two messages', () => rx.got.length === 2);
  t.match(rx.got[0], /: \{"a":"one two"\}$/);
  t.match(rx.got[1], /: \{"b":2\}$/);
});

t.test('a syslog socket that appears later (daemon restarted) gets the records from then on', async (t) => {
  const path = join(tmp, 'log-late');
  t.notOk(existsSync(path));
  const sink = new SyslogSink(config({ target: path }), logger);
  t.teardown(() => sink.close());
  sink.send('{"lost":true}'); // nobody listens: dropped by logger, the gateway goes on
  await new Promise((r) => setTimeout(r, 200));
  const rx = unixDatagramReceiver(path);
  t.teardown(rx.stop);
  await rx.up;
  // logger connects on the next message it writes
  const deadline = Date.now() + 5000;
  while (rx.got.length === 0 && Date.now() < deadline) {
    sink.send('{"late":true}');
    await new Promise((r) => setTimeout(r, 100));
  }
  t.match(rx.got[0], /: \{"late":true\}$/);
});

t.test('UDP to a remote collector, RFC 5424', async (t) => {
  const sock = createSocket('udp4');
  const got: string[] = [];
  sock.on('message', (m) => got.push(m.toString()));
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  t.teardown(() => sock.close());
  const port = sock.address().port;
  const sink = new SyslogSink(config({ target: `udp://127.0.0.1:${port}`, format: 'rfc5424' }), logger);
  t.teardown(() => sink.close());
  sink.send(JSON.stringify(record));
  await until('one datagram', () => got.length === 1);
  t.match(got[0], /^<86>1 \S+ \S+ gsra-gateway \d+ flow .*\{"message":"flow ended"/);
});

t.test('logger’s arguments for each kind of target', async (t) => {
  const base = ['--id=42', '-t', 'gsra-gateway', '-p', 'authpriv.info'];
  const args = (over: Partial<SyslogConfig>) => loggerArgs(config(over), 42).join(' ');
  t.equal(args({}), `${base.join(' ')} -S 16384 -u /dev/log --socket-errors=off`, 'local: syslog(3) form');
  t.equal(
    args({ format: 'rfc5424' }),
    `${base.join(' ')} --rfc5424 -S 16384 -u /dev/log --socket-errors=off --msgid flow`,
  );
  t.equal(
    args({ target: 'udp://10.0.0.9:514' }),
    `${base.join(' ')} --rfc3164 -S 16384 -d -n 10.0.0.9 -P 514`,
  );
  t.equal(
    args({ target: 'tcp://[2001:db8::9]:6514', format: 'rfc5424' }),
    `${base.join(' ')} --rfc5424 -S 16384 -T -n 2001:db8::9 -P 6514 --octet-count --msgid flow`,
  );
});
