// A reservation row with a bound flow, and the engine's counts for it (audit and status tests).
import type { protocol } from '@gsra/common';
import type { FlowCounts } from '../src/data-plane.ts';

export const T0 = Date.parse('2026-05-04T09:00:00.000Z');

export function row(over: Partial<protocol.Reservation> = {}): protocol.Reservation {
  return {
    id: 17,
    proto: 6,
    t: 40123,
    serial: 1,
    keys: {} as protocol.FlowKeys,
    sessionId: 'a1b2c3d4e5f60718',
    user: 'alice',
    userDn: 'uid=alice,ou=people,dc=corp,dc=example',
    group: 'sales',
    inName: 'intra1.corp.example',
    pin: '10.0.0.11',
    en: { addr: '198.51.100.7', port: 50123 },
    expiresAt: T0 + 300_000,
    binding: { ghr: '198.51.100.7', m: 61000 },
    mapping: { d: 80 },
    ...over,
  };
}

export const counts = (close: FlowCounts['close'] = 'none'): FlowCounts => ({
  state: 'closing',
  close,
  toIn: { packets: 12, bytes: 1500, payload: 420 },
  toEn: { packets: 800, bytes: 1_100_000, payload: 1_048_576 + 230 },
  verifyFailed: 2,
});
