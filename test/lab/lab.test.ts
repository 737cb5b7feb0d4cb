// The lab is real: EN sits behind a real NAT, the LAN is private, real servers answer, and
// nothing is left behind afterwards, even when the run is interrupted.
import t from 'tap';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab, ADDR, labNamespaces, sweepStaleLabs } from './lab.ts';
import { startHttp, startFtp, startUdpEcho, udpProbe, makeRandomFile, sha256File } from './services.ts';

const here = dirname(fileURLToPath(import.meta.url));

/** True when pid no longer runs: no such process, or a zombie waiting for init to reap it. */
function processGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

t.test('a lab with a port-preserving home NAT', async (t) => {
  const lab = await Lab.create({ nat: 'preserving' });
  t.teardown(() => lab.destroy());

  await t.test('EN reaches the internet through the home NAT: the far side sees 203.0.113.2', async (t) => {
    await startHttp(lab, 'attacker', 8080);
    const r = await lab.exec('en1', [
      'curl',
      '-sS',
      '--max-time',
      '5',
      `http://${ADDR.attacker}:8080/whoami`,
    ]);
    t.equal(JSON.parse(r.stdout).address, ADDR.hrWan);
  });

  await t.test('EN cannot reach an internal address directly', async (t) => {
    await startHttp(lab, 'in1');
    const r = await lab.exec('en1', ['curl', '-sS', '--max-time', '2', `http://${ADDR.in1}/`], {
      allowFail: true,
    });
    t.not(r.code, 0, 'curl to 10.0.0.11 from EN must fail');
  });

  await t.test(
    'an attacker on the internet segment cannot route through the gateway to the LAN',
    async (t) => {
      await lab.exec('attacker', ['ip', 'route', 'add', '10.0.0.0/24', 'via', ADDR.gwWan]);
      const r = await lab.exec('attacker', ['curl', '-sS', '--max-time', '2', `http://${ADDR.in1}/`], {
        allowFail: true,
      });
      t.not(r.code, 0, 'the gateway must not forward internet traffic to a LAN address');
    },
  );

  await t.test("in1's HTTP works from inside the LAN", async (t) => {
    const r = await lab.exec('dir', ['curl', '-sS', '--max-time', '5', `http://${ADDR.in1}/`]);
    t.equal(r.stdout, '<h1>hello from in1</h1>\n');
  });

  await t.test("in1's passive FTP works from inside the LAN: lftp download, checksum matches", async (t) => {
    const ftp = await startFtp(lab, 'in1');
    const want = makeRandomFile(join(ftp.root, 'data.bin'), 3 * 1024 * 1024 + 17);
    const out = join(lab.dir, 'data.from-ftp');
    await lab.exec(
      'dir',
      ['lftp', '-e', `set ftp:passive-mode on; set net:max-retries 1; get data.bin -o ${out}; bye`, ftp.url],
      { timeoutMs: 20_000 },
    );
    t.equal(sha256File(out), want);
  });

  await t.test(
    'port-preserving NAT: one EN source port keeps its number towards two destinations',
    async (t) => {
      await startUdpEcho(lab, 'attacker', 9001);
      await startUdpEcho(lab, 'gw', 9002, ADDR.gwWan); // the gateway is a second host on the internet
      const replies = await udpProbe(lab, 'en1', 40000, [`${ADDR.attacker}:9001`, `${ADDR.gwWan}:9002`]);
      t.same(
        replies.map((r) => r.reply),
        [`probe from ${ADDR.hrWan}:40000`, `probe from ${ADDR.hrWan}:40000`],
      );
    },
  );
});

t.test('a symmetric home NAT gives one EN source port a different public port per destination', async (t) => {
  const lab = await Lab.create({ nat: 'symmetric' });
  t.teardown(() => lab.destroy());
  await startUdpEcho(lab, 'attacker', 9001);
  await startUdpEcho(lab, 'gw', 9002, ADDR.gwWan);
  const replies = await udpProbe(lab, 'en1', 40000, [`${ADDR.attacker}:9001`, `${ADDR.gwWan}:9002`]);
  const ports = replies.map((r) => {
    const m = /^probe from 203\.0\.113\.2:(\d+)$/.exec(r.reply ?? '');
    t.ok(m, `reply from ${r.to} names the home router's public address: ${r.reply}`);
    return Number(m?.[1]);
  });
  t.not(ports[0], ports[1], `public ports differ: ${ports.join(' vs ')}`);
});

t.test('teardown leaves no namespace behind', async (t) => {
  await t.test('after destroy()', async (t) => {
    const lab = await Lab.create();
    const names = lab.namespaces;
    t.equal(
      names.filter((n) => labNamespaces().includes(n)).length,
      names.length,
      'all namespaces exist while up',
    );
    await lab.destroy();
    t.same(
      names.filter((n) => labNamespaces().includes(n)),
      [],
    );
  });

  for (const sig of ['SIGTERM', 'SIGINT', 'SIGKILL'] as const) {
    await t.test(`after the process that built it gets ${sig}`, async (t) => {
      const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'hold-lab.ts')], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const line = await new Promise<string>((resolve, reject) => {
        let buf = '';
        child.stdout.on('data', (d: Buffer) => {
          buf += d.toString();
          if (buf.includes('\n')) resolve(buf.split('\n')[0]!);
        });
        child.on('exit', (c) => reject(new Error(`hold-lab exited early (${c})`)));
      });
      const { namespaces, httpPid } = JSON.parse(line) as { namespaces: string[]; httpPid: number };
      t.equal(namespaces.filter((n) => labNamespaces().includes(n)).length, namespaces.length);
      child.kill(sig);
      await new Promise((r) => child.once('exit', r));
      if (sig === 'SIGKILL') {
        // A SIGKILLed process cleans nothing: the next lab run sweeps what it left.
        const swept = sweepStaleLabs();
        t.same(swept.sort(), [...namespaces].sort(), 'the sweep removed exactly the dead run’s namespaces');
      }
      t.same(
        namespaces.filter((n) => labNamespaces().includes(n)),
        [],
      );
      t.ok(processGone(httpPid), 'the server the lab started is gone too');
    });
  }
});
