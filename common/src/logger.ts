// Logger factory shared by every GSRA daemon: winston, one JSON object per line, with a
// component name on every line. Operators grep these, so each event is one line and carries
// its context (user, group, IN, reason) as fields, never interpolated into the message.
import winston from 'winston';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
export const LOG_LEVELS: readonly LogLevel[] = ['error', 'warn', 'info', 'debug'];

export interface LoggerOptions {
  /** Minimum level written; default from GSRA_LOG_LEVEL, else 'info'. */
  level?: LogLevel;
  /** Where lines go; default stderr (so stdout stays free for CLI output). */
  stream?: NodeJS.WritableStream;
  /** Extra fields stamped on every line (e.g. { node: 'gw1' }). */
  fields?: Record<string, unknown>;
}

/** Field names whose values must never reach a log line. */
const SECRET_FIELDS = /^(password|passwd|secret|key|groupKey|sessionKey|token|psk|privateKey)$/i;

/** Replace secret-looking fields by a marker, recursively, without touching the caller's object. */
export function redact(value: unknown, depth = 0): unknown {
  if (depth > 6 || value === null || typeof value !== 'object') return value;
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return `<${value.length} bytes>`;
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    out[k] = SECRET_FIELDS.test(k) ? '[redacted]' : redact(v, depth + 1);
  }
  return out;
}

const redactFormat = winston.format((info) => {
  for (const k of Object.keys(info)) {
    if (SECRET_FIELDS.test(k)) info[k] = '[redacted]';
    else if (typeof info[k] === 'object' && info[k] !== null) info[k] = redact(info[k]);
  }
  return info;
});

function levelFromEnv(): LogLevel {
  const v = process.env.GSRA_LOG_LEVEL;
  return v && (LOG_LEVELS as readonly string[]).includes(v) ? (v as LogLevel) : 'info';
}

export type Logger = winston.Logger;

/** A logger for one component ('gateway', 'agent', 'ldap', 'lab', ...). */
export function createLogger(component: string, opts: LoggerOptions = {}): Logger {
  return winston.createLogger({
    level: opts.level ?? levelFromEnv(),
    levels: { error: 0, warn: 1, info: 2, debug: 3 },
    defaultMeta: { component, ...opts.fields },
    format: winston.format.combine(
      winston.format.errors({ stack: false }),
      redactFormat(),
      winston.format.timestamp(),
      winston.format.json(),
    ),
    transports: [
      new winston.transports.Stream({
        stream: opts.stream ?? process.stderr,
      }),
    ],
  });
}
