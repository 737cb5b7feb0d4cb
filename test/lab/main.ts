// `npm run lab`: the product's main job. Builds the lab, starts the directory, the gateway and the
// agent (alice, sales) and shows, with real unmodified clients, what GSRA does. Exits non-zero if
// any step fails. `npm run lab -- --symmetric` puts EN behind a symmetric NAT; `npm run lab -- --ad`
// makes the office directory a Samba AD DC instead of slapd.
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { ADDR } from './lab.ts';
import { waitFor } from './exec.ts';
import { Narrative } from './narrative.ts';
import { makeRandomFile, sha256File, startCapture } from './services.ts';
import type { IpPacket } from './pcap.ts';
import { startGsraLab, IN1, IN2, type AgentHandle, type GsraLab } from '../e2e/gsra-lab.ts';
import { flushHomeRouter, startDownload, startPaced, type StreamResult } from '../e2e/roaming-lab.ts';
import {
  TCP_MAC_OVERHEAD,
  busiestFlowData,
  countPlaintext,
  gsraTcpPackets,
  hasMacOption,
  needlesOf,
  tcpHeaderLength,
} from '../e2e/wire.ts';

const nat = process.argv.includes('--symmetric') ? 'symmetric' : 'preserving';
const directory = process.argv.includes('--ad') ? 'ad' : 'openldap';
const dirName = directory === 'ad' ? 'Samba AD DC' : 'slapd';
const story = new Narrative();
const expect = Narrative.expect;

story.say(`GSRA lab: a teleworker reaches the office LAN through a ${nat} home NAT, no tunnel.\n`);
let g: GsraLab | undefined;
let alice: AgentHandle | undefined;
try {
  await story.step(`build the lab, start the directory (${dirName}, LDAPS) and the gateway`, async () => {
    g = await startGsraLab({ nat, directory });
    return `${g.lab.namespaces.length} namespaces; demo directory: alice in sales (intra1), bob in dev (intra2)`;
  });
  if (!g) throw new Error('no lab');
  const lab = g.lab;
  const login = directory === 'ad' ? 'CORP\\alice' : 'alice';
  await story.step(
    `alice logs in on her PC (en1) as ${login} and the agent connects to the gateway`,
    async () => {
      alice = await g!.startAgent('en1', 'alice', { login });
      const s = await alice.status();
      return `user ${s.user}; groups: ${s.groups.map((x) => `${x.name} (session ${x.session})`).join(', ')}`;
    },
  );
  await story.step(
    `curl http://${IN1}/ — an unmodified client reaches a private server by name`,
    async () => {
      const r = await lab.exec('en1', ['curl', '-sS', '-m', '10', `http://${IN1}/`]);
      expect(r.stdout.includes('hello from in1'), `unexpected answer: ${r.stdout}`);
      const vin = (await lab.exec('en1', ['getent', 'hosts', IN1])).stdout.split(/\s+/)[0];
      return `"${r.stdout.trim()}" — the name resolved to VIN ${vin}`;
    },
  );
  let needles: Buffer[] = [];
  let capture: { inetPkts: IpPacket[]; lanPkts: IpPacket[] } | undefined;
  await story.step(`lftp: list and download a file from ${IN1} over passive FTP`, async () => {
    const want = makeRandomFile(join(g!.ftp.root, 'quarterly.bin'), 4 * 1024 * 1024);
    needles = needlesOf(readFileSync(join(g!.ftp.root, 'quarterly.bin')));
    const inet = await startCapture(lab, 'inet', 'br0', ['tcp']);
    const lan = await startCapture(lab, 'lan', 'br0', ['tcp', 'and', 'host', ADDR.in1]);
    const out = join(lab.dir, 'quarterly.bin');
    const r = await lab.exec(
      'en1',
      [
        'lftp',
        '-e',
        // PASV, and its address taken literally: the gateway's FTP ALG must rewrite it to the VIN
        `set net:max-retries 2; set ftp:prefer-epsv no; set ftp:fix-pasv-address no; ls; get quarterly.bin -o ${out}; bye`,
        `ftp://${IN1}/`,
      ],
      {
        timeoutMs: 60_000,
      },
    );
    expect(/quarterly\.bin/.test(r.stdout), 'the listing does not show the file');
    const got = sha256File(out);
    expect(got === want, 'sha256 mismatch');
    const [inetPkts, lanPkts] = [await inet.stop(), await lan.stop()];
    capture = { inetPkts, lanPkts };
    // The gateway's log lines reach its file through a pipe: wait for them (bounded).
    const aliasLines = () =>
      g!.logLines(g!.gatewayLog).filter((l) => l.step === 'ftp-alias' && l.decision === 'allow');
    await waitFor('the FTP ALG decisions in the gateway log', () => aliasLines().length >= 2, 3000).catch(
      () => {},
    );
    const aliases = aliasLines();
    expect(aliases.length >= 2, 'the gateway’s FTP ALG reserved no data port');
    return `4 MiB, sha256 ${got.slice(0, 16)}… matches; the gateway’s FTP ALG rewrote ${aliases.length} PASV replies to the VIN and reserved each data port in advance`;
  });
  await story.step(
    'the internet link (captured with tcpdump) carries none of that file in clear',
    async () => {
      const { inetPkts, lanPkts } = capture!;
      const onLan = countPlaintext(lanPkts, needles);
      const onInet = countPlaintext(inetPkts, needles);
      expect(onLan >= needles.length * 0.9, `control failed: only ${onLan} samples visible on the LAN`);
      expect(onInet === 0, `${onInet} samples of the file seen in clear on the internet`);
      const gsra = gsraTcpPackets(inetPkts, ADDR.gwWan);
      const authed = gsra.filter(hasMacOption).length;
      expect(authed === gsra.length, `${gsra.length - authed} TCP packets without the MAC option`);
      return `${onLan}/${needles.length} samples visible on the office LAN, 0 on the internet; all ${gsra.length} TCP packets carry the MAC`;
    },
  );
  await story.step('data packets are the plain size plus exactly the documented MAC overhead', async () => {
    const { inetPkts, lanPkts } = capture!;
    const inetData = busiestFlowData(inetPkts, ADDR.gwWan);
    const lanData = busiestFlowData(lanPkts, ADDR.in1);
    const plain = [...new Set(lanData.map(tcpHeaderLength))];
    const wire = [...new Set(inetData.map(tcpHeaderLength))];
    expect(
      plain.length === 1 && wire.length === 1 && wire[0] === plain[0]! + TCP_MAC_OVERHEAD,
      `headers ${plain} vs ${wire}`,
    );
    const max = Math.max(...inetData.map((p) => p.length));
    expect(max <= 1500, `a packet of ${max} B exceeds the MTU`);
    return `TCP header ${plain[0]} B on the LAN, ${wire[0]} B on the internet (+${TCP_MAC_OVERHEAD}); payload length unchanged; largest packet ${max} B`;
  });
  await story.step(
    `curl http://${IN2}/ — alice is not in dev: refused at once, with the reason`,
    async () => {
      const t0 = Date.now();
      const r = await lab.exec('en1', ['curl', '-sS', '-m', '10', `http://${IN2}/`], { allowFail: true });
      const ms = Date.now() - t0;
      expect(r.code !== 0, 'curl succeeded');
      expect(ms < 1000, `took ${ms} ms`);
      const line = g!.logLines(alice!.logFile).find((l) => l.reason === 'not-in-group' && l.in === IN2);
      expect(line, 'no log line with the reason');
      return `refused after ${ms} ms; agent log: "${line!.message}"`;
    },
  );
  let download: Promise<StreamResult> | undefined;
  let flushAt = 0;
  let wantStream = '';
  await story.step(
    `a long download from ${IN1} is running; the home router loses every mapping (conntrack -F)`,
    async () => {
      wantStream = makeRandomFile(join(lab.dir, 'stream.bin'), 8 * 1024 * 1024);
      await startPaced(g!, 9100, join(lab.dir, 'stream.bin'), false);
      const d = startDownload(g!, 9100, 'request');
      download = d.result;
      await d.reached('receiving');
      await new Promise((r) => setTimeout(r, 500));
      const f = await flushHomeRouter(g!);
      flushAt = f.at;
      return `flushed half a second after the first 256 KiB of an 8 MiB download at 2.5 MB/s: "${f.message.replace(/^conntrack v[\d.]+ \(conntrack-tools\): /, '')}" — the home router now maps alice's packets anew (${nat === 'symmetric' ? 'to a new public port' : 'to the same port if it is free'}) and the gateway's packets for the old mapping are lost`;
    },
  );
  await story.step(
    'the download finishes intact: the gateway followed the flow to its new mapping',
    async () => {
      const r = await download!;
      expect(r.how === 'end' && r.firstAt < flushAt && flushAt < r.lastAt, `download ${r.how}`);
      expect(r.sha256 === wantStream, 'sha256 mismatch');
      expect(r.maxGapMs < 2000, `stalled ${r.maxGapMs} ms`);
      const roamed = g!.logLines(g!.gatewayLog).filter((l) => l.message === 'flow roamed');
      const how = roamed.length
        ? `gateway log: "flow roamed" from ${roamed[0]!.from} to ${roamed[0]!.to}`
        : 'the home router kept the public port, so the binding did not even move';
      const probes = (await alice!.status()).engine.probesSent ?? 0;
      return `sha256 ${r.sha256.slice(0, 16)}… matches; longest stall ${r.maxGapMs} ms; ${how}; alice's agent sent ${probes} probe(s) (verified by the gateway, never seen by the server)`;
    },
  );
  await story.step('gsra-agent status', async () => {
    const text = await alice!.statusText();
    story.say(text.replace(/^/gm, '      '));
  });
} catch (e) {
  story.say(`stopped: ${(e as Error).message}`);
  story.failures += 1;
} finally {
  await g?.stop();
}
story.say(
  story.failures ? `\n${story.failures} step(s) failed.` : '\nAll steps passed; the lab is torn down.',
);
process.exit(story.failures ? 1 : 0);
