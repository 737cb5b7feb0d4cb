// What the run ran on: tool versions, kernel, CPUs (for latest-meta.json and the summary's header).
import { cpus, release } from 'node:os';
import { run } from '../lab/exec.ts';

async function firstLine(argv: string[]): Promise<string> {
  try {
    const r = await run(argv, { allowFail: true, timeoutMs: 5000 });
    return (
      (r.stdout || r.stderr)
        .split('\n')
        .find((l) => l.trim())
        ?.trim() ?? 'unknown'
    );
  } catch {
    return 'not installed';
  }
}

export async function versions(): Promise<Record<string, string | number>> {
  return {
    node: process.version,
    kernel: release(),
    cpus: cpus().length,
    cpu: cpus()[0]?.model ?? 'unknown',
    iperf3: await firstLine(['iperf3', '--version']),
    wireguard_go: await firstLine(['wireguard-go', '--version']),
    openvpn: (await firstLine(['openvpn', '--version'])).split(' [')[0]!,
    perf: await firstLine(['perf', '--version']),
  };
}
