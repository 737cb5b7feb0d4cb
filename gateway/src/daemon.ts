// gsra-gateway: the GSRA router daemon. It serves the control protocol on GGR, decides access from
// the LDAP group policy, reserves ports, hands reservations (with their flow keys) to the packet
// engine, and reports every decision as one structured log line.
import { readFileSync } from 'node:fs';
import { protocol, type Logger } from '@gsra/common';
import { DirectoryClient } from '@gsra/ldap';
import { DropSummary } from '@gsra/native';
import { FlowAudit } from './audit.ts';
import type { GatewayConfig } from './config.ts';
import { ControlAdmission } from './control-admission.ts';
import { ControlLoad } from './control-load.ts';
import { ControlSockets } from './control-sockets.ts';
import type { DataPlane, DataPlaneEvent } from './data-plane.ts';
import { DnsResponder } from './dns-responder.ts';
import { FtpAlg } from './ftp-alg.ts';
import { GatewayMetrics } from './metrics.ts';
import { OpsServer } from './ops-server.ts';
import { DirectoryPolicy, type RefreshResult } from './policy.ts';
import { PortPool } from './ports.ts';
import { FileSecretStore, loadResetKey, type SecretStore } from './reset-key.ts';
import {
  RecentRefusals,
  SessionBook,
  engineEntry,
  packetDrops,
  reservationEntry,
  type GatewayStatus,
} from './status.ts';
import { statusPageFiles } from './status-page.ts';
import { SyslogSink } from './syslog.ts';

const { GatewayControl, messageTypeName, peekPrefix, protoName } = protocol;
type Endpoint = protocol.Endpoint;
type GatewayEvent = protocol.GatewayEvent;
type GatewayPolicy = protocol.GatewayPolicy;
type GatewayResult = protocol.GatewayResult;

export interface GatewayDeps {
  logger: Logger;
  /** The packet engine; without one the gateway negotiates but forwards nothing (tests). */
  dataPlane?: DataPlane;
  /** Override the directory client (tests). */
  directory?: DirectoryClient;
  /** Address the control and DNS sockets bind to (default: config.publicAddress). */
  bindAddress?: string;
  /** Where the reset key is kept (default: files in config.stateDir). */
  secrets?: SecretStore;
  now?: () => number;
}

export class GatewayDaemon {
  readonly metrics = new GatewayMetrics();
  readonly policy: DirectoryPolicy;
  readonly pool: PortPool;
  readonly control: protocol.GatewayControl;
  private readonly log: Logger;
  private readonly now: () => number;
  private sockets: ControlSockets | undefined;
  readonly admission: ControlAdmission;
  private readonly load: ControlLoad;
  private dns: DnsResponder | undefined;
  private ops: OpsServer | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** When the armed timer fires (Infinity: none armed). */
  private timerAt = Infinity;
  private startedAt = 0;
  private readonly ftp: FtpAlg;
  private directory: DirectoryClient;
  /** Every refused packet ends up in a summary line, at most one per 5 s (native/lib/drops.ts). */
  private readonly drops: DropSummary | undefined;
  /** One audit record per flow when it ends (audit.ts); to syslog too when configured. */
  readonly audit: FlowAudit;
  private syslog: SyslogSink | undefined;
  private readonly sessionBook = new SessionBook();
  private readonly refusals = new RecentRefusals();
  opsAddress: { address: string; port: number } | undefined;
  controlPort = 0;

  constructor(
    readonly config: GatewayConfig,
    private deps: GatewayDeps,
  ) {
    this.log = deps.logger;
    this.now = deps.now ?? Date.now;
    this.directory =
      deps.directory ??
      new DirectoryClient({
        url: config.ldap.url,
        caFile: config.ldap.caFile,
        startTls: config.ldap.startTls,
        baseDn: config.ldap.baseDn,
        ...(config.ldap.groupsDn ? { groupsDn: config.ldap.groupsDn } : {}),
        flavor: config.ldap.flavor,
        connectTimeoutMs: config.ldap.connectTimeoutMs,
        timeoutMs: config.ldap.timeoutMs,
        logger: deps.logger,
      });
    this.policy = new DirectoryPolicy({
      client: this.directory,
      bindDn: config.ldap.bindDn,
      password: readFileSync(config.ldap.passwordFile, 'utf8').trim(),
      refreshMs: config.ldap.refreshSec * 1000,
      ...(config.ldap.upnSuffix ? { upnSuffix: config.ldap.upnSuffix } : {}),
      liveFlows: config.offboarding.liveFlows,
      logger: deps.logger,
      now: this.now,
    });
    this.pool = new PortPool(config.ports.first, config.ports.last, {
      perUser: config.ports.perUser,
      perSource: config.ports.perSource,
    });
    this.admission = new ControlAdmission(
      {
        hello: { rate: config.control.perSourceRate, burst: 2 * config.control.perSourceRate },
        auth: { rate: config.control.perSourceRate, burst: 2 * config.control.perSourceRate },
        unproven: { rate: config.control.unprovenRate, burst: 2 * config.control.unprovenRate },
      },
      this.now(),
    );
    this.load = new ControlLoad(this.log, this.metrics);
    this.control = new GatewayControl({
      policy: this.policyAdapter(),
      // kept across restarts: a restarted gateway can still prove unknown-session (§6.6)
      resetKey: loadResetKey(deps.secrets ?? new FileSecretStore(config.stateDir)),
      controlPort: config.control.port,
      reservationLifetimeSec: config.ports.reservationTtlSec,
      keepaliveIntervalSec: config.control.keepaliveSec,
      mappingLifetimeSec: config.control.mappingLifetimeSec,
      sessionIdleSec: config.control.sessionIdleSec,
    });
    deps.dataPlane?.onEvent((e) => this.onDataPlane(e));
    const dp = deps.dataPlane;
    if (dp?.drops) {
      this.metrics.dropSource = () => dp.drops!();
      this.drops = new DropSummary(
        () => dp.drops!(),
        (l) =>
          this.log.warn('packets dropped', {
            dropped: l.dropped,
            total: l.total,
            periodSec: l.periodMs / 1000,
          }),
        5000,
      );
    }
    this.audit = new FlowAudit({
      logger: this.log,
      registry: this.metrics.registry,
      also: (json) => this.syslog?.send(json),
    });
    this.ftp = new FtpAlg({
      flow: (t) => this.control.reservations.get(6, t),
      alias: (ctrlT, aliasPort) => {
        const r = this.control.ftpAlias({ ctrlT, aliasPort }, this.now());
        this.apply(r); // FTP_ALIAS leaves before the reply that announces the port
        return r.record !== undefined;
      },
      log: this.log,
      now: this.now,
    });
    deps.dataPlane?.setAlg((seg) =>
      seg.direction === 'to-en'
        ? this.ftp.fromServer(seg.t, seg.seq, seg.payload)
        : this.ftp.fromClient(seg.t, seg.seq, seg.payload),
    );
  }

  /** The synchronous view GatewayControl asks: user questions from the policy snapshot, ports from the pool. */
  private policyAdapter(): GatewayPolicy {
    return {
      lookupUser: (id) => this.policy.lookupUser(id),
      mayReach: (user, group, inName) => this.policy.mayReach(user, group, inName),
      reservePorts: (req) => {
        const r = this.pool.take({ user: req.user, source: req.en.addr }, req.count);
        if (typeof r !== 'string') return { ports: r };
        return r === 'no-ports'
          ? { reason: 'no-ports' }
          : { reason: 'rate-limited', text: `${r.replace('-', ' ')} reached` };
      },
      releasePorts: (r) => {
        for (const p of r.ports) this.pool.give({ user: r.user, source: r.en.addr }, p.t);
      },
    };
  }

  async start(): Promise<void> {
    this.startedAt = this.now();
    // The data plane first: it reserves the flow port range (ip_local_reserved_ports) and queues
    // it. A connection opened before that (the directory's) could hold an ephemeral port in the
    // range, and the queue rules would take its replies: every first user look-up would hang
    // until the LDAP timeout. Until the policy is loaded nothing is reserved: closed.
    this.deps.dataPlane?.start();
    this.drops?.start();
    try {
      await this.policy.refresh();
    } catch (e) {
      // Keep running: every request is refused until the directory answers (fail closed).
      this.log.error('directory unavailable at start', { reason: (e as Error).message });
    }
    this.policy.start((r) => this.onPolicyRefresh(r));
    if (this.config.audit.syslog) this.syslog = new SyslogSink(this.config.audit.syslog, this.log);
    const bind = this.deps.bindAddress ?? this.config.publicAddress;
    this.sockets = new ControlSockets({ log: this.log, onMessage: (m, from) => this.handle(m, from) });
    this.controlPort = await this.sockets.bind(this.config.control.port, bind);
    if (this.config.dns.enabled) {
      this.dns = new DnsResponder({
        zone: this.config.dns.zone,
        publicAddress: this.config.publicAddress,
        ttl: this.config.dns.ttl,
        view: this.policy,
        logger: this.log,
        onAnswer: (rcode) => this.metrics.dnsAnswers.inc({ rcode: String(rcode) }),
      });
      await this.dns.listen(bind, this.config.dns.port);
    }
    this.ops = new OpsServer({
      registry: this.metrics.registry,
      health: () => this.health(),
      status: () => this.status(),
      ...(this.config.ops.statusPage ? { page: statusPageFiles() } : {}),
    });
    this.opsAddress = await this.ops.listen(this.config.ops.listen, this.config.ops.port);
    this.schedule();
    this.log.info('gateway started', {
      control: `${bind}:${this.controlPort}`,
      ops: `${this.opsAddress.address}:${this.opsAddress.port}`,
      ports: `${this.config.ports.first}-${this.config.ports.last}`,
      dataPlane: this.deps.dataPlane ? 'engine' : 'none',
      node: process.version,
    });
  }

  /**
   * One control datagram. HELLO and AUTH over their source's limit are dropped unanswered; every
   * directory question is answered from the policy snapshot: no I/O.
   */
  handle(data: Buffer, from: Endpoint): void {
    const now = this.now();
    if (this.admission.admit(data, from.addr, now) === 'rate-limited') {
      this.load.count(data[3] === 0x01 ? 'hello-rate-limited' : 'auth-rate-limited', from.addr);
      return;
    }
    this.metrics.controlMessages.inc({ type: controlType(data) });
    this.apply(this.control.handleDatagram(data, from, now));
  }

  private apply(r: GatewayResult): void {
    const now = this.now();
    // source-proven first: an AUTH_OK in the same result goes to an address now proven
    for (const e of r.events) if (e.kind === 'source-proven') this.admission.proven.add(e.addr, now);
    for (const o of r.send) {
      const path = this.admission.path(o, now, (a) => this.control.isPeer(a));
      if (path === 'shed') this.load.count('answer-shed', o.to.addr);
      else if (!this.sockets?.send(o.data, o.to, path)) this.load.count('answer-congested', o.to.addr);
    }
    for (const e of r.events) this.onControlEvent(e);
    this.updateGauges();
    this.schedule();
  }

  private onControlEvent(e: GatewayEvent): void {
    this.sessionBook.onEvent(e, this.now());
    this.refusals.onEvent(e, this.now());
    switch (e.kind) {
      case 'decision':
        this.metrics.decisions.inc({ decision: e.decision, reason: e.reason });
        this.log.info(e.decision === 'allow' ? 'access allowed' : 'access refused', {
          step: e.step,
          user: e.user,
          group: e.group,
          in: e.in,
          en: e.en,
          decision: e.decision,
          reason: e.reason,
        });
        break;
      case 'session-up':
        this.log.info('session up', {
          user: e.user,
          group: e.group,
          en: e.en,
          session: e.sessionId,
          gkVersion: e.gkVersion,
        });
        break;
      case 'session-down':
        this.log.info('session down', { user: e.user, session: e.sessionId, reason: e.reason });
        break;
      case 'reservation':
        this.deps.dataPlane?.add(e.record);
        break;
      case 'reservation-ended': {
        const r = e.record;
        // The audit record takes the engine's counts before the data plane forgets the flow.
        this.audit.rowEnded(r, this.deps.dataPlane?.flowCounts?.(r.id), e.cause, this.now());
        // The port is already back in the pool: GatewayControl gave it back through releasePorts().
        if (e.proto === 6) this.ftp.end(e.t);
        this.deps.dataPlane?.remove(r);
        break;
      }
      case 'binding':
        this.log.info('flow bound', {
          session: e.sessionId,
          proto: protoName(e.proto),
          t: e.t,
          ghr: `${e.ghr}:${e.m}`,
          via: e.via,
        });
        break;
      case 'mapping':
        this.audit.mapped(e.record, this.now());
        this.log.info('flow mapped', {
          user: e.record.user,
          group: e.record.group,
          in: e.record.inName,
          t: e.record.t,
          d: e.record.mapping?.d,
        });
        break;
      case 'peer-moved':
        this.log.info('agent address changed', { session: e.sessionId, from: e.from, to: e.to });
        break;
      case 'agent-error':
        this.log.warn('agent reported an error', { session: e.sessionId, reason: e.reason, text: e.text });
        break;
      case 'undelivered':
        this.log.warn('message to agent not acknowledged', { session: e.sessionId, type: e.type });
        break;
      case 'dropped':
        this.metrics.controlRejected.inc({ reason: e.reason });
        this.log.debug('control datagram dropped', { from: e.from, reason: e.reason, detail: e.detail });
        break;
    }
  }

  private onDataPlane(e: DataPlaneEvent): void {
    if (e.kind === 'event-failed') {
      this.metrics.engine.inc({ kind: 'event-failed' });
      this.log.error('an engine event could not be handled (the others of its batch were)', {
        event: e.event,
        reason: e.reason,
      });
      return;
    }
    // An event about a reservation that has ended (the engine's event crossed its removal), or
    // that a newer reservation of the same port replaced, is not about today's row: ignore it.
    if (e.kind !== 'verify-failed') {
      const row = this.control.reservations.get(e.proto, e.t);
      if (e.kind === 'flow-expired' ? row?.id !== e.id : row !== undefined && row.id !== e.id) return;
    }
    this.metrics.engine.inc({ kind: e.kind });
    const now = this.now();
    switch (e.kind) {
      case 'bound':
        this.apply(this.control.onInbandBinding({ proto: e.proto, t: e.t, ghr: e.ghr, m: e.m, d: e.d }, now));
        break;
      case 'verify-failed':
        this.log.warn('packets failed verification', {
          proto: protoName(e.proto),
          t: e.t,
          from: e.from,
          count: e.count,
        });
        break;
      case 'flow-expired': {
        if (e.proto === 6) this.ftp.end(e.t);
        this.log.info('flow expired', { proto: protoName(e.proto), t: e.t, reason: e.reason });
        const row = this.control.reservations.get(e.proto, e.t);
        if (row?.mapping) this.audit.engineEnded(row, e.counts, e.reason, now);
        break;
      }
    }
  }

  /** After a policy refresh: every reservation and flow is decided again; refused ones end now. */
  private onPolicyRefresh(r: RefreshResult): void {
    this.metrics.policyAge.set(0);
    if (r.changed.length === 0) return;
    this.apply(this.control.recheckAll(this.now(), (rec, reason) => this.policy.keepLiveFlow(rec, reason)));
  }

  /**
   * Arms the one timer for the control's next deadline (O(1): GatewayControl keeps its deadlines
   * in order). A timer already armed for that time or earlier is kept: one that fires early finds
   * nothing due and re-arms, which costs less than re-arming after every datagram.
   */
  private schedule(): void {
    const next = this.control.nextDeadline();
    if (next === null || next >= this.timerAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = next;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.timerAt = Infinity;
        this.apply(this.control.poll(this.now()));
      },
      Math.max(0, next - this.now()),
    );
    this.timer.unref();
  }

  /** The gauges, from counters GatewayControl keeps as things change (no walk of the tables). */
  private updateGauges(): void {
    const s = this.control.stats();
    this.metrics.sessions.set(s.sessions);
    this.metrics.reservations.set(s.reservations);
    this.metrics.flows.set(this.control.reservations.mapped);
    this.metrics.policyAge.set(Number.isFinite(this.policy.age) ? this.policy.age / 1000 : -1);
    this.metrics.unknownUserIds.set(this.policy.unknownIds.size);
  }

  health(): string[] {
    const problems: string[] = [];
    if (!this.policy.usable) problems.push('directory: no usable policy snapshot (refusing every request)');
    if (!this.sockets?.listening) problems.push('control socket not listening');
    return problems;
  }

  /** What GET /status answers (status.ts): never a key or a secret. */
  status(): GatewayStatus {
    this.updateGauges();
    const now = this.now();
    const rows = [...this.control.reservations.values()];
    const problems = this.health();
    const engine = this.deps.dataPlane?.stats() ?? null;
    return {
      generatedAt: new Date(now).toISOString(),
      uptimeSec: Math.round((now - this.startedAt) / 1000),
      node: process.version,
      health: { ok: problems.length === 0, problems },
      policy: {
        ageSec: Number.isFinite(this.policy.age) ? Math.round(this.policy.age / 1000) : null,
        usable: this.policy.usable,
        refreshSec: this.config.ldap.refreshSec,
      },
      control: { ...this.control.stats(), ...this.admission.stats(), queued: this.sockets?.queued() ?? null },
      ports: { range: `${this.pool.first}-${this.pool.last}`, inUse: this.pool.inUse },
      sessions: this.sessionBook.list(rows),
      flows: this.audit.live(rows, (r) => this.deps.dataPlane?.flowCounts?.(r.id), now),
      reservations: rows.map((r) => reservationEntry(r, now)),
      refusals: this.refusals.list(),
      drops: { packets: packetDrops(this.deps.dataPlane?.drops?.()), control: this.refusals.controlDrops() },
      engine: engineEntry(engine, 'nfqueue'),
    };
  }

  /** SIGHUP: re-read the directory now. Flows are not touched unless the policy refuses them. */
  async reload(): Promise<void> {
    this.log.info('reload requested');
    try {
      this.onPolicyRefresh(await this.policy.refresh());
    } catch (e) {
      this.log.error('reload failed: directory unavailable', { reason: (e as Error).message });
    }
  }

  async stop(): Promise<void> {
    this.policy.stop();
    if (this.timer) clearTimeout(this.timer);
    this.sockets?.close();
    this.sockets = undefined;
    this.load.stop();
    this.dns?.close();
    await this.ops?.close();
    this.drops?.stop();
    // Flows still running end with the gateway: each gets its audit record.
    this.audit.stop(
      this.control.reservations.values(),
      (r) => this.deps.dataPlane?.flowCounts?.(r.id),
      this.now(),
    );
    await this.syslog?.close();
    await this.deps.dataPlane?.close();
    await this.directory.close();
    this.log.info('gateway stopped');
  }
}

/** A control datagram's message type, for the message counter (a bounded set of labels). */
function controlType(data: Buffer): string {
  try {
    return messageTypeName(peekPrefix(data).type) ?? 'unknown';
  } catch {
    return 'not-gsra';
  }
}
