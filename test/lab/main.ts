// `npm run lab`: the product's main job, shown in the lab with real clients and servers.
import { join } from 'node:path';
import { Lab, ADDR } from './lab.ts';
import { Narrative } from './narrative.ts';
import { startHttp, startFtp, startUdpEcho, udpProbe, makeRandomFile, sha256File } from './services.ts';

const nat = process.argv.includes('--symmetric') ? 'symmetric' : 'preserving';
const story = new Narrative();
const expect = Narrative.expect;

story.say(
  `GSRA lab — the network of docs/lab.md, built from scratch in network namespaces (${nat} home NAT)`,
);
const lab = await Lab.create({ nat });
try {
  await story.step('build the lab', async () => `${lab.namespaces.length} namespaces, prefix ${lab.id}`);
  await story.step('the teleworker PC (en1) reaches the internet through its home router (NAT)', async () => {
    await startHttp(lab, 'attacker', 8080);
    const r = await lab.exec('en1', [
      'curl',
      '-sS',
      '--max-time',
      '5',
      `http://${ADDR.attacker}:8080/whoami`,
    ]);
    const seen = JSON.parse(r.stdout).address;
    expect(seen === ADDR.hrWan, `far side saw ${seen}`);
    return `a server on the internet sees ${seen}, the home router's public address`;
  });
  await story.step('the office LAN is private: en1 cannot reach intra1 (10.0.0.11) by address', async () => {
    await startHttp(lab, 'in1');
    const r = await lab.exec('en1', ['curl', '-sS', '--max-time', '2', `http://${ADDR.in1}/`], {
      allowFail: true,
    });
    expect(r.code !== 0, 'curl succeeded');
    return `curl fails (exit ${r.code})`;
  });
  await story.step('intra1 serves HTTP and passive FTP inside the office LAN', async () => {
    const web = await lab.exec('dir', ['curl', '-sS', '--max-time', '5', `http://${ADDR.in1}/`]);
    const ftp = await startFtp(lab, 'in1');
    const want = makeRandomFile(join(ftp.root, 'report.bin'), 1 << 20);
    const out = join(lab.dir, 'report.bin');
    await lab.exec('dir', ['lftp', '-e', `set ftp:passive-mode on; get report.bin -o ${out}; bye`, ftp.url]);
    expect(sha256File(out) === want, 'sha256 mismatch');
    return `HTTP says "${web.stdout.trim()}", FTP download sha256 ${want.slice(0, 12)}… matches`;
  });
  await story.step(`the home router's NAT is ${nat}`, async () => {
    await startUdpEcho(lab, 'attacker', 9001);
    await startUdpEcho(lab, 'gw', 9002, ADDR.gwWan);
    const r = await udpProbe(lab, 'en1', 40000, [`${ADDR.attacker}:9001`, `${ADDR.gwWan}:9002`]);
    return `EN port 40000 leaves as ${r.map((x) => x.reply?.split(' from ')[1]).join(' and ')}`;
  });
  story.say(
    '\nThe GSRA session itself (agent on en1, gateway, slapd directory) joins this narrative as the\n' +
      'agent and gateway land (issues 5 and 6).',
  );
} finally {
  await lab.destroy();
}
story.say(
  story.failures ? `\n${story.failures} step(s) failed.` : '\nAll steps passed; the lab is torn down.',
);
process.exit(story.failures ? 1 : 0);
