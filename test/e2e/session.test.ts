// A real GSRA session end to end, behind a port-preserving and behind a symmetric home NAT:
// unmodified clients on the teleworker PCs reach private servers by name, through the NAT,
// encrypted and authenticated, with access decided by LDAP groups.
import t from 'tap';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { ADDR } from '../lab/lab.ts';
import { waitFor } from '../lab/exec.ts';
import { makeRandomFile, sha256File, startCapture, startUdpEcho, udpProbe } from '../lab/services.ts';
import { startGsraLab, IN1, IN2 } from './gsra-lab.ts';
import {
  TCP_MAC_OVERHEAD,
  busiestFlowData,
  countPlaintext,
  gsraTcpPackets,
  hasMacOption,
  needlesOf,
  tcpHeaderLength,
} from './wire.ts';

/** Whether a line matching pred reaches a daemon's log file within ms (log lines come through a pipe). */
async function logShows(
  g: { logLines(file: string): Record<string, unknown>[] },
  file: string,
  pred: (l: Record<string, unknown>) => boolean,
  ms = 3000,
): Promise<boolean> {
  return waitFor('a log line', () => g.logLines(file).some(pred), ms).then(
    () => true,
    () => false,
  );
}

for (const nat of ['preserving', 'symmetric'] as const) {
  t.test(`GSRA session behind a ${nat} home NAT`, async (t) => {
    const g = await startGsraLab({
      nat,
      ens: 2,
      control: { keepaliveSec: 1, mappingLifetimeSec: 3, sessionIdleSec: 10 },
    });
    t.teardown(() => g.stop());
    const alice = await g.startAgent('en1', 'alice');
    const lab = g.lab;

    await t.test('curl http://intra1.corp.example/ succeeds from alice’s PC (sales)', async (t) => {
      const r = await lab.exec('en1', ['curl', '-sS', '-m', '10', `http://${IN1}/`]);
      t.equal(r.stdout, '<h1>hello from in1</h1>\n');
      const who = JSON.parse(
        (await lab.exec('en1', ['curl', '-sS', '-m', '10', `http://${IN1}/whoami`])).stdout,
      );
      t.equal(who.address, ADDR.gwLan, 'intra1 sees the gateway (PGR) as its peer');
      t.notOk(
        g.logLines(alice.logFile).some((l) => l.message === 'session down'),
        'alice’s first login needed no retry (the gateway’s directory look-up answered at once)',
      );
    });

    await t.test('the gateway and the agent run on the suite’s own Node runtime (≥ 22)', async (t) => {
      const gw = g.logLines(g.gatewayLog).find((l) => l.message === 'gateway started');
      const agent = g.logLines(alice.logFile).find((l) => l.message === 'agent started');
      t.equal(gw?.node, process.version, 'gsra-gateway, started as `node …` in the gateway’s namespace');
      t.equal(agent?.node, process.version, 'gsra-agent, started as `node …` in alice’s PC namespace');
      t.ok(Number(process.versions.node.split('.')[0]) >= 22, `the suite runs on ${process.version}`);
    });

    await t.test('the application sees a VIN, never the gateway’s address', async (t) => {
      const r = await lab.exec('en1', ['getent', 'hosts', IN1]);
      const vin = r.stdout.split(/\s+/)[0]!;
      t.match(vin, /^198\.19\.(22[4-9]|23\d)\.\d+$/, 'inside the default VIN range 198.19.224.0/20');
      const st = await alice.status();
      t.same(st.vins.find((v) => v.name === IN1)?.vin, vin);
    });

    await t.test(
      'a later connection to intra1 leaves on a pooled port the engine takes itself, nothing held for the daemon',
      async (t) => {
        const started = () =>
          g.logLines(alice.logFile).filter((l) => l.message === 'flow started' && l.in === IN1).length;
        const before = (await alice.status()).engine;
        const flows = started();
        const r = await lab.exec('en1', ['curl', '-sS', '-m', '10', `http://${IN1}/`]);
        t.equal(r.stdout, '<h1>hello from in1</h1>\n');
        const after = (await alice.status()).engine;
        t.equal(after.poolTaken! - before.poolTaken!, 1, 'the SYN took a pooled port in the engine');
        t.equal(after.held, before.held, 'no packet was held for the daemon');
        t.equal(after.heldReleased, before.heldReleased, 'nothing released by an installed VAT entry');
        t.ok(
          await waitFor('the flow recorded', () => started() === flows + 1, 3000).then(
            () => true,
            () => false,
          ),
          'the daemon recorded the flow afterwards',
        );
      },
    );

    await t.test(
      'curl http://intra2.corp.example/ is refused within a second, with the reason',
      async (t) => {
        const t0 = Date.now();
        const r = await lab.exec('en1', ['curl', '-sS', '-m', '10', `http://${IN2}/`], { allowFail: true });
        const ms = Date.now() - t0;
        t.not(r.code, 0);
        t.ok(ms < 1000, `refused after ${ms} ms`);
        t.match(r.stderr, /Couldn't connect|Connection refused/);
        t.ok(
          await logShows(
            g,
            alice.logFile,
            (l) =>
              l.message === 'alice is not in a group that may reach intra2.corp.example' &&
              l.reason === 'not-in-group',
          ),
          'the agent logs why',
        );
        t.ok(
          await logShows(
            g,
            g.gatewayLog,
            (l) =>
              l.message === 'access refused' &&
              l.user === 'alice' &&
              l.in === IN2 &&
              l.reason === 'not-in-group',
          ),
          'the gateway logs the decision with user, group, IN and reason',
        );
      },
    );

    await t.test(
      'lftp lists and downloads over passive FTP; sha256 matches; nothing crosses the internet in clear',
      async (t) => {
        const want = makeRandomFile(join(g.ftp.root, 'report.bin'), 4 * 1024 * 1024);
        const file = readFileSync(join(g.ftp.root, 'report.bin'));
        const needles = needlesOf(file);
        const inet = await startCapture(lab, 'inet', 'br0', ['tcp']);
        const lan = await startCapture(lab, 'lan', 'br0', ['tcp', 'and', 'host', ADDR.in1]);
        const out = join(lab.dir, 'report.from-ftp');
        const r = await lab.exec(
          'en1',
          [
            'lftp',
            '-e',
            `set net:max-retries 2; set net:timeout 10; ls; get report.bin -o ${out}; bye`,
            `ftp://${IN1}/`,
          ],
          {
            timeoutMs: 60_000,
          },
        );
        t.match(r.stdout, /report\.bin/, 'the listing names the file');
        t.equal(sha256File(out), want, 'sha256 matches');
        const inetPkts = await inet.stop();
        const lanPkts = await lan.stop();
        const inetData = busiestFlowData(inetPkts, ADDR.gwWan);
        const lanData = busiestFlowData(lanPkts, ADDR.in1);
        const carried = inetData.reduce((n, p) => n + p.payload.length, 0);
        t.ok(carried >= file.length, `the internet capture is complete: ${carried} bytes of ${file.length}`);
        t.ok(
          countPlaintext(lanPkts, needles) >= needles.length * 0.9,
          'control: the file’s bytes are visible on the office LAN',
        );
        t.equal(countPlaintext(inetPkts, needles), 0, 'none of the file’s bytes cross the internet in clear');
        // Every TCP packet between the home router and the gateway carries the MAC option.
        const gsra = gsraTcpPackets(inetPkts, ADDR.gwWan);
        t.equal(
          gsra.filter(hasMacOption).length,
          gsra.length,
          `all ${gsra.length} TCP packets on the internet link are authenticated (kind 253, ExID GS)`,
        );
        // Data packets are a plain packet plus exactly the MAC option: the TCP header of a plain data
        // segment on the LAN is 32 bytes (with timestamps), on the internet 32 + 16; nothing else grows.
        t.same(
          [...new Set(lanData.map(tcpHeaderLength))],
          [32],
          'plain data segments on the LAN: 32-byte TCP header',
        );
        t.same(
          [...new Set(inetData.map(tcpHeaderLength))],
          [32 + TCP_MAC_OVERHEAD],
          `on the internet: 32 + ${TCP_MAC_OVERHEAD}`,
        );
        t.ok(
          inetData.every((p) => p.length === 20 + 32 + TCP_MAC_OVERHEAD + p.payload.length),
          'payload length unchanged',
        );
        t.ok(
          Math.max(...inetData.map((p) => p.length)) <= 1500,
          'every packet fits the 1500-byte MTU (MSS clamped on the SYN)',
        );
      },
    );

    await t.test(
      'FTP ALG: a client that trusts the PASV address gets the VIN and its data port reserved in advance',
      async (t) => {
        const want = makeRandomFile(join(g.ftp.root, 'pasv.bin'), 1024 * 1024);
        const out = join(lab.dir, 'pasv.out');
        // curl with EPSV off and the PASV address trusted: without the ALG it would dial 10.0.0.11.
        const r = await lab.exec(
          'en1',
          [
            'curl',
            '-sS',
            '-v',
            '-m',
            '30',
            '--disable-epsv',
            '--no-ftp-skip-pasv-ip',
            '-o',
            out,
            `ftp://${IN1}/pasv.bin`,
          ],
          { timeoutMs: 40_000 },
        );
        t.equal(sha256File(out), want, 'sha256 matches');
        const vin = (await alice.status()).vins.find((v) => v.name === IN1)!.vin;
        t.match(
          r.stderr,
          new RegExp(`< 227 Entering Passive Mode \\(${vin.replace(/\./g, ',')},\\d+,\\d+\\)`),
          `the reply names the VIN ${vin}, not the server’s private address`,
        );
        t.ok(
          await logShows(
            g,
            g.gatewayLog,
            (l) => l.step === 'ftp-alias' && l.user === 'alice' && l.decision === 'allow',
          ),
          'the gateway reserved the data port (decision logged)',
        );
        t.ok(
          await logShows(g, alice.logFile, (l) => l.message === 'flow started' && l.ftp === 'data'),
          'the agent used the reserved port for the data connection',
        );
      },
    );

    await t.test('FTP active mode is refused with a clear message', async (t) => {
      const r = await lab.exec(
        'en1',
        ['curl', '-sS', '-v', '-m', '15', '-P', ADDR.en1, '-o', '/dev/null', `ftp://${IN1}/pasv.bin`],
        { allowFail: true, timeoutMs: 25_000 },
      );
      t.not(r.code, 0, 'the transfer fails');
      t.match(r.stderr, /< 502 GSRA: active FTP \(PORT\/EPRT\) is not available; use passive mode/);
      t.ok(
        g
          .logLines(g.gatewayLog)
          .some(
            (l) => l.message === 'active FTP refused: the client must use passive mode' && l.user === 'alice',
          ),
        'and the gateway logs it with the user',
      );
    });

    await t.test('UDP to an internal host works (datagram echoed by intra1)', async (t) => {
      await startUdpEcho(lab, 'in1', 9000);
      const vin = (await lab.exec('en1', ['getent', 'hosts', IN1])).stdout.split(/\s+/)[0]!;
      const r = await udpProbe(lab, 'en1', 41000, [`${vin}:9000`]);
      t.match(r[0]!.reply, new RegExp(`^probe from ${ADDR.gwLan.replace(/\./g, '\\.')}:\\d+$`));
    });

    await t.test('a large download (200 MB) arrives intact', async (t) => {
      const want = makeRandomFile(join(g.web1.root, 'big.bin'), 200 * 1024 * 1024);
      const out = join(lab.dir, 'big.out');
      const t0 = Date.now();
      await lab.exec('en1', ['curl', '-sS', '-m', '120', '-o', out, `http://${IN1}/big.bin`], {
        timeoutMs: 130_000,
      });
      const secs = (Date.now() - t0) / 1000;
      t.equal(
        sha256File(out),
        want,
        `sha256 matches (${((200 * 8 * 1.048576) / secs).toFixed(0)} Mbit/s, information only)`,
      );
    });

    await t.test(
      'a flow lives through several mapping renewals (mapping lifetime 3 s, flow 8 s)',
      async (t) => {
        const want = makeRandomFile(join(g.web1.root, 'slow.bin'), 800 * 1024);
        const out = join(lab.dir, 'slow.out');
        const before = g.logLines(g.gatewayLog).filter((l) => l.message === 'flow mapped').length;
        await lab.exec(
          'en1',
          ['curl', '-sS', '-m', '30', '--limit-rate', '100K', '-o', out, `http://${IN1}/slow.bin`],
          { timeoutMs: 40_000 },
        );
        t.equal(sha256File(out), want);
        t.equal(
          g.logLines(g.gatewayLog).filter((l) => l.message === 'flow mapped').length,
          before + 1,
          'one mapping, renewed, never re-made',
        );
      },
    );

    await t.test('a second teleworker behind the same home NAT: bob (dev) opens SSH to intra2', async (t) => {
      await g.startAgent('en2', 'bob');
      const r = await lab.exec(
        'en2',
        ['ssh', ...g.ssh.clientArgs, `root@${IN2}`, 'echo', 'hello-from-$(hostname -I)'],
        { timeoutMs: 30_000 },
      );
      t.match(r.stdout, /hello-from-10\.0\.0\.12/);
      const r2 = await lab.exec('en2', ['curl', '-sS', '-m', '5', `http://${IN1}/`], { allowFail: true });
      t.not(r2.code, 0, 'bob cannot reach intra1 (sales)');
      const again = await lab.exec('en1', ['curl', '-sS', '-m', '10', `http://${IN1}/`]);
      t.equal(again.stdout, '<h1>hello from in1</h1>\n', 'alice keeps working at the same time');
    });

    await t.test('gsra-agent status shows user, groups, VINs and flows with bytes', async (t) => {
      const text = await alice.statusText();
      t.match(text, /user:\s+alice/);
      t.match(text, /sales \(session up\)/);
      t.match(text, new RegExp(`198\\.19\\.\\d+\\.\\d+\\s+${IN1.replace(/\./g, '\\.')}`));
      t.match(text, /tcp intra1\.corp\.example:80 via 198\.19\.\d+\.\d+ .* in [1-9]\d* B/);
    });

    await t.test(
      'an attacker’s forged datagrams to a reserved port are dropped and counted, never forwarded',
      async (t) => {
        const gwStatus = async () =>
          JSON.parse((await lab.exec('gw', ['curl', '-sf', 'http://127.0.0.1:9464/status'])).stdout);
        const st = await gwStatus();
        const udp = st.flows.find((f: { proto: string; ghr: string | null }) => f.proto === 'udp' && f.ghr);
        t.ok(udp, 'a bound UDP flow to aim at');
        const lan = await startCapture(lab, 'lan', 'br0', [
          'udp',
          'and',
          'host',
          ADDR.in1,
          'and',
          'port',
          '9000',
        ]);
        const replies = await udpProbe(lab, 'attacker', 41000, [`${ADDR.gwWan}:${udp.t}`]);
        t.same(replies[0]!.reply, null, 'no answer');
        const seen = await lan.stop();
        t.equal(seen.length, 0, 'nothing reached intra1');
        const after = await gwStatus();
        const drops = (e: { counters: { dropped: number; verifyFailed: number; wrongSource: number } }) =>
          e.counters.dropped + e.counters.verifyFailed + e.counters.wrongSource;
        t.ok(
          drops(after.engine) > drops(st.engine),
          `the engine counted the drop (${drops(after.engine) - drops(st.engine)})`,
        );
      },
    );
    await t.test(
      'a killed gateway fails closed, and the agent goes on with its session when it returns',
      async (t) => {
        const aliceSessions = () =>
          g.logLines(g.gatewayLog).filter((l) => l.message === 'session up' && l.user === 'alice').length;
        const before = aliceSessions();
        await g.killGateway();
        const r = await lab.exec('en1', ['curl', '-sS', '-m', '3', `http://${IN1}/`], { allowFail: true });
        t.not(
          r.code,
          0,
          'no connection while the gateway is down (its kernel rules drop, nothing passes untranslated)',
        );
        await new Promise((res) => setTimeout(res, 2000)); // keepalives go unanswered meanwhile
        await g.startGateway();
        let again = { code: 1 as number | null, stdout: '' };
        for (let i = 0; i < 20 && again.code !== 0; i++) {
          again = await lab.exec('en1', ['curl', '-sS', '-m', '3', `http://${IN1}/`], { allowFail: true });
          if (again.code !== 0) await new Promise((res) => setTimeout(res, 500));
        }
        t.equal(
          again.stdout,
          '<h1>hello from in1</h1>\n',
          'a new connection works without anyone touching the agent',
        );
        t.equal(aliceSessions(), before, 'on the session the restarted gateway restored: no new login');
        t.ok(
          (await alice.status()).groups.every((x) => x.session === 'up'),
          'alice’s session reads up',
        );
      },
    );
  });
}
