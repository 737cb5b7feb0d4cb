// `--profile` (or `--only profile`): where GSRA's time goes. One iperf3 TCP stream each way, then a
// TCP request/response loop, through GSRA while `perf record -e cpu-clock -p <gateway>,<agent>`
// samples both daemons (a software clock: this VM exposes no hardware counters). `perf report
// --sort pid,dso,sym` (not --tid: over two processes it lost the second one's user-space samples),
// the engine threads' rows put in cost categories (profile-report.ts), engine CPU per data segment
// or per round trip, and the machine's CPU split from /proc/stat over the same seconds. Writes
// latest-profile-<workload>.txt and returns the breakdowns for the meta file.
import { readdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cpus } from 'node:os';
import { run } from '../lab/exec.ts';
import type { Timing } from './args.ts';
import { iperfArgv, parseTcp, runIperf } from './iperf.ts';
import { ECHO_PORT } from './paths.ts';
import { probe, type RrResult } from './probe.ts';
import type { BenchLab } from './paths.ts';
import { breakdown, breakdownText, parsePerfReport, type Breakdown } from './profile-report.ts';

const FREQ = 999;

/** The first line of /proc/stat: user nice system idle iowait irq softirq steal (ticks). */
function procStat(): number[] {
  return readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
}

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

export type Workload = 'en-in' | 'in-en' | 'rr';

export interface Profile {
  workload: Workload;
  /** What the workload achieved while profiled: Gbit/s (bulk) or round trips per second (rr). */
  rate: number;
  seconds: number;
  /** CPU (in cores) of each daemon thread, and the whole machine's split over the same time. */
  cores: Record<string, number>;
  /** Engine CPU (both daemons' gsra-nfq threads) per unit of work, in µs: per full-size segment or per round trip. */
  engineUsPerUnit: { gateway: number; agent: number; unit: string };
  gatewayEngine: Breakdown;
  agentEngine: Breakdown;
}

/** A TCP segment's payload through GSRA (MSS 1448 less the 16-byte MAC option). */
const SEGMENT_PAYLOAD = 1432;

export async function profileEngines(
  bl: BenchLab,
  t: Timing,
  outDir: string,
  say: (s: string) => void,
): Promise<Profile[]> {
  const perf = await run(['perf', 'stat', '-e', 'cpu-clock', 'true'], { allowFail: true, timeoutMs: 10_000 });
  if (perf.code !== 0) throw new Error(`perf does not work here: ${perf.stderr.slice(0, 200)}`);
  const gsra = bl.cases.get('gsra')!;
  await bl.prepare('gsra');
  // A fresh session: the figures before may have used this user's reservations up.
  await bl.restartAgent();
  const gwPid = bl.g.gateway.child.pid!;
  const agPid = bl.g.agents.en1!.proc.child.pid!;
  const out: Profile[] = [];
  const secs = t.profileSeconds;
  for (const workload of ['en-in', 'in-en', 'rr'] as const) {
    const data = join(bl.lab.dir, `perf-${workload}.data`);
    const gw = threads(gwPid);
    const ag = threads(agPid);
    const engineTids = (ts: { tid: number; comm: string }[]) =>
      ts.filter((x) => x.comm.startsWith('gsra-nfq')).map((x) => x.tid);
    if (!engineTids(gw).length || !engineTids(ag).length)
      throw new Error('no gsra-nfq threads in the gateway or the agent');
    say(
      `profile ${workload}: ${workload === 'rr' ? 'TCP request/response loop' : 'one iperf3 TCP stream'} through GSRA, perf record of both daemons for ${secs} s`,
    );
    // The load runs 1 s before and after the recording (bulk) or for the whole of it (rr, timed).
    const load: Promise<number> =
      workload === 'rr'
        ? probe<RrResult>(
            bl.lab,
            'en1',
            ['rr', gsra.dns, gsra.target, ECHO_PORT, `${secs + 2}s`],
            (secs + 60) * 1000,
          ).then((r) => r.samples_ms.length / (r.samples_ms.reduce((a, b) => a + b, 0) / 1000))
        : runIperf(
            bl.lab,
            iperfArgv(gsra.target, { dir: workload, seconds: secs + 2, streams: 1 }),
            secs + 2,
          ).then((x) => parseTcp(x).gbps);
    await new Promise((r) => setTimeout(r, 1000));
    const cpu0 = procStat();
    const rec = await run(
      [
        'perf',
        'record',
        '-e',
        'cpu-clock',
        '-F',
        String(FREQ),
        '-p',
        `${gwPid},${agPid}`,
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
    const cpu1 = procStat();
    const rate = await load;
    if (rec.code !== 0) throw new Error(`perf record: ${rec.stderr.slice(0, 300)}`);
    // CPU per thread: samples / (FREQ * seconds) = cores.
    const rows = parsePerfReport(await report(data, ['--sort', 'pid,dso,sym']));
    const cores: Record<string, number> = {};
    const name = new Map<number, string>([
      ...gw.map((x) => [x.tid, `gateway ${x.comm}`] as const),
      ...ag.map((x) => [x.tid, `agent ${x.comm}`] as const),
    ]);
    for (const r of rows) {
      const who = r.tid !== undefined ? name.get(r.tid) : undefined;
      if (who) cores[who] = (cores[who] ?? 0) + r.samples / (FREQ * secs);
    }
    // The whole machine over the same time (every helper's work included): cores busy by kind.
    const ticks = cpu1.map((v, i) => v - cpu0[i]!);
    const all = ticks.reduce((a, b) => a + b, 0) || 1;
    const share = (idx: number[]) => (cpus().length * idx.reduce((a, i) => a + ticks[i]!, 0)) / all;
    cores['machine: user'] = share([0, 1]);
    cores['machine: system'] = share([2]);
    cores['machine: softirq+irq'] = share([5, 6]);
    cores['machine: idle'] = share([3, 4]);
    for (const k of Object.keys(cores)) cores[k] = Number(cores[k]!.toFixed(3));
    const bd = (tids: number[]) => breakdown(rows.filter((r) => r.tid !== undefined && tids.includes(r.tid)));
    const gatewayEngine = bd(engineTids(gw));
    const agentEngine = bd(engineTids(ag));
    // Work done in the recorded seconds: full-size segments (bulk) or round trips (rr).
    const units = workload === 'rr' ? rate * secs : (rate * 1e9 * secs) / 8 / SEGMENT_PAYLOAD;
    const us = (b: Breakdown) => Number(((b.total / FREQ / units) * 1e6).toFixed(2));
    const p: Profile = {
      workload,
      rate,
      seconds: secs,
      cores,
      engineUsPerUnit: {
        gateway: us(gatewayEngine),
        agent: us(agentEngine),
        unit: workload === 'rr' ? 'round trip' : 'data segment',
      },
      gatewayEngine,
      agentEngine,
    };
    out.push(p);
    const what =
      workload === 'rr'
        ? `a TCP request/response loop (32 bytes each way) at ${rate.toFixed(0)} round trips/s`
        : `one iperf3 TCP stream ${workload} at ${rate.toFixed(3)} Gbit/s`;
    const text = [
      `GSRA profile: ${what} while profiled; perf record -e cpu-clock -F ${FREQ} -p <gateway>,<agent> for ${secs} s`,
      `engine CPU per ${p.engineUsPerUnit.unit}: gateway ${p.engineUsPerUnit.gateway} µs, agent ${p.engineUsPerUnit.agent} µs` +
        (workload === 'rr'
          ? ''
          : ` (segments = bytes / ${SEGMENT_PAYLOAD}; the ACKs the other way are included)`),
      '',
      `CPU in cores (the machine has ${cpus().length}): the two daemons by thread, and the whole machine's split:`,
      ...Object.entries(cores)
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => `  ${v.toFixed(2).padStart(5)}  ${k}`),
      '',
      breakdownText("gsra-gateway's engine threads (gsra-nfq*)", gatewayEngine),
      '',
      breakdownText("gsra-agent's engine threads (gsra-nfq*)", agentEngine),
      '',
    ].join('\n');
    writeFileSync(join(outDir, `latest-profile-${workload}.txt`), text);
    rmSync(data, { force: true });
    say(
      `profile ${workload}: ${p.engineUsPerUnit.gateway} + ${p.engineUsPerUnit.agent} µs of engine CPU per ${p.engineUsPerUnit.unit}; wrote latest-profile-${workload}.txt`,
    );
  }
  return out;
}
