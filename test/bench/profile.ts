// `--profile` (or `--only profile`): where GSRA's time goes during a bulk transfer. For each
// direction, one iperf3 TCP stream through GSRA while `perf record -a -e cpu-clock` samples the
// whole machine (a software clock: this VM exposes no hardware counters); then `perf report`
// over the threads of gsra-gateway and of gsra-agent, split into cost categories
// (profile-report.ts). Writes latest-profile-<dir>.txt and returns the breakdowns for the meta file.
import { readdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../lab/exec.ts';
import type { Timing } from './args.ts';
import { DIRS, type Dir } from './figures.ts';
import { iperfArgv, parseTcp, runIperf } from './iperf.ts';
import type { BenchLab } from './paths.ts';
import { breakdown, breakdownText, parsePerfReport, type Breakdown } from './profile-report.ts';

const FREQ = 999;

function threads(pid: number): { tid: number; comm: string }[] {
  return readdirSync(`/proc/${pid}/task`).map((t) => ({
    tid: Number(t),
    comm: readFileSync(`/proc/${pid}/task/${t}/comm`, 'utf8').trim(),
  }));
}

async function report(data: string, args: string[]): Promise<string> {
  const r = await run(['perf', 'report', '-i', data, '--stdio', '-n', '-t', '\t', ...args], {
    timeoutMs: 120_000,
    allowFail: true,
  });
  if (r.code !== 0) throw new Error(`perf report: ${r.stderr.slice(0, 300)}`);
  return r.stdout;
}

export interface DirProfile {
  dir: Dir;
  gbps: number;
  seconds: number;
  /** CPU (in cores) of each daemon's threads by name, and of the iperf3 processes. */
  cores: Record<string, number>;
  gatewayEngine: Breakdown;
  agentEngine: Breakdown;
}

export async function profileEngines(
  bl: BenchLab,
  t: Timing,
  outDir: string,
  say: (s: string) => void,
): Promise<DirProfile[]> {
  const perf = await run(['perf', 'stat', '-e', 'cpu-clock', 'true'], { allowFail: true, timeoutMs: 10_000 });
  if (perf.code !== 0) throw new Error(`perf does not work here: ${perf.stderr.slice(0, 200)}`);
  const gsra = bl.cases.get('gsra')!;
  await bl.prepare('gsra');
  const gwPid = bl.g.gateway.child.pid!;
  const agPid = bl.g.agents.en1!.proc.child.pid!;
  const out: DirProfile[] = [];
  for (const dir of DIRS) {
    const data = join(bl.lab.dir, `perf-${dir}.data`);
    const secs = t.profileSeconds;
    const gw = threads(gwPid);
    const ag = threads(agPid);
    const engineTids = (ts: { tid: number; comm: string }[]) =>
      ts.filter((x) => x.comm.startsWith('gsra-nfq')).map((x) => x.tid);
    if (!engineTids(gw).length || !engineTids(ag).length)
      throw new Error('no gsra-nfq threads in the gateway or the agent');
    say(`profile ${dir}: iperf3 through GSRA for ${secs + 2} s, perf record -a for ${secs} s`);
    const transfer = runIperf(
      bl.lab,
      iperfArgv(gsra.target, { dir, seconds: secs + 2, streams: 1 }),
      secs + 2,
    );
    await new Promise((r) => setTimeout(r, 1000));
    const rec = await run(
      [
        'perf',
        'record',
        '-e',
        'cpu-clock',
        '-F',
        String(FREQ),
        '-a',
        '-o',
        data,
        '--',
        'sleep',
        String(secs),
      ],
      {
        timeoutMs: (secs + 60) * 1000,
        allowFail: true,
      },
    );
    const gbps = parseTcp(await transfer).gbps;
    if (rec.code !== 0) throw new Error(`perf record: ${rec.stderr.slice(0, 300)}`);
    // CPU per thread: samples / (FREQ * seconds) = cores.
    const perThread = await report(data, ['--sort', 'pid']);
    const cores: Record<string, number> = {};
    const name = new Map<number, string>([
      ...gw.map((x) => [x.tid, `gateway ${x.comm}`] as const),
      ...ag.map((x) => [x.tid, `agent ${x.comm}`] as const),
    ]);
    for (const line of perThread.split('\n')) {
      if (line.startsWith('#')) continue;
      const cols = line.split('\t').map((c) => c.trim());
      const m = /^(\d+):(.*)$/.exec(cols[2] ?? '');
      if (!m) continue;
      const who =
        name.get(Number(m[1])) ??
        (m[2] === 'iperf3'
          ? 'iperf3'
          : m[2]!.startsWith('swapper')
            ? 'idle'
            : m[2]!.startsWith('ksoftirqd')
              ? 'ksoftirqd'
              : null);
      if (!who) continue;
      cores[who] = (cores[who] ?? 0) + Number(cols[1]) / (FREQ * secs);
    }
    for (const k of Object.keys(cores)) cores[k] = Number(cores[k]!.toFixed(3));
    const bd = async (tids: number[]) =>
      breakdown(parsePerfReport(await report(data, ['--sort', 'dso,sym', '--tid', tids.join(',')])));
    const p: DirProfile = {
      dir,
      gbps,
      seconds: secs,
      cores,
      gatewayEngine: await bd(engineTids(gw)),
      agentEngine: await bd(engineTids(ag)),
    };
    out.push(p);
    const text = [
      `GSRA profile, ${dir}, one iperf3 TCP stream at ${gbps.toFixed(3)} Gbit/s while profiled, perf record -a -e cpu-clock -F ${FREQ} for ${secs} s`,
      '',
      "CPU, in cores (out of the machine's), by thread:",
      ...Object.entries(cores)
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => `  ${v.toFixed(2).padStart(5)}  ${k}`),
      '',
      breakdownText("gsra-gateway's engine threads (gsra-nfq*)", p.gatewayEngine),
      '',
      breakdownText("gsra-agent's engine threads (gsra-nfq*)", p.agentEngine),
      '',
    ].join('\n');
    writeFileSync(join(outDir, `latest-profile-${dir}.txt`), text);
    rmSync(data, { force: true });
    say(`profile ${dir}: wrote ${join(outDir, `latest-profile-${dir}.txt`)}`);
  }
  return out;
}
