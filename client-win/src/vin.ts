// VINs: the virtual addresses the agent hands to applications, one per internal name. A name
// keeps its VIN while anything may still use it (and across restarts, through the state file),
// so a connection opened from a cached DNS answer still reaches the same host. When the range is
// full, the least recently used VIN whose DNS answer expired long ago (TTL + grace, so caches
// that outlive the TTL are not surprised) and that no live flow uses is given to the new name.
import { createHash } from 'node:crypto';

export interface Cidr {
  first: number;
  last: number;
  prefix: number;
}

export function ipToInt(ip: string): number {
  const p = ip.split('.').map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255))
    throw new Error(`not an IPv4 address: ${ip}`);
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
}

export function intToIp(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

export function parseCidr(s: string): Cidr {
  const [addr, len] = s.split('/');
  const prefix = Number(len);
  if (!addr || !Number.isInteger(prefix) || prefix < 0 || prefix > 32) throw new Error(`not a CIDR: ${s}`);
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  const first = (ipToInt(addr) & mask) >>> 0;
  return { first, last: (first | (~mask >>> 0)) >>> 0, prefix };
}

export interface VinEntry {
  name: string;
  vin: string;
  /** When the DNS answer that produced it stops being valid (ms since epoch). */
  expires: number;
}

/** A VIN is never given to another name sooner than this after its DNS answer expired. */
export const VIN_GRACE_MS = 10 * 60_000;

export class VinTable {
  /** By name, least recently used first (assign and touch move an entry to the end). */
  private byName = new Map<string, VinEntry>();
  private byVin = new Map<string, VinEntry>();
  readonly range: Cidr;
  /** Names given the VIN of another (evicted) name so far. */
  evicted = 0;
  private readonly max: number;

  constructor(
    range: string,
    private readonly opts: { graceMs?: number; max?: number } = {},
  ) {
    this.range = parseCidr(range);
    // Usable slots: the range minus its first and last address.
    this.max = Math.min(opts.max ?? Infinity, this.range.last - this.range.first - 1);
  }

  /**
   * The VIN of `name`, allocating one if needed: a hash of the name picks the slot, probing on
   * collision. When the table is full, an old entry no live flow uses (`inUse`) makes room;
   * if there is none, it throws.
   */
  assign(name: string, ttlSec: number, now: number, inUse: (vin: string) => boolean = () => false): VinEntry {
    const key = name.toLowerCase().replace(/\.$/, '');
    const existing = this.byName.get(key);
    if (existing) {
      existing.expires = Math.max(existing.expires, now + ttlSec * 1000);
      this.byName.delete(key);
      this.byName.set(key, existing);
      return existing;
    }
    const slots = this.range.last - this.range.first - 1;
    if (this.byName.size >= this.max) this.evict(now, inUse);
    let slot = createHash('sha256').update(key).digest().readUInt32BE(0) % slots;
    let vin = intToIp(this.range.first + 1 + slot);
    while (this.byVin.has(vin)) {
      slot = (slot + 1) % slots;
      vin = intToIp(this.range.first + 1 + slot);
    }
    const e = { name: key, vin, expires: now + ttlSec * 1000 };
    this.byName.set(key, e);
    this.byVin.set(vin, e);
    return e;
  }

  /** Gives back the least recently used VIN that expired long ago and that nothing uses. */
  private evict(now: number, inUse: (vin: string) => boolean): void {
    const grace = this.opts.graceMs ?? VIN_GRACE_MS;
    for (const e of this.byName.values()) {
      if (e.expires + grace > now) continue;
      if (inUse(e.vin)) continue;
      this.byName.delete(e.name);
      this.byVin.delete(e.vin);
      this.evicted++;
      return;
    }
    throw new Error(
      `VIN range exhausted: all ${this.byName.size} VINs are in use or handed out in the last ${Math.round(grace / 60_000)} min`,
    );
  }

  /** A flow started on this VIN: it is the most recently used. */
  touch(vin: string): void {
    const e = this.byVin.get(vin);
    if (!e) return;
    this.byName.delete(e.name);
    this.byName.set(e.name, e);
  }

  byAddress(vin: string): VinEntry | undefined {
    return this.byVin.get(vin);
  }

  byHostName(name: string): VinEntry | undefined {
    return this.byName.get(name.toLowerCase().replace(/\.$/, ''));
  }

  contains(ip: string): boolean {
    const n = ipToInt(ip);
    return n >= this.range.first && n <= this.range.last;
  }

  entries(): VinEntry[] {
    return [...this.byName.values()];
  }

  /** Restore entries saved earlier (names keep their VINs across restarts). */
  restore(entries: VinEntry[]): void {
    for (const e of entries) {
      if (!this.contains(e.vin) || this.byVin.has(e.vin) || this.byName.has(e.name)) continue;
      this.byName.set(e.name, { ...e });
      this.byVin.set(e.vin, this.byName.get(e.name)!);
    }
  }
}
