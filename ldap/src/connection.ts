// One connection to an LDAP directory, as every GSRA component needs it (the gateway's service
// account, the agent's user login, gsra-admin). Built on ldapts (see docs/ldap.md for why). Rules:
//  - TLS always: ldaps:// or StartTLS, the server certificate verified against the configured
//    CA; there is no switch to turn verification off.
//  - connect and operation timeouts are always set (ldapts waits forever without them).
//  - a lost connection is re-established (and re-bound) once, transparently, per operation;
//    a connection that was silently re-opened without a bind is never used.
//  - passwords never reach a log line or an error message.
// What the entries mean to GSRA is client.ts's business (DirectoryClient extends this class).
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { Client, type Entry, type SearchOptions } from 'ldapts';
import { createLogger, type Logger } from '@gsra/common';
import {
  DirectoryError,
  DirectoryUnreachableError,
  InvalidCredentialsError,
  NotBoundError,
  translateError,
} from './errors.ts';

export interface ConnectionOptions {
  /** ldaps://host:636 (implicit TLS) or ldap://host:389 with startTls: true. */
  url: string;
  /** PEM text of the CA(s) that issued the server certificate. One of caPem / caFile is required. */
  caPem?: string | string[];
  /** File holding the CA PEM. */
  caFile?: string;
  /** Use StartTLS on an ldap:// URL (required for ldap:// URLs: plain text is refused). */
  startTls?: boolean;
  /** TCP + TLS connect timeout (default 5000 ms). */
  connectTimeoutMs?: number;
  /** Per-operation timeout (default 10000 ms). */
  timeoutMs?: number;
  /** Paged-search page size (default 200). */
  pageSize?: number;
  logger?: Logger;
}

function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      t = setTimeout(() => reject(onTimeout()), ms);
    }),
  ]).finally(() => clearTimeout(t));
}

export class LdapConnection {
  readonly url: string;
  readonly connectTimeoutMs: number;
  readonly timeoutMs: number;
  protected readonly log: Logger;
  protected readonly pageSize: number;
  /** The DN this connection is logged in as, once known (DirectoryClient resolves it on AD). */
  protected boundDn: string | undefined;
  private readonly ca: string[];
  private readonly startTls: boolean;
  private readonly host: string;
  private ldap: Client | undefined;
  private creds: { dn: string; password: string; who: string } | undefined;
  private readonly dead = new WeakSet<Client>();
  private opening: Promise<Client> | undefined;

  constructor(opts: ConnectionOptions) {
    this.url = opts.url.replace(/\/+$/, '');
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 5000;
    this.timeoutMs = opts.timeoutMs ?? 10000;
    this.pageSize = opts.pageSize ?? 200;
    this.log = opts.logger ?? createLogger('ldap');
    const m = /^(ldaps?):\/\/(\[[^\]]+\]|[^:/]+)(?::(\d+))?\/?$/i.exec(this.url);
    if (!m)
      throw new DirectoryError(
        'invalid-argument',
        `invalid LDAP URL "${opts.url}" (expected ldaps://host[:port] or ldap://host[:port])`,
      );
    const scheme = (m[1] as string).toLowerCase();
    this.host = (m[2] as string).replace(/^\[|\]$/g, '');
    this.startTls = opts.startTls ?? false;
    if (scheme === 'ldap' && !this.startTls) {
      throw new DirectoryError(
        'invalid-argument',
        `refusing plain-text LDAP to ${this.url}: use ldaps:// or set startTls (gsra-admin: --starttls)`,
      );
    }
    if (scheme === 'ldaps' && this.startTls) {
      throw new DirectoryError('invalid-argument', `StartTLS needs an ldap:// URL, got ${this.url}`);
    }
    const ca = opts.caPem ?? (opts.caFile ? readCa(opts.caFile) : undefined);
    if (!ca || (Array.isArray(ca) && ca.length === 0)) {
      throw new DirectoryError(
        'invalid-argument',
        `no CA configured for ${this.url}: give the CA certificate that issued the LDAP server's certificate (caPem or caFile)`,
      );
    }
    this.ca = Array.isArray(ca) ? ca : [ca];
  }

  /** DN of the account this client is logged in as, if any. */
  get bindDn(): string | undefined {
    return this.boundDn;
  }

  private ctx(what: string, who?: string) {
    return { url: this.url, what, who, connectTimeoutMs: this.connectTimeoutMs, timeoutMs: this.timeoutMs };
  }

  private newClient(): Client {
    const base = { url: this.url, connectTimeout: this.connectTimeoutMs, timeout: this.timeoutMs };
    // Passing tlsOptions switches ldapts to implicit TLS, so only for ldaps:// (StartTLS gets them later).
    return this.startTls
      ? new Client(base)
      : new Client({ ...base, tlsOptions: { ca: this.ca, host: this.host, minVersion: 'TLSv1.2' } });
  }

  /** Open a connection (with StartTLS when configured) and bind with the remembered credentials. */
  private async open(): Promise<Client> {
    const c = this.newClient();
    try {
      if (this.startTls) {
        await withTimeout(
          c.startTLS({
            ca: this.ca,
            host: this.host,
            ...(isIP(this.host) ? {} : { servername: this.host }),
            minVersion: 'TLSv1.2',
          }),
          this.connectTimeoutMs + this.timeoutMs,
          () =>
            new DirectoryUnreachableError(
              this.url,
              `StartTLS timed out after ${this.connectTimeoutMs + this.timeoutMs} ms`,
            ),
        );
      }
      if (this.startTls) {
        // ldapts watches only the plain socket for 'close'; after StartTLS that socket is wrapped,
        // so a server-side close would go unnoticed. Watch the TLS socket ourselves.
        const s = (c as unknown as { socket?: NodeJS.EventEmitter }).socket;
        s?.once('close', () => this.dead.add(c));
      }
      if (this.creds) await c.bind(this.creds.dn, this.creds.password);
      return c;
    } catch (err) {
      await c.unbind().catch(() => undefined);
      throw translateError(
        err,
        this.ctx(this.creds ? `login of ${this.creds.who}` : 'connect', this.creds?.who),
      );
    }
  }

  private drop(): void {
    const c = this.ldap;
    this.ldap = undefined;
    if (c) void c.unbind().catch(() => undefined);
  }

  /** The current session, or a new one (one at a time, however many operations wait for it). */
  private async session(): Promise<{ c: Client; reused: boolean }> {
    const cur = this.ldap;
    if (cur && cur.isConnected && !this.dead.has(cur) && (!this.creds || cur.isBound)) {
      return { c: cur, reused: true };
    }
    if (!this.opening) {
      if (cur) this.log.info('LDAP connection lost; reconnecting', { url: this.url });
      this.drop();
      const creds = this.creds;
      this.opening = this.open()
        .then((c) => {
          if (this.creds !== creds) {
            // Logged out or re-bound meanwhile: this session belongs to nobody.
            void c.unbind().catch(() => undefined);
            throw new NotBoundError(this.url);
          }
          this.ldap = c;
          return c;
        })
        .finally(() => {
          this.opening = undefined;
        });
    }
    return { c: await this.opening, reused: false };
  }

  /** Run an LDAP operation, reconnecting (and re-binding) once if the connection was lost. */
  protected async op<T>(what: string, fn: (c: Client) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const { c, reused } = await this.session();
      try {
        return await fn(c);
      } catch (err) {
        const e = translateError(err, this.ctx(what));
        if (e instanceof DirectoryUnreachableError && this.ldap === c) this.drop();
        if (e instanceof DirectoryUnreachableError && reused && attempt === 0) {
          this.log.info('LDAP connection failed during an operation; retrying once on a new connection', {
            url: this.url,
            what,
          });
          continue;
        }
        throw e;
      }
    }
  }

  protected async doBind(dn: string, password: string, who: string): Promise<void> {
    if (!password) {
      // An empty password is an "unauthenticated bind" that some servers accept as anonymous.
      throw new InvalidCredentialsError(this.url, who);
    }
    this.drop();
    this.creds = { dn, password, who };
    this.boundDn = undefined;
    try {
      this.ldap = await this.open();
    } catch (err) {
      this.creds = undefined;
      throw err;
    }
    this.boundDn = dn;
  }

  protected requireBound(): void {
    if (!this.creds) throw new NotBoundError(this.url);
  }

  protected async searchAll(base: string, opts: SearchOptions, what: string): Promise<Entry[]> {
    this.requireBound();
    return this.op(what, async (c) => {
      const r = await c.search(base, { paged: { pageSize: this.pageSize }, ...opts });
      // AD returns continuation references (Configuration, DomainDnsZones, ...): ignored.
      return r.searchEntries;
    });
  }

  /** Close the connection and forget the credentials. */
  async close(): Promise<void> {
    const c = this.ldap;
    this.ldap = undefined;
    this.creds = undefined;
    this.boundDn = undefined;
    if (c) await c.unbind().catch(() => undefined);
  }
}

function readCa(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new DirectoryError(
      'invalid-argument',
      `cannot read the CA file ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
    );
  }
}
