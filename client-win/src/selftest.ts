// `gsra-agent selftest`: proves this installation's engine works, without a network. An agent
// engine and a gateway engine, joined by a simulated home NAT, carry golden packets in memory:
// a DNS answer rewritten to a VIN the way the agent does it, a held TCP SYN released when its
// VAT entry arrives, data of 1 to 1400 bytes both ways over TCP and UDP, and a tampered packet
// that must fail verification. Every step is checked (addresses, checksums,
// payload back intact); the bytes of every packet on every hop are hashed into one digest, so
// two platforms (Linux with OpenSSL, Windows with CNG) can be shown to produce the same bytes.
// On Windows it also checks DPAPI and compiles the agent's WinDivert filters with WinDivert's
// own compiler; `--open-windivert` also tries to open the driver and reports what WinDivert said.
import { createHash } from 'node:crypto';
import { dirname } from 'node:path';
import { rewriteARecords, buildQuery, buildResponse, parseDns } from '@gsra/common';
import {
  Engine,
  directionKeys,
  checkWinDivert,
  dpapiProtect,
  dpapiUnprotect,
  type Hook,
  type ProcessResult,
} from '@gsra/native';
import {
  tcp,
  udp,
  nat,
  keys,
  addrs as addrsOf,
  payload,
  checksumsOk,
  SYN,
  ACK,
  PSH,
} from '@gsra/native/packets';
import { VinTable } from './vin.ts';

const PEN = '192.168.1.10';
const GGR = '203.0.113.1';
const GHR = '198.51.100.7';
const PGR = '10.0.0.1';
const PIN = '10.0.0.11';
const RESOLVER = '192.168.1.1';
const VIN_RANGE = '198.19.224.0/20';
const NAME = 'intra1.corp.example';

export interface SelftestResult {
  ok: boolean;
  platform: string;
  /** sha256 over every packet of every step, in order: equal on every platform. */
  digest: string;
  packets: number;
  failures: string[];
  dpapi?: string;
  windivertFilters?: string;
  windivertOpen?: string;
}

class Run {
  readonly hash = createHash('sha256');
  packets = 0;
  failures: string[] = [];
  check(ok: boolean, what: string): void {
    if (!ok) this.failures.push(what);
  }
  record(p: Buffer | undefined): Buffer {
    if (!p) {
      this.failures.push('a packet that should exist is missing');
      return Buffer.alloc(0);
    }
    this.hash.update(p);
    this.packets++;
    return p;
  }
  accepted(r: ProcessResult, what: string): Buffer {
    this.check(
      r.verdict === 'accept',
      `${what}: expected accept, got ${r.verdict}${r.reason ? ` (${r.reason})` : ''}`,
    );
    const p = this.record(r.packet);
    this.check(p.length === 0 || checksumsOk(p), `${what}: checksums`);
    return p;
  }
}

const addrs = (p: Buffer) => (p.length >= 24 ? addrsOf(p) : { src: '', sport: 0, dst: '', dport: 0 });

/** Deterministic payload of `n` bytes. */
function bytes(n: number, seed: number): Buffer {
  return Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + seed * 13) & 255));
}

function dnsStep(run: Run, agent: Engine, vins: VinTable): string {
  const query = parseDns(buildQuery(0x1234, NAME));
  const answer = udp(RESOLVER, 53, PEN, 5353, buildResponse(query, { a: [GGR], ttl: 300 }));
  const r = agent.process(answer, 'in');
  run.check(r.verdict === 'punted', `dns: expected the answer punted, got ${r.verdict}`);
  const out = Buffer.from(answer);
  const n = rewriteARecords(
    out.subarray(20 + 8),
    (name, addr) => (addr === GGR ? vins.assign(name, 60, 0).vin : undefined),
    60,
  );
  run.check(n === 1, `dns: ${n} records rewritten, expected 1`);
  run.check(agent.verdict(r.puntId ?? -1, true, out), 'dns: verdict refused');
  const rel = agent.takeReleased();
  run.check(rel.length === 1, `dns: ${rel.length} packets released`);
  const p = run.record(rel[0]?.packet);
  const vin = vins.byHostName(NAME)?.vin ?? '';
  const a = parseDns(payload(p)).answers[0];
  run.check(a !== undefined && [...a.rdata].join('.') === vin, 'dns: the answer carries the VIN');
  run.check(a?.ttl === 60, 'dns: TTL capped to 60 s');
  run.check(checksumsOk(p), 'dns: checksums');
  return vin;
}

/** One flow through agent -> NAT -> gateway and back; returns the agent-side wire packet of the last outbound data. */
function flowStep(
  run: Run,
  agent: Engine,
  gw: Engine,
  o: {
    id: number;
    proto: 'tcp' | 'udp';
    vin: string;
    s: number;
    d: number;
    t: number;
    m: number;
    sizes: number[];
  },
): Buffer {
  const k = { enToGw: keys(o.id * 2 + 1), gwToEn: keys(o.id * 2 + 2) };
  const name = o.proto;
  gw.addReservation({
    id: o.id,
    proto: o.proto,
    t: o.t,
    pin: PIN,
    ports: [o.d],
    ...directionKeys('gateway', k),
  });
  const out = (p: Buffer) => nat(p, true, [PEN, o.s], [GHR, o.m]);
  const back = (p: Buffer) => nat(p, false, [PEN, o.s], [GHR, o.m]);
  const fromApp = (n: number, seq: number, flags: number) =>
    o.proto === 'tcp'
      ? tcp(PEN, o.s, o.vin, o.d, seq, 5001, flags, bytes(n, seq))
      : udp(PEN, o.s, o.vin, o.d, bytes(n, seq));
  // The first packet is held until the VAT entry exists.
  const first =
    o.proto === 'tcp'
      ? tcp(PEN, o.s, o.vin, o.d, 1000, 0, SYN, Buffer.alloc(0), Buffer.from([2, 4, 5, 0xb4]))
      : fromApp(64, 1, 0);
  run.check(agent.process(first, 'out').verdict === 'held', `${name}: first packet held`);
  agent.addFlow({
    id: o.id,
    proto: o.proto,
    pen: PEN,
    s: o.s,
    vin: o.vin,
    d: o.d,
    ggr: GGR,
    t: o.t,
    ...directionKeys('agent', k),
  });
  const rel = agent.takeReleased();
  run.check(rel.length === 1, `${name}: held packet released once`);
  const wire = run.record(rel[0]?.packet);
  run.check(
    JSON.stringify(addrs(wire)) === JSON.stringify({ src: PEN, sport: o.s, dst: GGR, dport: o.t }),
    `${name}: translated to GGR:t`,
  );
  const atIn = run.accepted(gw.process(out(wire), 'in'), `${name}: gateway in`);
  run.check(
    JSON.stringify(addrs(atIn)) === JSON.stringify({ src: PGR, sport: o.t, dst: PIN, dport: o.d }),
    `${name}: PGR:t -> PIN:d`,
  );
  if (o.proto === 'tcp') {
    const sa = run.accepted(
      gw.process(tcp(PIN, o.d, PGR, o.t, 5000, 1001, SYN | ACK), 'out'),
      `${name}: SYN-ACK out`,
    );
    run.accepted(agent.process(back(sa), 'in'), `${name}: SYN-ACK at EN`);
  }
  let seq = 1001;
  let rseq = 5001;
  let last = wire;
  for (const n of o.sizes) {
    const msg = fromApp(n, seq, ACK | PSH);
    const w = run.accepted(agent.process(msg, 'out'), `${name}: ${n} B out`);
    run.check(n < 8 || !payload(w).equals(payload(msg)), `${name}: ${n} B encrypted on the wire`);
    const inside = run.accepted(gw.process(out(w), 'in'), `${name}: ${n} B at IN`);
    run.check(payload(inside).equals(payload(msg)), `${name}: ${n} B arrive intact`);
    last = w;
    seq += n;
    const reply =
      o.proto === 'tcp'
        ? tcp(PIN, o.d, PGR, o.t, rseq, seq, ACK | PSH, bytes(n, rseq))
        : udp(PIN, o.d, PGR, o.t, bytes(n, rseq));
    const rw = run.accepted(gw.process(reply, 'out'), `${name}: ${n} B back out`);
    const atEn = run.accepted(agent.process(back(rw), 'in'), `${name}: ${n} B back at EN`);
    run.check(payload(atEn).equals(payload(reply)), `${name}: ${n} B back intact`);
    run.check(addrs(atEn).src === o.vin, `${name}: replies come from the VIN`);
    rseq += n;
  }
  return last;
}

function verifyFailureStep(run: Run, gw: Engine, wire: Buffer): void {
  const bad = nat(wire, true, [PEN, 40000], [GHR, 61000]);
  bad[bad.length - 1]! ^= 0x20;
  const before = gw.stats().verifyFailed;
  const r = gw.process(bad, 'in');
  run.check(
    r.verdict === 'drop' && r.reason === 'bad-mac',
    `tampered packet: expected drop/bad-mac, got ${r.verdict}/${r.reason}`,
  );
  run.check(gw.stats().verifyFailed === before + 1, 'tampered packet counted');
  run.hash.update(`${r.verdict}:${r.reason}`);
}

export function selftest(opts: { openWinDivert?: boolean; dir?: string } = {}): SelftestResult {
  const run = new Run();
  const agent = new Engine({
    role: 'agent',
    vinNet: VIN_RANGE,
    punt: [{ hook: 'in' as Hook, proto: 'udp', sport: 53 }],
  });
  const gw = new Engine({ role: 'gateway', ggr: GGR, pgr: PGR });
  const vins = new VinTable(VIN_RANGE);
  const step = <T>(name: string, f: () => T): T | undefined => {
    try {
      return f();
    } catch (e) {
      run.failures.push(`${name}: ${(e as Error).message}`);
      return undefined;
    }
  };
  const vin = step('dns', () => dnsStep(run, agent, vins)) ?? '198.19.224.1';
  const sizes = [1, 16, 100, 536, 1000, 1400];
  const flows = [
    { id: 1, proto: 'tcp' as const, vin, s: 40000, d: 80, t: 40001, m: 61000, sizes },
    { id: 2, proto: 'udp' as const, vin, s: 40002, d: 5000, t: 40003, m: 61002, sizes },
  ];
  const wires = flows.map((f) => step(`flow ${f.id}`, () => flowStep(run, agent, gw, f)));
  step('verify failure', () => verifyFailureStep(run, gw, wires[0] ?? Buffer.alloc(0)));
  const res: SelftestResult = {
    ok: false,
    platform: `${process.platform}-${process.arch}`,
    digest: run.hash.digest('hex'),
    packets: run.packets,
    failures: run.failures,
  };
  if (process.platform === 'win32') {
    const dir = opts.dir ?? dirname(process.execPath);
    try {
      const secret = Buffer.from('selftest secret');
      const blob = dpapiProtect(secret, 'machine');
      run.check(!blob.includes(secret) && dpapiUnprotect(blob).equals(secret), 'DPAPI round trip');
      res.dpapi = 'ok';
    } catch (e) {
      run.failures.push(`DPAPI: ${(e as Error).message}`);
    }
    const rules = { vinNet: VIN_RANGE, ggr: GGR, ports: [40000, 59999] as [number, number] };
    try {
      res.windivertFilters = `${checkWinDivert(dir, rules).length} filters compiled by WinDivert.dll`;
    } catch (e) {
      run.failures.push(`WinDivert filters: ${(e as Error).message}`);
    }
    if (opts.openWinDivert) {
      const probe = new Engine({ role: 'agent', vinNet: VIN_RANGE });
      try {
        probe.startWinDivert({ dir, ...rules });
        res.windivertOpen = 'opened (the driver is loaded)';
      } catch (e) {
        res.windivertOpen = (e as Error).message;
      } finally {
        probe.stop();
      }
    }
  }
  res.ok = run.failures.length === 0;
  return res;
}
