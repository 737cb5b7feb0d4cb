import t from 'tap';
import { PassThrough } from 'node:stream';
import { createLogger } from '../src/logger.ts';

function capture(level: 'info' | 'debug' = 'info') {
  const stream = new PassThrough();
  const lines: string[] = [];
  stream.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
  return { log: createLogger('gateway', { stream, level }), lines };
}

t.test('writes one JSON line per event with component, level and fields', async (t) => {
  const { log, lines } = capture();
  log.info('flow refused', { user: 'bob', group: 'dev', in: 'intra1.corp.example', reason: 'not-in-group' });
  await new Promise((r) => setImmediate(r));
  t.equal(lines.length, 1);
  const rec = JSON.parse(lines[0]!);
  t.match(rec, {
    component: 'gateway',
    level: 'info',
    message: 'flow refused',
    user: 'bob',
    reason: 'not-in-group',
  });
  t.type(rec.timestamp, 'string');
});

t.test('drops lines below the configured level', async (t) => {
  const { log, lines } = capture('info');
  log.debug('noise');
  log.warn('kept');
  await new Promise((r) => setImmediate(r));
  t.same(
    lines.map((l) => JSON.parse(l).message),
    ['kept'],
  );
});

t.test('never writes secrets, even nested or as buffers', async (t) => {
  const { log, lines } = capture();
  log.info('login', {
    user: 'alice',
    password: 'hunter2',
    creds: { groupKey: Buffer.from('k3y') },
    blob: Buffer.alloc(4),
  });
  await new Promise((r) => setImmediate(r));
  t.notMatch(lines[0]!, /hunter2/);
  t.notMatch(lines[0]!, /k3y/);
  const rec = JSON.parse(lines[0]!);
  t.equal(rec.password, '[redacted]');
  t.equal(rec.creds.groupKey, '[redacted]');
  t.equal(rec.blob, '<4 bytes>');
});
