// gsra-gateway: the GSRA router daemon. It serves the control protocol on GGR, decides access from
// the LDAP group policy, reserves ports, hands reservations (with their flow keys) to the packet
// engine, and reports every decision as one structured log line.
import { readFileSync } from 'node:fs';
import { protocol, type Logger, type StateStore } from '@gsra/common';
import { DirectoryClient } from '@gsra/ldap';
import { DropSummary, warnDropLines } from '@gsra/native';
import { FlowAudit } from './audit.ts';
import type { GatewayConfig } from './config.ts';
import { ControlAdmission } from './control-admission.ts';
import { ControlLoad } from './control-load.ts';
import { ControlSockets } from './control-sockets.ts';
import { DaemonEvents, controlType } from './daemon-events.ts';
import type { DataPlane } from './data-plane.ts';
import { DnsResponder } from './dns-responder.ts';
import { FtpAlg } from './ftp-alg.ts';
import { GatewayMetrics } from './metrics.ts';
import { OpsServer } from './ops-server.ts';
import { DirectoryPolicy, type RefreshResult } from './policy.ts';
import { PortPool, type PortRefusal } from './ports.ts';
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
import { GatewayState, openGatewayStore } from './state.ts';

const { GatewayControl } = protocol;
type Endpoint = protocol.Endpoint;
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
  /**
   * Where sessions and reservations survive a restart (docs/reliability.md). Default: the
   * embedded journal under config.stateDir; null: nothing is kept (a restart logs everyone out).
   */
  store?: StateStore | null;
  now?: () => number;
}

/** How often the engine's flow state is written to the store (when the engine exports it). */
const FLOW_STATE_EVERY_MS = 500;

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
  private state: GatewayState | undefined;
  /** Set while the policy is past its staleness limit and the unused reservations were released. */
  private failedClosed = false;
  /** Restored rows are decided again at the first policy the directory gives. */
  private recheckRestored = false;
  private staleTimer: NodeJS.Timeout | undefined;
  private flowStateTimer: NodeJS.Timeout | undefined;
  /** The alias the ALG asked for during its current call (to wait for its delivery). */
  private lastAlias: { sessionId: string; seq: bigint } | undefined;
  /** Control and engine events: their log lines, counters and effects (daemon-events.ts). */
  private readonly events: DaemonEvents;
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
      maxReservationsPerSession: config.ports.perUser,
    });
    deps.dataPlane?.onEvent((e) => this.events.onDataPlane(e));
    const dp = deps.dataPlane;
    if (dp?.drops) {
      this.metrics.dropSource = () => dp.drops!();
      this.drops = new DropSummary(
        () => dp.drops!(),
        warnDropLines((m, f) => this.log.warn(m, f)),
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
        const msg = r.send[0];
        const sessionId = r.record?.sessionId;
        this.apply(r); // FTP_ALIAS leaves before the reply that announces the port
        if (msg && sessionId)
          this.lastAlias = { sessionId, seq: (protocol.decode(msg.data) as protocol.SessionMessage).seq };
        return r.record !== undefined;
      },
      log: this.log,
      now: this.now,
    });
    this.events = new DaemonEvents({
      log: this.log,
      metrics: this.metrics,
      audit: this.audit,
      ftp: this.ftp,
      control: this.control,
      dataPlane: deps.dataPlane,
      sessionBook: this.sessionBook,
      refusals: this.refusals,
      apply: (r, flowsChanged) => this.apply(r, flowsChanged),
      now: this.now,
    });
    deps.dataPlane?.setAlg((seg) => {
      if (seg.direction === 'to-in') return this.ftp.fromClient(seg.t, seg.seq, seg.payload);
      this.lastAlias = undefined;
      const reply = this.ftp.fromServer(seg.t, seg.seq, seg.payload);
      const alias = this.lastAlias as { sessionId: string; seq: bigint } | undefined;
      // The client dials the port a rewritten reply names at once; the agent must know it is an
      // FTP data port by then (else it takes a pooled port): the reply leaves once the agent
      // acknowledged FTP_ALIAS, or after ALIAS_DELIVERY_MS (the data connection then takes a
      // pooled port, which works as well).
      return alias ? this.events.aliasDelivered(alias).then(() => reply) : reply;
    });
  }

  /** The synchronous view GatewayControl asks: user questions from the policy snapshot, ports from the pool. */
  private policyAdapter(): GatewayPolicy {
    return {
      lookupUser: (id) => this.policy.lookupUser(id),
      mayReach: (user, group, inName) => this.policy.mayReach(user, group, inName),
      reservePorts: (req) => {
        const owner = { user: req.user, source: req.en.addr };
        const r = this.pool.take(owner, req.count, { pin: req.pin, now: this.now() });
        if (typeof r !== 'string') return { ports: r };
        return this.limitBit(r, req);
      },
      releasePorts: (r) => {
        const until = this.now() + this.config.ports.timeWaitSec * 1000;
        for (const p of r.ports)
          this.pool.give(
            { user: r.user, source: r.en.addr },
            p.t,
            p.coolToward && this.config.ports.timeWaitSec > 0 ? { pin: p.coolToward, until } : undefined,
          );
      },
    };
  }

  /** A pool limit refused a RESERVE: the words the agent shows, a log line and a counter. */
  private limitBit(r: PortRefusal, req: protocol.ReserveRequest): protocol.ReserveOutcome {
    const p = this.config.ports;
    const text = {
      'user-limit': `${req.user} holds ${this.pool.countUser(req.user)} ports, the most one user may hold (ports.perUser ${p.perUser}); close some connections or ask IT`,
      'source-limit': `the address ${req.en.addr} holds the most ports one address may hold (ports.perSource ${p.perSource}); ask IT`,
      'no-ports': `the gateway has no free port left (${p.first}-${p.last}); ask IT`,
      cooling: `every free port toward ${req.inName} is still in use at the server (TIME_WAIT, up to ${p.timeWaitSec} s); try again shortly`,
    }[r];
    this.metrics.limitRefusals.inc({ limit: r });
    this.log.warn('limit reached', { limit: r, user: req.user, in: req.inName, en: req.en.addr, text });
    return r === 'no-ports' || r === 'cooling'
      ? { reason: 'no-ports', text }
      : { reason: 'rate-limited', text };
  }

  async start(): Promise<void> {
    this.startedAt = this.now();
    // What a previous run left: sessions, reservations and their ports, each row handed to the
    // engine before its queues start (the engine knows every row before the first packet).
    const t0 = Date.now();
    const store =
      this.deps.store === undefined
        ? openGatewayStore({ dir: this.config.stateDir, ...this.config.state }, this.log)
        : this.deps.store;
    if (store) this.state = new GatewayState(store, this.log);
    const restored = await this.state?.restore(this.control, this.pool, this.deps.dataPlane, this.now());
    // The data plane next: it reserves the flow port range (ip_local_reserved_ports) and queues
    // it. A connection opened before that (the directory's) could hold an ephemeral port in the
    // range, and the queue rules would take its replies: every first user look-up would hang
    // until the LDAP timeout. Until the policy is loaded nothing new is reserved: closed.
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
    if (restored) this.afterRestore(restored, Date.now() - t0);
    // the gauges once a second (and at each status): they walk every row and cooling port, too
    // much for every datagram of a burst
    this.staleTimer = setInterval(() => {
      this.checkStale();
      this.updateGauges();
    }, 1000);
    this.staleTimer.unref();
    if (this.deps.dataPlane?.flowState) {
      this.flowStateTimer = setInterval(() => this.apply(protocol.emptyResult(), 'all'), FLOW_STATE_EVERY_MS);
      this.flowStateTimer.unref();
    }
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
   * After a restart: the bound flows the engine could not take end, and their agents hear which
   * (their applications get a reset at once instead of a stalled connection); the restored rows
   * are decided again at the first policy the directory gives.
   */
  private afterRestore(r: import('./state.ts').Restored, ms: number): void {
    this.recheckRestored = r.rows > 0;
    const why = 'the gateway restarted and its engine could not keep the flow';
    for (const row of r.lost) this.apply(this.control.lose(row, why, this.now()));
    this.log.info('state restored', {
      sessions: r.sessions,
      reservations: r.rows,
      flowsCarried: r.carried,
      flowsLost: r.lost.length,
      dropped: r.dropped,
      durationMs: ms,
      store: this.state?.store.info().where,
    });
    if (this.policy.usable) this.onPolicyRefresh({ changed: [] } as unknown as RefreshResult);
  }

  /**
   * One control datagram. HELLO and AUTH over their source's limit are dropped unanswered; every
   * directory question is answered from the policy snapshot: no I/O.
   */
  handle(data: Buffer, from: Endpoint): void {
    this.checkStale();
    const now = this.now();
    if (this.admission.admit(data, from.addr, now) === 'rate-limited') {
      this.load.count(data[3] === 0x01 ? 'hello-rate-limited' : 'auth-rate-limited', from.addr);
      return;
    }
    this.metrics.controlMessages.inc({ type: controlType(data) });
    this.apply(this.control.handleDatagram(data, from, now));
  }

  /**
   * Writes what changed to the store, then sends: an agent never hears of a session, port or
   * binding that a crash right after could lose. Then the events.
   */
  private apply(r: GatewayResult, flowsChanged: 'all' | number[] = []): void {
    const now = this.now();
    // source-proven first: an AUTH_OK in the same result goes to an address now proven
    for (const e of r.events) if (e.kind === 'source-proven') this.admission.proven.add(e.addr, now);
    // A reserved port is in the engine before RESERVED can leave: the agent's engine sends a new
    // flow's first packet on it the moment it hears (docs/architecture.md, "A later connection").
    for (const e of r.events) if (e.kind === 'reservation') this.deps.dataPlane?.add(e.record);
    const send = () => this.send(r, now);
    if (this.state) {
      // engine snapshots: all of them every FLOW_STATE_EVERY_MS, a flow's own when it binds (never
      // all of them per datagram: a burst of 1 000 flows would cost O(n^2))
      const hooks = this.deps.dataPlane?.flowState;
      const flows =
        !hooks || (flowsChanged !== 'all' && flowsChanged.length === 0)
          ? []
          : hooks.exportChanged(flowsChanged === 'all' ? undefined : flowsChanged);
      const batch = this.state.batch(this.control.takeChanges(), flows);
      if (batch.put.length || batch.del.length) this.metrics.stateWrites.inc();
      this.state.commit(batch, send);
    } else {
      this.control.takeChanges();
      send();
    }
    for (const e of r.events) this.events.onControl(e);
    this.schedule();
  }

  /** Each datagram on its path (admission.ts): a proven peer's, an unproven source's, or shed. */
  private send(r: GatewayResult, now: number): void {
    for (const o of r.send) {
      const path = this.admission.path(o, now, (a) => this.control.isPeer(a));
      if (path === 'shed') this.load.count('answer-shed', o.to.addr);
      else if (!this.sockets?.send(o.data, o.to, path)) this.load.count('answer-congested', o.to.addr);
    }
  }

  /**
   * Fail closed when the directory has been gone too long (5 refresh intervals): from that
   * moment no new flow may start, so the reservations no flow uses yet are released at once (the
   * engine forgets them: a SYN on one is dropped, never forwarded before the control plane could
   * decide) and the agents are told why; live flows go on. Checked every second, before every
   * control datagram and at every /healthz.
   */
  private checkStale(): void {
    if (this.policy.usable) {
      this.failedClosed = false;
      return;
    }
    if (this.failedClosed || !this.sockets) return;
    this.failedClosed = true;
    const unused = [...this.control.reservations.values()].filter((r) => !r.binding).length;
    this.log.warn('directory unavailable too long: new flows refused, unused reservations released', {
      reason: 'directory-unavailable',
      policyAgeSec: Number.isFinite(this.policy.age) ? Math.round(this.policy.age / 1000) : null,
      released: unused,
    });
    this.apply(this.control.recheckAll(this.now(), (r) => r.binding !== undefined));
  }

  /** After a policy refresh: every reservation and flow is decided again; refused ones end now. */
  private onPolicyRefresh(r: RefreshResult): void {
    this.metrics.policyAge.set(0);
    this.checkStale();
    if (r.changed.length === 0 && !this.recheckRestored) return;
    this.recheckRestored = false;
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
    this.metrics.portsCooling.set(this.pool.cooling(this.now()));
    if (this.state) this.metrics.stateBytes.set(this.state.store.info().bytes);
    this.metrics.sessions.set(s.sessions);
    this.metrics.reservations.set(s.reservations);
    this.metrics.flows.set(this.control.reservations.mapped);
    this.metrics.policyAge.set(Number.isFinite(this.policy.age) ? this.policy.age / 1000 : -1);
    this.metrics.unknownUserIds.set(this.policy.unknownIds.size);
  }

  health(): string[] {
    this.checkStale();
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
      ports: {
        range: `${this.pool.first}-${this.pool.last}`,
        inUse: this.pool.inUse,
        cooling: this.pool.cooling(this.now()),
      },
      state: this.state?.store.info() ?? null,
      /** Whether a restart can carry bound flows on (the engine exports its flow state). */
      engineCarriesFlows: Boolean(this.deps.dataPlane?.flowState),
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

  /**
   * Stops. Sessions and reservations stay in the store and the kernel rules stay in place (the
   * door stays closed), so a start within the flows' lifetime goes on with them.
   */
  async stop(): Promise<void> {
    this.policy.stop();
    if (this.timer) clearTimeout(this.timer);
    if (this.staleTimer) clearInterval(this.staleTimer);
    if (this.flowStateTimer) clearInterval(this.flowStateTimer);
    this.events.releaseAliasWaiters();
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
    await this.state?.close();
    await this.directory.close();
    this.log.info('gateway stopped');
  }
}
