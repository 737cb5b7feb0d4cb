// Config loader shared by every daemon: JSON file -> validated, typed object. Errors are
// reported the way an operator reads them: "path: expected X, got Y", one per problem.
import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject, type JSONSchemaType, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';

// ajv-formats is CommonJS; its default export arrives wrapped under ESM.
type AddFormats = (ajv: Ajv) => Ajv;
const addFormats: AddFormats =
  (addFormatsModule as unknown as { default?: AddFormats }).default ??
  (addFormatsModule as unknown as AddFormats);

export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`invalid config ${source}:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number' && Number.isInteger(v)) return 'integer';
  return typeof v;
}

function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 40 ? s.slice(0, 37) + '...' : s;
}

function valueAt(root: unknown, pointer: string): unknown {
  let cur: unknown = root;
  for (const raw of pointer.split('/').slice(1)) {
    const k = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[k];
  }
  return cur;
}

/** Turn one ajv error into "path: expected X, got Y". */
export function describeError(e: ErrorObject, data: unknown): string {
  const path = e.instancePath === '' ? '(root)' : e.instancePath.slice(1).replace(/\//g, '.');
  const got = valueAt(data, e.instancePath);
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'required':
      return `${path === '(root)' ? '' : path + '.'}${String(p.missingProperty)}: expected a value, got nothing`;
    case 'additionalProperties':
      return `${path === '(root)' ? '' : path + '.'}${String(p.additionalProperty)}: expected no such key, got ${show(
        (got as Record<string, unknown>)?.[String(p.additionalProperty)],
      )}`;
    case 'type':
      return `${path}: expected ${String(p.type)}, got ${typeOf(got)} ${show(got)}`;
    case 'enum':
      return `${path}: expected one of ${(p.allowedValues as unknown[]).map(show).join(', ')}, got ${show(got)}`;
    case 'const':
      return `${path}: expected ${show(p.allowedValue)}, got ${show(got)}`;
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return `${path}: expected a number ${String(p.comparison)} ${String(p.limit)}, got ${show(got)}`;
    case 'minLength':
    case 'maxLength':
      return `${path}: expected a string ${e.keyword === 'minLength' ? 'of at least' : 'of at most'} ${String(
        p.limit,
      )} characters, got ${show(got)}`;
    case 'minItems':
    case 'maxItems':
      return `${path}: expected ${e.keyword === 'minItems' ? 'at least' : 'at most'} ${String(p.limit)} items, got ${
        Array.isArray(got) ? got.length : typeOf(got)
      }`;
    case 'pattern':
      return `${path}: expected a string matching ${String(p.pattern)}, got ${show(got)}`;
    case 'format':
      return `${path}: expected ${String(p.format)}, got ${show(got)}`;
    default:
      return `${path}: expected ${e.message ?? e.keyword}, got ${show(got)}`;
  }
}

export interface Validator<T> {
  /** Validate already-parsed data; throws ConfigError listing every problem. */
  check(data: unknown, source?: string): T;
  /** Read a JSON file and validate it. */
  load(file: string): T;
}

/** Compile a JSON Schema once; defaults from the schema are filled in. */
export function compileConfig<T>(schema: JSONSchemaType<T> | Record<string, unknown>): Validator<T> {
  const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true });
  addFormats(ajv);
  const validate = ajv.compile(schema) as ValidateFunction<T>;
  const check = (data: unknown, source = 'config'): T => {
    if (!validate(data)) {
      throw new ConfigError(
        source,
        (validate.errors ?? []).map((e) => describeError(e, data)),
      );
    }
    return data;
  };
  return {
    check,
    load(file: string): T {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        throw new ConfigError(file, [
          `(file): expected a readable file, got ${(err as NodeJS.ErrnoException).code}`,
        ]);
      }
      let data: unknown;
      try {
        data = JSON.parse(text);
      } catch (err) {
        throw new ConfigError(file, [`(file): expected JSON, got ${(err as Error).message}`]);
      }
      return check(data, file);
    },
  };
}

/** Schema pieces every daemon's config uses, so they read and default the same everywhere. */
export const schemaParts = {
  ipv4: { type: 'string', format: 'ipv4' },
  port: { type: 'integer', minimum: 1, maximum: 65535 },
  /** `log: { level }`, default info. */
  log: {
    type: 'object',
    additionalProperties: false,
    default: {},
    properties: { level: { type: 'string', enum: ['error', 'warn', 'info', 'debug'], default: 'info' } },
  },
  /** `ops: { listen, port }`: the local operations endpoint, loopback by default. */
  ops: (defaultPort: number) => ({
    type: 'object',
    additionalProperties: false,
    default: {},
    properties: {
      listen: { type: 'string', format: 'ipv4', default: '127.0.0.1' },
      port: { type: 'integer', minimum: 1, maximum: 65535, default: defaultPort },
    },
  }),
  /** `engine: { queues: [a, b], queuesPerSide, spinUs, gso }`: the first NFQUEUE number of each side of the packet engine, how many queues (threads) each side has, and its data-path options (docs/performance.md). */
  engine: {
    type: 'object',
    additionalProperties: false,
    default: {},
    properties: {
      queues: {
        type: 'array',
        items: { type: 'integer', minimum: 0, maximum: 65535 },
        minItems: 2,
        maxItems: 2,
        default: [0, 8],
      },
      /** Queues (one thread each) per side, flows spread by port and pinned (native/lib/queues.ts); 0, the default: one per CPU, at most 4. */
      queuesPerSide: { type: 'integer', minimum: 0, maximum: 8, default: 0 },
      /** µs a queue thread polls for more packets after a batch before it sleeps (0, the default: sleep at once). */
      spinUs: { type: 'integer', minimum: 0, maximum: 1000, default: 0 },
      /** Take GSO super-packets on the sending side and segment them in user space (default off: docs/performance.md). */
      gso: { type: 'boolean', default: false },
      /** A second thread per queue sends the verdicts of bulk batches, so the reader is not held up by the forwarding (default on: docs/performance.md). */
      verdictThread: { type: 'boolean', default: true },
    },
  },
} as const;

/** A daemon's `engine` section as schemaParts.engine checks and defaults it (the meaning of each field is there). */
export interface EngineConfig {
  /** The first NFQUEUE number of each side; which side is which is the daemon's (its config type says). */
  queues: [number, number];
  queuesPerSide: number;
  spinUs: number;
  gso: boolean;
  verdictThread: boolean;
}
