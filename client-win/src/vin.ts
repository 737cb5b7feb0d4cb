// VINs: the virtual addresses the agent hands to applications, one per internal name. A name
// keeps its VIN for the life of the agent (and across restarts, through the state file), so a
// connection opened from a cached DNS answer still reaches the same host.
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

export class VinTable {
  private byName = new Map<string, VinEntry>();
  private byVin = new Map<string, VinEntry>();
  readonly range: Cidr;

  constructor(range: string) {
    this.range = parseCidr(range);
  }

  /** The VIN of `name`, allocating one if needed: a hash of the name picks the slot, probing on collision. */
  assign(name: string, ttlSec: number, now: number): VinEntry {
    const key = name.toLowerCase().replace(/\.$/, '');
    const existing = this.byName.get(key);
    if (existing) {
      existing.expires = Math.max(existing.expires, now + ttlSec * 1000);
      return existing;
    }
    // Usable slots: the range minus its first and last address.
    const slots = this.range.last - this.range.first - 1;
    if (this.byName.size >= slots) throw new Error(`VIN range exhausted (${slots} names)`);
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
