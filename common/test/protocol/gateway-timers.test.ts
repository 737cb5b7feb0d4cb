// GatewayControl.nextDeadline() (kept in Deadlines, not found by walking every session): it must
// name exactly the next time poll() has something to do, as the walk did.
import t from 'tap';
import { login, setup, T0 } from './harness.ts';

const IN1 = 'intra1.corp.example';

t.test(
  'the next deadline follows a retransmission, its ACK, the idle time and the end of the session',
  async (t) => {
    const { agent, gw, wire } = setup();
    t.equal(gw.nextDeadline(), null, 'nothing held: no deadline');
    login(wire);
    wire.run(agent.reserve(IN1, 6, T0), T0);
    // T0 is on a minute: the cached AUTH_OK, the epoch key, the session's idle time and the
    // unused reservations all end 120 s later
    t.equal(gw.nextDeadline(), T0 + 120_000);

    const p = agent.takePort(IN1, 6, T0).port!;
    let dropAcks = true;
    wire.lose = (dir, d) => dropAcks && dir === 'up' && d[3] === 0x1f;
    wire.fromGateway(
      gw.onInbandBinding({ proto: 6, t: p.t, ghr: '203.0.113.2', m: 1000, d: 443 }, T0 + 10),
      T0 + 10,
    );
    t.equal(gw.nextDeadline(), T0 + 260, 'BOUND unanswered: its retransmission is next');
    const again = gw.poll(T0 + 260);
    t.equal(again.send.length, 1, 'retransmitted then');
    t.equal(gw.nextDeadline(), T0 + 760, 'the next retransmission, 500 ms later');
    dropAcks = false;
    wire.fromGateway(again, T0 + 300);
    t.equal(gw.nextDeadline(), T0 + 120_000, 'ACKed: back to the cached AUTH_OK and the epoch key');

    const unused = gw.poll(T0 + 120_000).events.flatMap((e) => (e.kind === 'reservation-ended' ? [e.t] : []));
    t.equal(unused.length, 3, 'the three unused pooled ports end at their lifetime');
    t.notOk(unused.includes(p.t), 'the mapped one lives on');
    // the ACK at T0 + 300 was the session's last message
    t.equal(gw.nextDeadline(), T0 + 120_300, 'the session idles out 120 s after its last message');
    const end = gw.poll(T0 + 120_300);
    t.same(
      end.events
        .filter((e) => e.kind === 'session-down' || e.kind === 'reservation-ended')
        .map((e) => e.kind),
      ['reservation-ended', 'session-down'],
      'the mapped row ends with its session',
    );
    t.equal(gw.nextDeadline(), null, 'nothing left');
    t.match(gw.stats(), { sessions: 0, reservations: 0, authCache: 0, ephemeralKeys: 0 });
  },
);

t.test('KEEPALIVE moves every row of the session and the idle time', async (t) => {
  const { agent, gw, wire } = setup();
  login(wire);
  wire.run(agent.reserve(IN1, 6, T0), T0);
  gw.poll(T0 + 120_000 - 1);
  const ka = agent.poll(T0 + 25_000); // the agent's keepalive is due every 25 s
  wire.run(ka, T0 + 25_000);
  t.equal(gw.stats().reservations, 4, 'the four pooled ports are still held');
  gw.poll(T0 + 120_000); // the handshake's cache and key
  t.equal(gw.nextDeadline(), T0 + 145_000, 'rows and idle time renewed from the KEEPALIVE');
});
