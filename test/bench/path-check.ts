// Every measured run proves the path its bytes took: a counter that only that path increments
// (an iptables rule's byte counter, wireguard-go's transfer counters, the OpenVPN tun device's
// counters) must have grown by at least the bytes the tool says it moved. The parsers and the
// check are pure (test/bench/path-check.test.ts); reading the counters is in paths.ts.

export class PathError extends Error {
  override name = 'PathError';
}

/**
 * Sums the byte counters of the rules carrying the comment `tag` in `iptables -L <chain> -v -n -x`
 * output. Throws when no rule carries it: a counter that does not exist cannot prove anything.
 */
export function iptablesTaggedBytes(listing: string, tag: string): number {
  let found = 0;
  let bytes = 0;
  for (const line of listing.split('\n')) {
    if (!line.includes(`/* ${tag} */`)) continue;
    const cols = line.trim().split(/\s+/);
    const b = Number(cols[1]);
    if (!/^\d+$/.test(cols[0] ?? '') || !Number.isFinite(b))
      throw new PathError(`unparsable rule line: ${line}`);
    bytes += b;
    found++;
  }
  if (!found) throw new PathError(`no iptables rule tagged ${tag}`);
  return bytes;
}

/** rx + tx bytes of every peer in `wg show <if> transfer` (lines "<peer>\t<rx>\t<tx>"). */
export function wgTransferBytes(text: string): number {
  const lines = text.split('\n').filter((l) => l.trim());
  if (!lines.length) throw new PathError('wg show transfer: no peer');
  return lines.reduce((n, l) => {
    const [, rx, tx] = l.trim().split(/\s+/);
    if (!/^\d+$/.test(rx ?? '') || !/^\d+$/.test(tx ?? ''))
      throw new PathError(`wg show transfer: bad line ${l}`);
    return n + Number(rx) + Number(tx);
  }, 0);
}

/** rx_bytes + tx_bytes as `cat /sys/class/net/<if>/statistics/{rx,tx}_bytes` prints them. */
export function linkBytes(text: string): number {
  const nums = text.split('\n').filter((l) => l.trim());
  if (nums.length !== 2 || nums.some((n) => !/^\d+$/.test(n.trim()))) {
    throw new PathError(`link statistics: expected two counters, got ${JSON.stringify(text)}`);
  }
  return Number(nums[0]) + Number(nums[1]);
}

/**
 * The bytes the tool moved (payload only, so less than what any counter below the socket sees)
 * must all show in the path's counter. `moved` must be positive: a run that moved nothing proves
 * no path.
 */
export function checkPath(what: string, before: number, after: number, moved: number): number {
  if (!(moved > 0)) throw new PathError(`${what}: the run moved no bytes, so it proves no path`);
  const seen = after - before;
  if (seen < 0) throw new PathError(`${what}: the counter went backwards (${before} -> ${after})`);
  if (seen < moved) {
    throw new PathError(`${what}: the run moved ${moved} bytes but only ${seen} went through ${what}`);
  }
  return seen;
}
