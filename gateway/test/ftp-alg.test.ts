// The FTP ALG on its own: what it does to each control-connection segment, and what it asks of
// the daemon (an alias per announced data port, once).
import t from 'tap';
import { Writable } from 'node:stream';
import { createLogger } from '@gsra/common';
import { ACTIVE_MODE_REFUSAL, FtpAlg } from '../src/ftp-alg.ts';

const CTRL = 40021;

function setup(opts: { vin?: string; refuse?: boolean } = {}) {
  const aliases: Array<[number, number]> = [];
  const logs: Record<string, unknown>[] = [];
  let now = 1_000_000;
  const alg = new FtpAlg({
    flow: (t) =>
      t === CTRL
        ? { user: 'alice', group: 'sales', inName: 'intra1.corp.example', vin: opts.vin }
        : undefined,
    alias: (ctrlT, port) => {
      aliases.push([ctrlT, port]);
      return !opts.refuse;
    },
    log: createLogger('gateway', {
      stream: new Writable({
        write(c: Buffer, _e, done) {
          logs.push(JSON.parse(c.toString()) as Record<string, unknown>);
          done();
        },
      }),
    }),
    now: () => now,
  });
  return { alg, aliases, logs, later: (ms: number) => (now += ms) };
}

const b = (s: string) => Buffer.from(s, 'latin1');

t.test('PASV: the address becomes the VIN, the data port is reserved first', async (t) => {
  const { alg, aliases } = setup({ vin: '198.19.230.117' });
  const out = alg.fromServer(CTRL, 1000, b('227 Entering Passive Mode (10,0,0,11,195,80).\r\n'));
  t.equal(out?.toString(), '227 Entering Passive Mode (198,19,230,117,195,80).\r\n');
  t.same(aliases, [[CTRL, 195 * 256 + 80]]);
});

t.test('a retransmitted reply gets the same bytes and no second reservation', async (t) => {
  const { alg, aliases } = setup({ vin: '198.19.230.117' });
  const seg = b('227 Entering Passive Mode (10,0,0,11,195,80).\r\n');
  const first = alg.fromServer(CTRL, 1000, seg);
  const again = alg.fromServer(CTRL, 1000, seg);
  t.same(again, first);
  t.equal(aliases.length, 1);
});

t.test('the same port announced again later (a new PASV) is reserved again', async (t) => {
  const { alg, aliases, later } = setup({ vin: '198.19.230.117' });
  alg.fromServer(CTRL, 1000, b('227 Entering Passive Mode (10,0,0,11,195,80).\r\n'));
  later(60_000);
  alg.fromServer(CTRL, 2000, b('227 Entering Passive Mode (10,0,0,11,195,80).\r\n'));
  t.equal(aliases.length, 2);
});

t.test('EPSV: the port is reserved, the reply passes unchanged', async (t) => {
  const { alg, aliases } = setup({ vin: '198.19.230.117' });
  t.equal(alg.fromServer(CTRL, 1, b('229 Entering Extended Passive Mode (|||50000|)\r\n')), undefined);
  t.same(aliases, [[CTRL, 50000]]);
});

t.test('other replies and half lines pass untouched, with nothing reserved', async (t) => {
  const { alg, aliases } = setup({ vin: '198.19.230.117' });
  t.equal(alg.fromServer(CTRL, 1, b('220 (vsFTPd 3.0.3)\r\n')), undefined);
  t.equal(
    alg.fromServer(CTRL, 2, b('227 Entering Passive Mode (10,0,0,11,195')),
    undefined,
    'incomplete line',
  );
  t.equal(alg.fromServer(CTRL, 3, b('227 Entering Passive Mode (10,0,0,311,195,80).\r\n')), undefined, '311');
  t.equal(alg.fromServer(CTRL, 4, b('227 Entering Passive Mode (10,0,0,11,0,0).\r\n')), undefined, 'port 0');
  t.same(aliases, []);
});

t.test(
  'no VIN from the agent, or the alias refused: the reply passes unchanged, and it is logged',
  async (t) => {
    const a = setup({});
    t.equal(a.alg.fromServer(CTRL, 1, b('227 Entering Passive Mode (10,0,0,11,195,80).\r\n')), undefined);
    t.match(a.logs, [{ message: /not rewritten/, user: 'alice', reason: 'no-vin' }]);
    const r = setup({ vin: '198.19.230.117', refuse: true });
    t.equal(r.alg.fromServer(CTRL, 1, b('227 Entering Passive Mode (10,0,0,11,195,80).\r\n')), undefined);
    t.match(r.logs, [{ message: /not reserved/, in: 'intra1.corp.example', aliasPort: 50000 }]);
  },
);

t.test(
  'active mode is refused: PORT becomes a NOOP of the same length, its answer a clear 502',
  async (t) => {
    const { alg, logs } = setup({ vin: '198.19.230.117' });
    const cmd = b('PORT 192,168,1,10,200,3\r\n');
    const noop = alg.fromClient(CTRL, 500, cmd)!;
    t.equal(noop.length, cmd.length);
    t.match(noop.toString(), /^NOOP +\r\n$/);
    t.same(alg.fromClient(CTRL, 500, cmd), noop, 'a retransmission is the same NOOP');
    t.equal(alg.fromServer(CTRL, 9000, b('200 NOOP ok.\r\n'))?.toString(), `${ACTIVE_MODE_REFUSAL}\r\n`);
    t.equal(
      alg.fromServer(CTRL, 9014, b('226 Transfer complete.\r\n')),
      undefined,
      'one refusal, one answer',
    );
    t.match(logs, [{ message: /active FTP refused/, user: 'alice', command: 'PORT', reason: 'active-ftp' }]);
    t.match(alg.fromClient(CTRL, 600, b('eprt |1|192.168.1.10|51000|\r\n'))?.toString(), /^NOOP +\r\n$/);
    t.equal(alg.fromClient(CTRL, 700, b('PASV\r\n')), undefined, 'other commands pass');
  },
);

t.test('a retransmission coalesced with the next reply keeps the bytes decided for the first', async (t) => {
  const { alg, aliases } = setup({ vin: '198.19.230.117' });
  alg.fromClient(CTRL, 500, b('PORT 192,168,1,10,200,1\r\n'));
  const answer = b('200 PORT command successful.\r\n');
  const first = alg.fromServer(CTRL, 1000, answer)!;
  t.equal(first.toString(), ACTIVE_MODE_REFUSAL + '\r\n', 'the answer to PORT is replaced');
  // The server retransmits its answer together with the next reply, a PASV.
  const pasv = '227 Entering Passive Mode (10,0,0,11,195,80).\r\n';
  const coalesced = alg.fromServer(CTRL, 1000, b(answer.toString() + pasv))!;
  t.equal(
    coalesced.toString(),
    ACTIVE_MODE_REFUSAL + '\r\n' + '227 Entering Passive Mode (198,19,230,117,195,80).\r\n',
    'the repeated line gets the same replacement (no refusal counted twice), the new one is decided',
  );
  t.same(aliases, [[CTRL, 195 * 256 + 80]]);
  const split = alg.fromServer(CTRL, 1000 + answer.length, b(pasv));
  t.equal(
    split?.toString(),
    '227 Entering Passive Mode (198,19,230,117,195,80).\r\n',
    'and alone, later, the same again',
  );
  t.same(aliases, [[CTRL, 195 * 256 + 80]], 'reserved once');
});
