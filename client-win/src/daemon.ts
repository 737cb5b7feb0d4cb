// gsra-agent: the teleworker's side. It keeps one control session with the gateway per group the
// user is in, rewrites DNS answers for internal names to VINs (and reserves ports for that IN
// right then, so the first connection rarely waits), installs a VAT entry when an application's
// first packet to a VIN is held, fails refused flows at once with a reason, and reports status.
import { createSocket } from 'node:dgram';
import { createServer, type Server } from 'node:http';
import { protocol, type Logger, type StateStore } from '@gsra/common';
import { DropSummary, warnDropLines } from '@gsra/native';
import { AgentFlows } from './agent-flows.ts';
import { ArmedPorts } from './armed-ports.ts';
import { AgentState, openAgentStore, type SavedAgent } from './agent-state.ts';
import { agentStatus, type AgentStatus } from './agent-status.ts';
import { onControlEvent, RELOGIN_MIN_MS, type ControlEventHost, type Session } from './control-events.ts';
import { GATEWAY_BUSY_MS, WaitingConnections } from './waiting.ts';
import type { AgentConfig } from './config.ts';
import { credentialsExpireAt, credentialsTooOld, type Credentials } from './credentials.ts';
import type { AgentDataPlane, AgentDataPlaneEvent, FiveTuple } from './data-plane.ts';
import { DnsAnswers } from './dns-answers.ts';
import { DnsGuard } from './dns-guard.ts';
import { AgentMetrics } from './metrics.ts';
import { VinTable } from './vin.ts';
import { refusalWords } from './words.ts';

type AgentResult = protocol.AgentResult;
type ProtoNumber = protocol.ProtoNumber;

const { protoName } = protocol;

/** How often the live flows' engine snapshots are saved (a restart resumes from the last one). */
const SNAPSHOT_EVERY_MS = 500;

export type { AgentStatus };

export interface AgentDeps {
  logger: Logger;
  dataPlane: AgentDataPlane;
  /**
   * Where sessions and flows survive a restart of the agent (docs/reliability.md). Default: the
   * embedded journal in config.stateDir; null: nothing is kept (a restart logs in again).
   */
  store?: StateStore | null;
  now?: () => number;
}

export class AgentDaemon {
  readonly vins: VinTable;
  private sessions = new Map<string, Session>();
  /** Created at start, with the store. */
  private flows!: AgentFlows;
  /** The pools' ports as the engine holds them (new connections take them there). */
  private readonly armed: ArmedPorts;
  /** New connections waiting for a port, and refusals remembered a few seconds (waiting.ts). */
  private readonly waiting = new WaitingConnections();
  private ops: Server | undefined;
  /** /metrics, and every refused packet in a summary line at most every 5 s (native/lib/drops.ts). */
  private metrics: AgentMetrics | undefined;
  private drops: DropSummary | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private snapshotTimer: NodeJS.Timeout | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  /** Set once the stored login is too old: sessions end and are not opened again. */
  private expired: string | undefined;
  private state: AgentState | undefined;
  /** The VIN table as the store last got it (JSON). */
  private savedVins = '';
  private stopped = false;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly zones: string[];
  private readonly dns: DnsAnswers;
  private foreignControl = 0;
  private eventFailures = 0;
  /** What control-events.ts needs to handle a session's events. */
  private readonly host: ControlEventHost;
  opsPort = 0;

  constructor(
    readonly config: AgentConfig,
    readonly creds: Credentials,
    private deps: AgentDeps,
  ) {
    this.log = deps.logger.child({ user: creds.user });
    this.now = deps.now ?? Date.now;
    this.host = {
      log: this.log,
      user: this.creds.user,
      now: () => this.now(),
      expired: () => this.expired,
      flows: () => this.flows,
      waiting: this.waiting,
      apply: (s, r) => this.apply(s, r),
      persist: () => this.persist(),
      dropFlows: (g, reason) => this.dropFlows(g, reason),
      serveWaiting: (name) => this.serveWaiting(name),
      askAgain: (s, name, proto) => this.askAgain(s, name, proto),
      failWaiting: (name, proto, reason, text) => this.failWaiting(name, proto, reason, text),
      probeAll: () => this.deps.dataPlane.probeAll?.() ?? 0,
    };
    this.vins = new VinTable(config.vinRange);
    this.armed = new ArmedPorts(
      deps.dataPlane,
      config.gateway.address,
      (name) => this.vins.byHostName(name)?.vin,
    );
    this.zones = config.zones.map((z) => z.toLowerCase());
    this.dns = new DnsAnswers({
      guard: new DnsGuard({ resolvers: deps.dataPlane.resolvers, zones: this.zones }),
      ggr: config.gateway.address,
      zones: this.zones,
      vins: this.vins,
      dataPlane: deps.dataPlane,
      log: this.log,
      inUse: (vin) => this.vinInUse(vin),
      mapped: (name) => {
        const s = this.groupFor(name);
        if (s) this.apply(s, s.control.reserve(name, 6, this.now()));
      },
      // a name's VIN is written before the application can use it: it survives a restart
      beforeAnswer: () => {
        // a VIN given back for this answer no longer leads the engine's pool to its old name
        this.armed.sync(this.sessions.values(), this.now());
        const entries = this.vins.entries();
        const text = JSON.stringify(entries);
        if (!this.state || text === this.savedVins) return;
        this.savedVins = text;
        this.state.put('vins', entries);
        this.state.flush();
      },
    });
    deps.dataPlane.onEvent((e) => this.onDataPlane(e));
  }

  async start(): Promise<void> {
    const tooOld = credentialsTooOld(this.creds, this.config.login.maxAgeHours, this.now());
    if (tooOld) throw new Error(tooOld);
    this.armExpiry();
    // What a previous run left (a crash, kill -9): each group's session goes on without a new
    // login, live TCP flows are back in the engine before its queues start.
    const store = this.deps.store === undefined ? openAgentStore(this.config.stateDir) : this.deps.store;
    if (store) this.state = new AgentState(store);
    this.flows = new AgentFlows(this.deps.dataPlane, this.state, (k, t, keys) => this.vatEntry(k, t, keys));
    const saved = await this.state?.load();
    if (saved) this.vins.restore(saved.vins);
    for (const g of this.creds.groups) await this.openSession(g.name, saved?.sessions.get(g.name));
    if (saved) this.restoreFlows(saved);
    this.deps.dataPlane.start();
    const dp = this.deps.dataPlane;
    this.metrics = new AgentMetrics({
      drops: () => dp.drops?.(),
      engine: () => dp.stats(),
      sessions: () => [...this.sessions.values()].filter((s) => s.up).length,
      flows: () => this.flows.all().length,
    });
    this.drops = new DropSummary(
      () => dp.drops?.(),
      warnDropLines((m, f) => this.log.warn(m, f)),
      5000,
    );
    this.drops.start();
    this.ops = createServer((req, res) => {
      if (req.url === '/status') {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify(this.status(), null, 2) + '\n');
      } else if (req.url === '/metrics' && this.metrics) void this.metrics.serve(res);
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => this.ops!.listen(this.config.ops.port, this.config.ops.listen, () => r()));
    const a = this.ops.address();
    this.opsPort = typeof a === 'object' && a ? a.port : 0;
    this.sweepTimer = setInterval(() => this.sweepWaiting(), 250);
    this.sweepTimer.unref();
    // the live flows' engine state, for a restart (only what changed is written)
    this.snapshotTimer = setInterval(() => {
      if (this.flows.saveSnapshots()) this.state?.flush();
    }, SNAPSHOT_EVERY_MS);
    this.snapshotTimer.unref();
    this.log.info('agent started', {
      groups: this.creds.groups.map((g) => g.name),
      gateway: `${this.config.gateway.address}:${this.config.gateway.controlPort}`,
      vinRange: this.config.vinRange,
      node: process.version,
    });
  }

  /** At the login's maximum age: end every session; the user must run `gsra-agent login` again. */
  private armExpiry(): void {
    const at = credentialsExpireAt(this.creds, this.config.login.maxAgeHours);
    // setTimeout holds at most ~24.8 days: re-arm until the moment comes.
    this.expiryTimer = setTimeout(
      () => {
        const why = credentialsTooOld(this.creds, this.config.login.maxAgeHours, this.now());
        if (!why) return this.armExpiry();
        this.expired = why;
        this.log.error(why, { reason: 'login-expired' });
        for (const s of this.sessions.values()) {
          if (s.retry) clearTimeout(s.retry);
          s.retry = undefined;
          s.retryAt = undefined;
          this.apply(s, s.control.logout(this.now()));
          s.up = false;
          s.lastError = why;
          this.dropFlows(s.group, 'login-expired');
        }
      },
      Math.min(Math.max(0, at - this.now()), 2 ** 31 - 1),
    );
    this.expiryTimer.unref();
  }

  /** After a restart: the flows and aliases of the sessions that went on are back (AgentFlows.restore). */
  private restoreFlows(saved: SavedAgent): void {
    const secretOf = (g: string) => {
      const s = this.sessions.get(g);
      return s?.up ? s.control.sessionSecret : null;
    };
    const r = this.flows.restore(saved, secretOf, this.now());
    for (const p of r.release) {
      const s = this.sessions.get(p.group)!;
      this.apply(s, s.control.release(p.proto, p.t, this.now()));
    }
    // The engine may have taken a pooled port for a connection just before the agent stopped,
    // one the journal never heard of: no restored pooled port is used again. They are released
    // and the pools filled afresh.
    for (const s of this.sessions.values()) {
      const ports = s.up ? [...s.control.pooledPorts()] : [];
      for (const p of ports) this.apply(s, s.control.release(p.proto, p.t, this.now()));
      for (const p of new Map(ports.map((p) => [`${p.inName}/${p.proto}`, p])).values())
        this.apply(s, s.control.reserve(p.inName, p.proto, this.now()));
    }
    this.persist();
    if (saved.flows.length || saved.sessions.size)
      this.log.info('state restored', {
        sessions: [...this.sessions.values()].filter((s) => s.up).length,
        flows: r.restored,
        flowsDropped: saved.flows.length - r.restored,
        vins: saved.vins.length,
      });
  }

  private async openSession(
    group: string,
    saved?: protocol.AgentSessionState & { user?: string },
  ): Promise<void> {
    const g = this.creds.groups.find((x) => x.name === group)!;
    const key = [...g.keys].sort((a, b) => b.version - a.version)[0]!;
    const control = new protocol.AgentControl({
      user: this.creds.user,
      userSecret: this.creds.secret,
      group,
      groupKey: { version: key.version, key: key.key },
      // The gateway's FTP ALG writes this VIN into passive replies for the IN.
      vinOf: (name) => this.vins.byHostName(name)?.vin,
    });
    const sock = createSocket('udp4');
    const s: Session = { group, control, sock, up: false, retryMs: RELOGIN_MIN_MS, saved: -1 };
    this.sessions.set(group, s);
    const gw = this.config.gateway;
    sock.on('message', (m, rinfo) => {
      // Only the gateway speaks on this socket (the kernel filters too: it is connected).
      if (rinfo.address !== gw.address || rinfo.port !== gw.controlPort) {
        this.foreignControl++;
        return;
      }
      s.heardAt = this.now();
      this.apply(s, control.handleDatagram(m, this.now()));
    });
    sock.on('error', (e) => this.log.warn('control socket error', { group, reason: e.message }));
    await new Promise<void>((r) => sock.bind(0, () => r()));
    await new Promise<void>((r) => sock.connect(gw.controlPort, gw.address, () => r()));
    // a session saved by this user's previous run goes on (the gateway says so, or that it
    // forgot it: then HELLO); otherwise log in
    if (saved && saved.user === this.creds.user) this.apply(s, control.resume(saved, this.now()));
    else {
      this.log.info('logging in', { group, gateway: `${gw.address}:${gw.controlPort}` });
      this.apply(s, control.login(this.now()));
    }
  }

  /** Writes what changed (the session's state when it moved) before anything is sent. */
  private persist(s?: Session): void {
    if (!this.state) return;
    for (const x of s ? [s] : this.sessions.values()) {
      if (x.control.changeCount === x.saved) continue;
      x.saved = x.control.changeCount;
      const st = x.control.save();
      if (st) this.state.put(`g/${x.group}`, { ...st, user: this.creds.user });
      else this.state.del(`g/${x.group}`);
    }
    this.state.flush();
  }

  private vatEntry(key: FiveTuple, t: number, keys: protocol.FlowKeys) {
    return {
      proto: key.proto,
      pen: key.src,
      s: key.sport,
      vin: key.dst,
      d: key.dport,
      ggr: this.config.gateway.address,
      t,
      keys,
    };
  }

  private apply(s: Session, r: AgentResult): void {
    this.persist(s);
    for (const o of r.send) {
      if (o.dest.via !== 'control') continue; // explicit BIND probes are not used: binding is in-band
      s.sock.send(o.data); // connected to the gateway's control address and port
    }
    for (const e of r.events) onControlEvent(this.host, s, e);
    this.armed.sync(this.sessions.values(), this.now());
    if (s.timer) clearTimeout(s.timer);
    const next = s.control.nextDeadline();
    if (next !== null) {
      s.timer = setTimeout(() => this.apply(s, s.control.poll(this.now())), Math.max(0, next - this.now()));
      s.timer.unref();
    }
  }

  /** Removes the engine's flows of a group whose session ended (the gateway will not translate them). */
  private dropFlows(group: string, reason: string): void {
    for (const f of this.flows.dropGroup(group)) {
      this.log.info('flow ended', {
        in: f.name,
        proto: protoName(f.key.proto),
        d: f.key.dport,
        state: 'session-down',
        reason,
      });
    }
    this.persist();
  }

  /** The group to speak for when reaching `name`: the one listing it, else the first (the gateway decides). */
  private groupFor(name: string): Session | undefined {
    const g = this.creds.groups.find((x) => x.hosts.some((h) => h.name === name)) ?? this.creds.groups[0];
    return g && this.sessions.get(g.name);
  }

  private onDataPlane(e: AgentDataPlaneEvent): void {
    switch (e.kind) {
      case 'dns-query':
        this.dns.query(e.packet, this.now());
        break;
      case 'dns-answer':
        this.dns.answer(e.id, e.packet, this.now());
        break;
      case 'event-failed':
        this.eventFailures++;
        this.log.error('an engine event could not be handled (the others of its batch were)', {
          event: e.event,
          reason: e.reason,
        });
        break;
      case 'held':
        this.onHeld(e);
        break;
      case 'pool-taken':
        this.onPoolTaken(e);
        break;
      case 'flow-ended': {
        const f = this.flows.get(e.id);
        if (!f) break;
        this.flows.forget(f);
        this.persist();
        const s = this.sessions.get(f.group);
        if (s) this.apply(s, s.control.release(f.key.proto, f.t, this.now()));
        this.log.info('flow ended', {
          in: f.name,
          proto: protoName(f.key.proto),
          d: f.key.dport,
          state: e.state,
        });
        break;
      }
      case 'verify-failed':
        this.log.warn('packets failed verification and were dropped', {
          from: e.from,
          reason: e.reason,
          count: e.count,
        });
        break;
    }
  }

  /** Does a live flow, a held connection or an FTP alias use this VIN? (then it is never reclaimed) */
  private vinInUse(vin: string): boolean {
    if (this.flows.all().some((f) => f.key.dst === vin)) return true;
    if (this.waiting.usesVin(vin)) return true;
    return this.flows.aliasUses(vin);
  }

  private onHeld(key: FiveTuple): void {
    const entry = this.vins.byAddress(key.dst);
    if (!entry) {
      this.log.warn('connection to an unassigned VIN refused', { vin: key.dst, dport: key.dport });
      this.deps.dataPlane.failHeld(key);
      return;
    }
    const refused = this.waiting.refusal(entry.name, key.proto, this.now());
    if (refused) {
      // Refused a moment ago: answer the application at once instead of asking again.
      this.deps.dataPlane.failHeld(key);
      this.log.warn(refused.words, { in: entry.name, d: key.dport, reason: refused.reason });
      return;
    }
    if (key.proto === 6 && this.startAlias(key)) return;
    if (!this.tryStart(key, entry.name)) {
      this.waiting.add(key, entry.name, this.now());
      const s = this.groupFor(entry.name);
      // as many ports as connections wait for this IN (a browser opens many at once)
      const need = this.waiting.count(entry.name, key.proto);
      if (s) this.apply(s, s.control.reserve(entry.name, key.proto, this.now(), need));
    }
  }

  /** Take a pre-reserved port and install the VAT entry (zero round trips); false if none is ready. */
  private tryStart(key: FiveTuple, name: string): boolean {
    const s = this.groupFor(name);
    if (!s?.up) return false;
    for (;;) {
      const r = s.control.takePort(name, key.proto, this.now());
      this.apply(s, { send: r.send, events: r.events });
      if (!r.port) return false;
      // the engine took this one for another connection a moment ago: its flow keeps it
      if (!this.armed.claim(r.port)) continue;
      this.install(key, name, s.group, r.port);
      return true;
    }
  }

  /**
   * A new connection took a pooled port in the engine and has left (armed-ports.ts): the flow is
   * recorded and written as install() does, the pool topped up. A port that stopped being the
   * session's meanwhile (released, expired, the session lost) cannot carry it: the flow is reset.
   */
  private onPoolTaken(e: FiveTuple & { id: number; t: number }): void {
    const a = this.armed.taken(e.proto, e.t);
    const s = a ? this.sessions.get(a.group) : undefined;
    const live = a && s?.up && s.control.session === a.sessionId;
    const r = live ? (a.claimed ? { port: a.claimed } : s.control.takenPort(e.proto, e.t, this.now())) : null;
    if (!a || !s || !r?.port) {
      this.deps.dataPlane.resetFlow(e.id);
      this.log.warn('connection reset: its pooled port was no longer valid', {
        vin: e.dst,
        d: e.dport,
        t: e.t,
      });
      return;
    }
    const key = { proto: e.proto, src: e.src, sport: e.sport, dst: e.dst, dport: e.dport };
    this.install(key, a.name, a.group, r.port, {}, e.id);
    if ('send' in r) this.apply(s, { send: r.send, events: r.events });
  }

  /**
   * Records a new flow on port t: installs the VAT entry for a held connection (the engine releases
   * the packet), or, given `engineId`, adopts the flow the engine made itself from its pool.
   */
  private install(
    key: FiveTuple,
    name: string,
    group: string,
    port: protocol.PooledPort,
    extra = {},
    engineId?: number,
  ): void {
    this.flows.add(key, name, group, port, this.now(), () => this.persist(), engineId);
    this.vins.touch(key.dst);
    this.log.info('flow started', {
      in: name,
      group,
      proto: protoName(key.proto),
      d: key.dport,
      t: port.t,
      ...extra,
    });
  }

  /** A connection to a port an FTP passive reply announced: take the port reserved for it. */
  private startAlias(key: FiveTuple): boolean {
    const k = `${key.dst}:${key.dport}`;
    const a = this.flows.takeAlias(k);
    if (!a) return false;
    if (a.port.expiresAt <= this.now() || !this.sessions.get(a.group)?.up) return false;
    this.install(key, a.name, a.group, a.port, { ftp: 'data' });
    return true;
  }

  private serveWaiting(name: string): void {
    this.waiting.serve(name, (w) => this.tryStart(w.key, w.name));
  }

  /**
   * A RESERVE went unanswered while the gateway answers other requests (busy, a datagram lost):
   * ask again for the connections still waiting, which fail only at their hold limit. False if
   * the gateway is silent (then the waiting connections fail at once).
   */
  private askAgain(s: Session, name: string, proto: ProtoNumber): boolean {
    if (this.now() - (s.heardAt ?? 0) >= GATEWAY_BUSY_MS) return false;
    const need = this.waiting.count(name, proto);
    if (need) this.apply(s, s.control.reserve(name, proto, this.now(), need));
    return true;
  }

  private failWaiting(name: string, proto: ProtoNumber, reason: string, text: string): string {
    const words = refusalWords(this.creds.user, name, reason, text);
    for (const w of this.waiting.refuse(name, proto, reason, words, this.now())) {
      this.deps.dataPlane.failHeld(w.key);
      this.log.warn(words, { in: name, d: w.key.dport, reason });
    }
    return words;
  }

  private sweepWaiting(): void {
    const now = this.now();
    this.flows.expireAliases(now);
    for (const w of this.waiting.late(now, (name) => this.groupFor(name)?.heardAt ?? 0)) {
      this.deps.dataPlane.failHeld(w.key);
      this.log.warn('connection failed: no answer from the gateway', {
        in: w.name,
        d: w.key.dport,
        reason: 'timeout',
      });
    }
  }

  status(): AgentStatus {
    return agentStatus({
      creds: this.creds,
      maxAgeHours: this.config.login.maxAgeHours,
      expired: this.expired,
      sessions: this.sessions.values(),
      vins: this.vins,
      flows: this.flows,
      dataPlane: this.deps.dataPlane,
      dns: this.dns,
      foreignControl: this.foreignControl,
      eventFailures: this.eventFailures,
      now: this.now(),
    });
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    if (this.snapshotTimer) clearInterval(this.snapshotTimer);
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    for (const s of this.sessions.values()) {
      if (s.retry) clearTimeout(s.retry);
      this.apply(s, s.control.logout(this.now()));
      if (s.timer) clearTimeout(s.timer);
      await new Promise((r) => setTimeout(r, 20));
      s.sock.close();
    }
    this.armed.clear();
    for (const w of this.waiting.clear()) this.deps.dataPlane.failHeld(w.key);
    // logged out: the flows end with the sessions (a crash, unlike a stop, keeps them)
    this.flows?.clear();
    await this.state?.close();
    await new Promise<void>((r) => (this.ops ? this.ops.close(() => r()) : r()));
    this.drops?.stop();
    await this.deps.dataPlane.close();
    this.log.info('agent stopped');
  }
}
