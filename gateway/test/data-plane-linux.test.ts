// The gateway's data plane hands the engine each reservation as it is (converted only at the
// engine's boundary): the row's id is the engine's flow id, and the gateway sends with the
// GW→EN keys and receives with the EN→GW keys.
import t from 'tap';
import { protocol } from '@gsra/common';
import { engineReservation } from '../src/data-plane-linux.ts';

const keys = protocol.deriveFlowKeys(Buffer.alloc(32, 1), 17, 5000, 3);
const row = (extra: Partial<protocol.Reservation> = {}): protocol.Reservation => ({
  id: 7,
  proto: 17,
  t: 5000,
  serial: 3,
  keys,
  sessionId: '0102030405060708',
  user: 'alice',
  userDn: 'uid=alice,ou=people,dc=corp',
  group: 'sales',
  inName: 'intra1.corp.example',
  pin: '10.0.0.11',
  en: { addr: '203.0.113.2', port: 61000 },
  expiresAt: 0,
  ...extra,
});

t.test('the gateway sends with the GW→EN keys and receives with the EN→GW keys', async (t) => {
  const e = engineReservation(row());
  t.equal(e.tx, keys.gwToEn);
  t.equal(e.rx, keys.enToGw);
});

t.test('the engine knows the reservation by its row id, with its proto number, t and PIN', async (t) => {
  t.match(engineReservation(row()), { id: 7, proto: 17, t: 5000, pin: '10.0.0.11', ports: undefined });
});

t.test('an FTP data reservation may reach only the announced port', async (t) => {
  t.same(engineReservation(row({ proto: 6, aliasPort: 50123 })).ports, [50123]);
});
