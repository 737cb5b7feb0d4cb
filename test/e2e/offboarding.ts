// Shared steps of the offboarding end-to-end tests (OpenLDAP and Active Directory): a live
// download that the gateway must cut, and the check that a directory change took effect at the
// first policy refresh that read it (from the gateway's own log, not from a stopwatch).
import type { Test } from 'tap';
import { waitFor } from '../lab/exec.ts';
import { IN1, type AgentHandle, type GsraLab } from './gsra-lab.ts';

export const BIG = 'big.bin';
export const BIG_SIZE = 16 << 20;

/** A slow download of IN1/big.bin from `host`; resolves when curl ends (bytes received, exit code). */
export function liveDownload(g: GsraLab, host: 'en1' | 'en2') {
  return g.lab
    .exec(
      host,
      [
        'curl',
        '-sS',
        '--limit-rate',
        '300k',
        // a stalled transfer ends after 5 s (when the gateway drops the flow without a word)
        '--speed-limit',
        '1',
        '--speed-time',
        '5',
        '-o',
        '/dev/null',
        '-w',
        '%{size_download}',
        `http://${IN1}/${BIG}`,
      ],
      { allowFail: true, timeoutMs: 120_000 },
    )
    .then((r) => ({ code: r.code, bytes: Number(r.stdout.trim() || 0), stderr: r.stderr }));
}

/** Wait until the agent's flow to IN1 has received some data (the download is live). */
export async function untilFlowing(agent: AgentHandle): Promise<void> {
  await waitFor(
    'the download to flow',
    async () => (await agent.status()).flows.some((f) => f.in === IN1 && f.bytesIn > 100_000),
    20_000,
    200,
  );
}

/**
 * Make a directory change, wait for the gateway to refuse `user` with `reason`, and check from the
 * gateway's log that this came with the first policy refresh that read the directory after the
 * change (no later than the end of the first refresh started once the change was made).
 */
export async function refusedAtFirstRefresh(
  t: Test,
  g: GsraLab,
  user: string,
  reason: string,
  change: () => Promise<unknown>,
): Promise<number> {
  const before = Date.now();
  await change();
  const after = Date.now();
  const refusal = () =>
    g
      .logLines(g.gatewayLog)
      .find(
        (l) =>
          l.message === 'access refused' &&
          l.user === user &&
          l.reason === reason &&
          Date.parse(String(l.timestamp)) >= before,
      );
  await waitFor(`the gateway to refuse ${user} (${reason})`, () => refusal() !== undefined, 30_000, 100);
  const at = Date.parse(String(refusal()!.timestamp));
  const refreshes = g
    .logLines(g.gatewayLog)
    .filter((l) => l.message === 'policy refreshed')
    .map((l) => {
      const end = Date.parse(String(l.timestamp));
      return { end, start: end - Number(l.durationMs), changed: Number(l.changed) };
    });
  const firstAfter = refreshes.find((r) => r.start >= after);
  const trigger = refreshes.filter((r) => r.end <= at).at(-1);
  t.ok(trigger && trigger.end >= before && trigger.changed >= 1, 'a refresh after the change saw it');
  t.ok(
    !firstAfter || at <= firstAfter.end + 1000,
    'no later than the first refresh started after the change',
  );
  t.comment(`${user}: refused ${at - after} ms after the change (refresh every ${g.refreshSec} s)`);
  return at - after;
}
