// The Windows agent's parts that run on Linux too: the selftest's own checks, the WinDivert
// filters as the Windows twin of the Linux rules, Windows-only calls refusing with a sentence,
// and the service host's stop signal (end of stdin) stopping a real daemon cleanly.
import t from 'tap';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { agentRules, checkWinDivert, dpapiProtect, winDivertFilters } from '@gsra/native';
import { selftest } from '../src/selftest.ts';
import { WindowsDataPlane } from '../src/data-plane-windows.ts';

t.test('selftest passes on Linux and is deterministic', async (t) => {
  const a = selftest();
  t.ok(a.ok, a.failures.join('; '));
  t.equal(a.platform, `linux-${process.arch}`);
  t.ok(a.packets > 40);
  t.match(a.digest, /^[0-9a-f]{64}$/);
  t.equal(selftest().digest, a.digest, 'same bytes on a second run');
  t.equal(a.windivertOpen, undefined, 'no WinDivert on Linux');
});

t.test('the WinDivert handles mirror the Linux agent rules', async (t) => {
  const o = { vinNet: '198.19.224.0/20', ggr: '203.0.113.1', ports: [40000, 59999] as [number, number] };
  const h = winDivertFilters(o);
  t.same(
    h.map((x) => [x.role, x.priority, x.drop]),
    [
      ['guard', -1000, true],
      ['in', 1000, false],
      ['out', 1001, false],
      ['dns', 1002, false],
      ['dnsq', 1003, false],
    ],
  );
  const linux = agentRules({
    vinNet: o.vinNet,
    ggr: o.ggr,
    ports: '40000:59999',
    outQueue: 0,
    inQueue: 1,
    dns: { zones: ['corp.example'], resolvers: [] },
  });
  // Each Linux rule's match has its WinDivert counterpart.
  t.ok(linux.some((r) => r.args.includes('-d') && r.args.includes(o.vinNet)));
  t.match(
    h.find((x) => x.role === 'out')!.filter,
    /^outbound and ip and ip\.DstAddr >= 198\.19\.224\.0 and ip\.DstAddr <= 198\.19\.239\.255$/,
  );
  t.ok(linux.some((r) => r.args.join(' ').includes(`-s ${o.ggr} -p tcp --sport 40000:59999`)));
  t.match(
    h.find((x) => x.role === 'in')!.filter,
    /ip\.SrcAddr == 203\.0\.113\.1 and \(\(tcp\.SrcPort >= 40000 and tcp\.SrcPort <= 59999\) or \(udp\.SrcPort >= 40000/,
  );
  t.ok(
    linux.some((r) => r.args.join(' ').startsWith('-p icmp -m u32 --u32 ') && r.args.includes('1')),
    'ICMP errors quoting a packet to GGR',
  );
  t.match(h.find((x) => x.role === 'in')!.filter, / or icmp\)$/);
  t.ok(linux.some((r) => r.args.join(' ').startsWith('-p udp --sport 53 -m connmark')));
  t.equal(h.find((x) => x.role === 'dns')!.filter, 'inbound and ip and udp.SrcPort == 53');
  t.throws(() => winDivertFilters({ ...o, ggr: '198.19.224.9' }), /inside the VIN range/);
  t.throws(() => winDivertFilters({ ...o, ports: [5, 1] }), /port range/);
});

t.test('Windows-only calls refuse on Linux with a sentence', async (t) => {
  t.throws(
    () => checkWinDivert('/opt', { vinNet: '198.19.224.0/20', ggr: '203.0.113.1', ports: [1, 2] }),
    /WinDivert is Windows-only \(this is the linux build\)/,
  );
  t.throws(() => dpapiProtect(Buffer.from('x'), 'machine'), /DPAPI is Windows-only/);
  const dp = new WindowsDataPlane({
    vinRange: '198.19.224.0/20',
    ggr: '203.0.113.1',
    ports: { first: 40000, last: 59999 },
    dir: '/opt/gsra',
  });
  t.throws(() => dp.start(), /WinDivert is Windows-only/);
  await dp.close();
});

t.test('end of stdin stops `run --service`-style daemons cleanly', async (t) => {
  // A daemon as cli.ts runs it under the service host: serveUntilSignal + stopOnStdinEnd.
  const script = `
    import { serveUntilSignal, createLogger } from '@gsra/common';
    import { stopOnStdinEnd } from ${JSON.stringify(join(import.meta.dirname, '../src/service-stop.ts'))};
    const daemon = { stop: async () => { process.stdout.write('stopped cleanly\\n'); } };
    const release = stopOnStdinEnd();
    process.stdout.write('running\\n');
    const code = await serveUntilSignal(daemon, createLogger('test', { level: 'error' }));
    release();
    process.exitCode = code;`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: join(import.meta.dirname, '..'),
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    if (out.includes('running')) child.stdin.end();
  });
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  t.equal(code, 0, 'exits 0 by itself once stopped (stdin let go)');
  t.match(out, /running\nstopped cleanly\n/);
});
