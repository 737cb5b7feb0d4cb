import t from 'tap';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileConfig, ConfigError } from '../src/config.ts';

interface Conf {
  listen: { host: string; port: number };
  mode: 'secure' | 'compat';
  groups: string[];
  verbose?: boolean;
}
const v = compileConfig<Conf>({
  type: 'object',
  additionalProperties: false,
  required: ['listen', 'groups'],
  properties: {
    listen: {
      type: 'object',
      additionalProperties: false,
      required: ['host', 'port'],
      properties: {
        host: { type: 'string', format: 'ipv4' },
        port: { type: 'integer', minimum: 1, maximum: 65535 },
      },
    },
    mode: { type: 'string', enum: ['secure', 'compat'], default: 'secure' },
    groups: { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1 },
    verbose: { type: 'boolean', nullable: true },
  },
});

function problems(data: unknown): string[] {
  try {
    v.check(data);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  return [];
}

t.test('accepts a valid config and fills defaults', async (t) => {
  const c = v.check({ listen: { host: '127.0.0.1', port: 4500 }, groups: ['sales'] });
  t.equal(c.mode, 'secure');
});

t.test('reports a wrong type as path: expected X, got Y', async (t) => {
  t.same(problems({ listen: { host: '127.0.0.1', port: '4500' }, groups: ['a'] }), [
    'listen.port: expected integer, got string "4500"',
  ]);
});

t.test('reports every problem at once', async (t) => {
  const p = problems({ listen: { host: 'nope', port: 70000 }, mode: 'fast', groups: [], extra: 1 });
  t.same(p.sort(), [
    'extra: expected no such key, got 1',
    'groups: expected at least 1 items, got 0',
    'listen.host: expected ipv4, got "nope"',
    'listen.port: expected a number <= 65535, got 70000',
    'mode: expected one of "secure", "compat", got "fast"',
  ]);
});

t.test('reports a missing key', async (t) => {
  t.same(problems({ groups: ['a'] }), ['listen: expected a value, got nothing']);
});

t.test('load() reports unreadable files and bad JSON clearly', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gsra-conf-'));
  t.throws(() => v.load(join(dir, 'missing.json')), /\(file\): expected a readable file, got ENOENT/);
  writeFileSync(join(dir, 'bad.json'), '{ nope');
  t.throws(() => v.load(join(dir, 'bad.json')), /expected JSON/);
  writeFileSync(
    join(dir, 'ok.json'),
    JSON.stringify({ listen: { host: '10.0.0.1', port: 1 }, groups: ['x'] }),
  );
  t.equal(v.load(join(dir, 'ok.json')).listen.port, 1);
});
