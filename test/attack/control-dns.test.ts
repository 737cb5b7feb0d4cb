// DNS punts (issue 11, item 4) and the PC while its agent is down (issue 14, item 5):
// - forged answers from the attacker's namespace, spoofed from the resolver to the port of a
//   query alice's PC really has outstanding: every id but the real one for the queried name, and
//   every id for another internal name. None is acted on: no VIN handed out, no RESERVE sent.
// - the agent killed (kill -9: its kernel rules stay): DNS for a name outside the zones and ping
//   to the internet segment work; an internal name gets no answer (never GGR in clear); traffic
//   to a VIN still never leaves untranslated.
import t from 'tap';
import { ADDR } from '../lab/lab.ts';
import { waitFor } from '../lab/exec.ts';
import { IN1, IN2 } from '../e2e/gsra-lab.ts';
import { startCapture } from '../lab/services.ts';
import { attack, controlLab, lines, TOOL } from './control-lab.ts';

const REAL_ID = 0x2b2b;
const QUERY_PORT = 53535;

t.test('DNS answers and a PC whose agent is down', async (t) => {
  const g = await controlLab();
  t.teardown(() => g.stop());
  const alice = g.agents.en1!;
  const reserves = (name: string) =>
    g.logLines(g.gatewayLog).filter((l) => l.step === 'reserve' && l.in === name).length;

  await t.test('forged answers to a query alice’s PC has outstanding cost nothing', async (t) => {
    // The real answer never arrives (dropped at the gateway), so only forgeries could.
    const drop = [
      'OUTPUT',
      '-p',
      'udp',
      '--sport',
      '53',
      '-d',
      ADDR.hrWan,
      '--dport',
      String(QUERY_PORT),
      '-j',
      'DROP',
    ];
    await g.lab.exec('gw', ['iptables', '-I', ...drop]);
    t.teardown(() => g.lab.exec('gw', ['iptables', '-D', ...drop], { allowFail: true }));
    const query = g.lab.exec(
      'en1',
      ['python3', TOOL, 'dns-query', ADDR.gwWan, String(QUERY_PORT), String(REAL_ID), IN2, '8'],
      { timeoutMs: 20_000 },
    );
    await waitFor(
      'the query to be seen by the agent',
      async () => (await alice.status()).dns.pending > 0,
      5000,
      50,
    );
    const forged = await attack(g, [
      'dns-forge',
      ADDR.gwWan,
      ADDR.hrWan,
      String(QUERY_PORT),
      String(REAL_ID),
      IN2,
      IN1,
      ADDR.gwWan,
    ]);
    t.equal(forged.sent, 131071, 'every id but the real one for intra2, every id for intra1');
    const answer = JSON.parse((await query).stdout.trim().split('\n').at(-1)!);
    t.equal(answer.answer, null, 'the application got none of them');
    const st = await alice.status();
    t.notOk(
      st.vins.some((v) => v.name === IN1 || v.name === IN2),
      `no VIN handed out (${st.vins.map((v) => v.name).join(', ') || 'none'})`,
    );
    const refused = Object.values(st.dns.refused).reduce((a, b) => a + b, 0);
    t.ok(refused > 0, `the agent dropped ${refused} forged answers: ${JSON.stringify(st.dns.refused)}`);
    t.equal(reserves(IN1) + reserves(IN2), 0, 'no RESERVE reached the gateway');
    t.ok(
      lines(g, alice.logFile, 'DNS answer dropped: it answers no query this PC sent (forged, or late)')
        .length <= 6,
      'a few log lines, not one per forged answer',
    );
  });

  await t.test('a real answer still works: intra1 gets its VIN and a connection', async (t) => {
    const r = await g.lab.exec('en1', ['curl', '-sS', '-m', '10', `http://${IN1}/`]);
    t.equal(r.stdout, '<h1>hello from in1</h1>\n');
  });

  await t.test('with the agent killed', async (t) => {
    const vin = (await g.lab.exec('en1', ['getent', 'hosts', IN1])).stdout.split(/\s+/)[0]!;
    t.match(vin, /^198\.19\./, `intra1 is ${vin}`);
    const resolver = g.lab.spawn('attacker', 'resolver', ['python3', TOOL, 'dns-serve', ADDR.attacker, '60']);
    await waitFor('the internet resolver', () => resolver.log.includes('listening'), 5000);
    await g.lab.stop(alice.proc); // SIGTERM would clean up: kill -9 below instead, on a fresh agent
    await g.startAgent('en1', 'alice', { skipLogin: true });
    const pid = g.agents.en1!.proc.child.pid!;
    process.kill(pid, 'SIGKILL');
    await g.agents.en1!.proc.wait();
    const rules = (await g.lab.exec('en1', ['iptables-save'])).stdout;
    t.match(rules, /gsra:agent/, 'the killed agent’s rules are still in place');

    const dig = (server: string, name: string) =>
      g.lab.exec('en1', ['dig', '+time=2', '+tries=1', `@${server}`, name], { allowFail: true });
    const other = await dig(ADDR.attacker, 'www.example.net');
    t.match(other.stdout, /status: NOERROR/, 'a name outside the zones, from another resolver: answered');
    t.match(
      other.stdout,
      new RegExp(`www\\.example\\.net\\.\\s+\\d+\\s+IN\\s+A\\s+${ADDR.attacker.replace(/\./g, '\\.')}`),
    );
    const refused = await dig(ADDR.gwWan, 'www.example.net');
    t.match(
      refused.stdout,
      /status: REFUSED/,
      'a name outside the zones, from the configured resolver: answered',
    );
    const ping = await g.lab.exec('en1', ['ping', '-c', '2', '-W', '2', ADDR.attacker], { allowFail: true });
    t.equal(ping.code, 0, 'ping to the internet segment works');
    const internal = await dig(ADDR.gwWan, IN2);
    t.match(
      internal.stdout,
      /timed out|no servers could be reached/,
      'an internal name gets no answer (never GGR in clear)',
    );

    const cap = await startCapture(g.lab, 'home', 'br0', ['net', '198.19.224.0/20', 'or', 'port', '80']);
    const r = await g.lab.exec('en1', ['curl', '-sS', '-m', '3', `http://${vin}/`], { allowFail: true });
    t.not(r.code, 0, 'a connection to the VIN fails');
    const seen = await cap.stop();
    t.equal(seen.length, 0, 'and nothing of it left the PC');
  });
});
