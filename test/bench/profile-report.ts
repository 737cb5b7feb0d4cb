// Reading `perf report --stdio -n --sort pid,dso,sym -t '\t'` and putting each symbol in a cost
// category: where an engine thread's time goes (crypto, copies, the kernel<->user crossing of
// NFQUEUE, the rest of the kernel's network path, locking, allocation, the engine's own code).
// Pure (test/bench/profile-report.test.ts).

export interface PerfRow {
  /** The thread (perf's `pid` sort key is the thread id), when the report is sorted by it. */
  tid?: number;
  samples: number;
  dso: string;
  sym: string;
}

/**
 * Rows of a tab-separated perf report (`-n -t '\t' --sort [pid,]dso,sym`); comment lines skipped.
 * Sort by pid and filter the rows, rather than `--tid`: perf 6.x merges the same dso/sym of
 * several threads into one entry before applying --tid, so with two processes recorded the
 * second one's user-space samples went missing.
 */
export function parsePerfReport(text: string): PerfRow[] {
  const rows: PerfRow[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim() || line.startsWith('#')) continue;
    const cols = line.split('\t').map((c) => c.trim());
    const samples = Number(cols[1]);
    if (!Number.isFinite(samples)) continue;
    const tid = cols.length >= 5 ? /^(\d+):/.exec(cols[2]!)?.[1] : undefined;
    const [dso, sym] = cols.length >= 5 ? [cols[3]!, cols[4]!] : [cols[2], cols[3]];
    if (dso === undefined || sym === undefined) continue;
    const row: PerfRow = { samples, dso, sym: sym.replace(/^\[[.k]\]\s*/, '') };
    if (tid !== undefined) row.tid = Number(tid);
    rows.push(row);
  }
  return rows;
}

export const CATEGORIES = [
  'AES (OpenSSL)',
  'HMAC-SHA256 (OpenSSL)',
  'OpenSSL other (EVP setup, lookups)',
  'copies (user and kernel)',
  'checksums',
  'NFQUEUE/netlink crossing (kernel)',
  'syscall entry/exit',
  'kernel network path (IP, TCP, NAT, veth, bridge)',
  'locking and scheduling',
  'memory allocation',
  'engine code (Rust)',
  'Node/V8',
  'other',
] as const;
export type Category = (typeof CATEGORIES)[number];

// OpenSSL is matched by symbol, not by library: Node carries its own OpenSSL, and the engine's
// libcrypto calls resolve to it (perf names the dso `node`).
const OPENSSL =
  /^(EVP_|HMAC|ossl_|OPENSSL_|CRYPTO_|evp_|ERR_|OSSL_|EVP|md_|mac_)|_block_data_order|aesni_|gcm_|ghash_/;
const RULES: [Category, (dso: string, sym: string) => boolean][] = [
  ['AES (OpenSSL)', (_d, s) => /aes/i.test(s) && !/gsra_native/.test(s)],
  ['HMAC-SHA256 (OpenSSL)', (_d, s) => /sha256|sha2_|hmac/i.test(s) && !/gsra_native/.test(s)],
  ['OpenSSL other (EVP setup, lookups)', (d, s) => /libcrypto|libssl/.test(d) || OPENSSL.test(s)],
  [
    'copies (user and kernel)',
    (_d, s) =>
      /memcpy|memmove|copy_user|copy_to_iter|copy_from_iter|copy_page|skb_copy|__copy|rep_movs|copyout|copyin|_copy_from_user|_copy_to_user/i.test(
        s,
      ),
  ],
  ['checksums', (_d, s) => /csum|checksum/i.test(s)],
  [
    'NFQUEUE/netlink crossing (kernel)',
    (d, s) =>
      d.includes('kernel') &&
      /nfqnl|nf_queue|nf_reinject|nfnetlink|netlink|nla_|recvmmsg|recvmsg|sendmsg|sock_|skb_|__alloc_skb|kfree_skb|consume_skb|___sys_|__sys_|msghdr|fdget|iov_iter|import_iovec/.test(
        s,
      ),
  ],
  [
    'syscall entry/exit',
    (d, s) =>
      (d.includes('kernel') &&
        /entry_SYSCALL|do_syscall|syscall_exit|__x64_sys|syscall_return|exit_to_user|srso|retbleed|fput/.test(
          s,
        )) ||
      (/libc/.test(d) && /recvmmsg|sendmsg|recvmsg|syscall/.test(s)),
  ],
  [
    'locking and scheduling',
    (_d, s) =>
      /futex|mutex|spin_lock|spin_unlock|_raw_|rwlock|schedule|__switch_to|finish_task_switch|wake_up|pthread_|lock_sock|release_sock|parking_lot|Mutex|RwLock|tick|hrtimer|irq/.test(
        s,
      ),
  ],
  [
    'memory allocation',
    (_d, s) =>
      /malloc|free|realloc|__rust_alloc|__rust_dealloc|__rdl_|kmem_cache|kmalloc|kfree|page_frag|alloc_pages|slab/.test(
        s,
      ),
  ],
  ['kernel network path (IP, TCP, NAT, veth, bridge)', (d) => d.includes('kernel')],
  ['engine code (Rust)', (d) => /gsra_native/.test(d)],
  ['Node/V8', (d) => /^node$|libnode|v8/.test(d)],
];

export function categorize(dso: string, sym: string): Category {
  for (const [c, f] of RULES) if (f(dso, sym)) return c;
  return 'other';
}

export interface Breakdown {
  total: number;
  byCategory: { category: Category; samples: number; pct: number }[];
  top: (PerfRow & { pct: number; category: Category })[];
}

/** Rows of several threads merged by library and symbol. */
function bySymbol(rows: readonly PerfRow[]): Map<string, PerfRow> {
  const m = new Map<string, PerfRow>();
  for (const r of rows) {
    const k = `${r.dso}\t${r.sym}`;
    const have = m.get(k);
    if (have) have.samples += r.samples;
    else m.set(k, { samples: r.samples, dso: r.dso, sym: r.sym });
  }
  return m;
}

export function breakdown(rows: readonly PerfRow[], topN = 25): Breakdown {
  const total = rows.reduce((n, r) => n + r.samples, 0);
  const per = new Map<Category, number>();
  for (const r of rows) {
    const c = categorize(r.dso, r.sym);
    per.set(c, (per.get(c) ?? 0) + r.samples);
  }
  const pct = (n: number) => (total ? (100 * n) / total : 0);
  return {
    total,
    byCategory: CATEGORIES.filter((c) => per.has(c))
      .map((category) => ({ category, samples: per.get(category)!, pct: pct(per.get(category)!) }))
      .sort((a, b) => b.samples - a.samples),
    top: [...bySymbol(rows).values()]
      .sort((a, b) => b.samples - a.samples)
      .slice(0, topN)
      .map((r) => ({ ...r, pct: pct(r.samples), category: categorize(r.dso, r.sym) })),
  };
}

export function breakdownText(title: string, b: Breakdown): string {
  const out = [`${title}: ${b.total} samples`];
  for (const c of b.byCategory) out.push(`  ${c.pct.toFixed(1).padStart(5)} %  ${c.category}`);
  out.push('  top symbols:');
  for (const r of b.top)
    out.push(
      `  ${r.pct.toFixed(1).padStart(5)} %  ${r.sym.slice(0, 70).padEnd(70)}  ${r.dso}  [${r.category}]`,
    );
  return out.join('\n');
}
