// The roaming scene shared by the e2e test (roaming.test.ts) and `npm run lab`: a paced download
// from in1 through GSRA, and the home router's conntrack table flushed in the middle of it.
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { ADDR } from '../lab/lab.ts';
import { waitFor } from '../lab/exec.ts';
import { IN1, type GsraLab } from './gsra-lab.ts';

export const SERVERS = join(dirname(fileURLToPath(import.meta.url)), '..', 'lab', 'servers');

export interface StreamResult {
  how: string;
  bytes: number;
  sha256: string;
  maxGapMs: number;
  gapAtMs: number;
  firstAt: number;
  lastAt: number;
}

/**
 * paced-stream.mjs on in1: 32 KiB every 10 ms (about 2.5 MB/s: an 8 MiB download lasts ~3 s);
 * `push`: the server speaks first (true: at once; a number: after that many ms of silence).
 */
export async function startPaced(
  g: GsraLab,
  port: number,
  file: string,
  push: boolean | number,
): Promise<void> {
  const argv = ['node', join(SERVERS, 'paced-stream.mjs'), ADDR.in1, String(port), file, '32768', '10'];
  const how = push === true ? ['--push'] : push === false ? [] : [`--push-after=${push}`];
  const p = g.lab.spawn('in1', `paced-${port}`, [...argv, ...how]);
  await waitFor(`paced stream on ${port}`, () => p.log.includes('listening') || !p.running);
  if (!p.running) throw new Error(`paced stream died: ${p.log}`);
}

/** A download from in1 by name (through GSRA), read by stream-client.mjs on en1. */
export function startDownload(
  g: GsraLab,
  port: number,
  mode: 'request' | 'listen',
): { reached(what: 'connected' | 'receiving'): Promise<void>; result: Promise<StreamResult> } {
  const p = g.lab.spawn('en1', `stream-client-${port}`, [
    'node',
    join(SERVERS, 'stream-client.mjs'),
    IN1,
    String(port),
    mode,
    '30000',
  ]);
  return {
    reached: (what) =>
      waitFor(`the download to be ${what}`, () => p.log.includes(what) || !p.running, 20_000),
    result: p.wait().then(() => {
      const line = p.log.split('\n').find((l) => l.startsWith('{'));
      if (!line) throw new Error(`stream-client printed no result: ${p.log}`);
      return JSON.parse(line) as StreamResult;
    }),
  };
}

/** The home router forgets every mapping (as a reboot or a NAT timeout would): conntrack -F. */
export async function flushHomeRouter(g: GsraLab): Promise<{ at: number; message: string }> {
  const at = Date.now();
  const f = await g.lab.exec('hr', ['conntrack', '-F']);
  return { at, message: (f.stdout + f.stderr).trim() };
}

/**
 * A download from in1 by name, with the home router's conntrack table flushed `afterMs` after the
 * client reached `when` (connected, or receiving: 256 KiB in).
 */
export async function downloadThroughFlush(
  g: GsraLab,
  port: number,
  mode: 'request' | 'listen',
  when: 'connected' | 'receiving',
  afterMs: number,
): Promise<{ r: StreamResult; flushAt: number; flushed: string }> {
  const download = startDownload(g, port, mode);
  await download.reached(when);
  await sleep(afterMs);
  const f = await flushHomeRouter(g);
  return { r: await download.result, flushAt: f.at, flushed: f.message };
}
