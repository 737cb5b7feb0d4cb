// `gsra-gateway status` as a person reads it: the summary with every reserved port, or (--flows)
// each live flow with the fields of its future audit record.
import type { LiveFlowRecord } from './audit.ts';
import type { GatewayStatus } from './status.ts';

/** Left-aligned columns, two spaces apart; numbers right-aligned. */
function table(head: string[], rows: (string | number)[][]): string[] {
  const cells = [head, ...rows.map((r) => r.map(String))];
  const width = head.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  const numeric = head.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number'));
  return cells.map((r) =>
    r
      .map((c, i) => (numeric[i] ? c.padStart(width[i]!) : c.padEnd(width[i]!)))
      .join('  ')
      .trimEnd(),
  );
}

export function summaryLines(s: GatewayStatus): string[] {
  const lines = [
    `uptime ${s.uptimeSec} s; LDAP policy ${s.policy.usable ? `fresh (${s.policy.ageSec} s old)` : 'UNUSABLE (refusing all requests)'}`,
    `sessions ${s.control.sessions}; live flows ${s.flows.length}; reservations ${s.control.reservations}; ports in use ${s.ports.inUse} of ${s.ports.range}`,
  ];
  if (!s.health.ok) lines.push(...s.health.problems.map((p) => `PROBLEM: ${p}`));
  if (s.reservations.length)
    lines.push(
      ...table(
        ['USER', 'GROUP', 'IN', 'PROTO', 'T', 'EN', 'BOUND TO', 'D'],
        s.reservations.map((r) => [
          r.user,
          r.group,
          r.in,
          r.proto,
          r.t,
          r.en,
          r.binding ?? '-',
          r.d === null ? '-' : String(r.d),
        ]),
      ),
    );
  return lines;
}

/** Live flows: who, which host, from which public address, what moved each way, since when. */
export function flowLines(flows: LiveFlowRecord[]): string[] {
  if (flows.length === 0) return ['no live flow'];
  return table(
    [
      'USER',
      'GROUP',
      'IN',
      'HOST',
      'PROTO',
      'PC (GHR:M)',
      'PAYLOAD TO IN',
      'PAYLOAD TO EN',
      'PKTS TO IN',
      'PKTS TO EN',
      'BYTES TO IN',
      'BYTES TO EN',
      'START',
      'DURATION S',
      'STATE',
    ],
    flows.map((f) => [
      f.user,
      f.group,
      f.in,
      `${f.pin}:${f.d ?? '?'}`,
      f.proto,
      f.ghr ?? '-',
      f.payloadToIn,
      f.payloadToEn,
      f.packetsToIn,
      f.packetsToEn,
      f.bytesToIn,
      f.bytesToEn,
      f.start,
      Math.round(f.durationMs / 1000),
      f.close === 'none' ? f.state : `${f.state} (${f.close})`,
    ]),
  );
}
