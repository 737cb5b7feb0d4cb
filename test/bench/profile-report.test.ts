// Reading perf report output and sorting each symbol into the cost category the performance notes
// use (crypto, copies, the NFQUEUE crossing, the kernel path, locking, ...).
import t from 'tap';
import { parsePerfReport, categorize, breakdown } from './profile-report.ts';

const REPORT = `# To display the perf.data header info, please use --header/--header-only options.
#
# Samples: 1K of event 'cpu-clock:ppp'
#
    15.2%\t290\tnode\t[.] sha256_block_data_order_shaext
     5.0%\t95\tnode\t[.] aesni_ctr32_encrypt_blocks
     5.0%\t95\t[kernel.kallsyms]\t[k] __nfqnl_enqueue_packet
     4.8%\t92\t[kernel.kallsyms]\t[k] __pi_memcpy
     2.3%\t44\tgsra_native.node\t[.] gsra_native::pkt::fix_l4_checksum
     1.7%\t32\tgsra_native.node\t[.] gsra_native::backend::nfq::queue_thread
     1.0%\t19\t[kernel.kallsyms]\t[k] ip_rcv_finish_core
     0.5%\t10\tnode\t[.] EVP_CipherInit_ex
`;

t.test('rows: samples, library and symbol (without the [.]/[k] marker)', async (t) => {
  const rows = parsePerfReport(REPORT);
  t.equal(rows.length, 8);
  t.same(rows[0], { samples: 290, dso: 'node', sym: 'sha256_block_data_order_shaext' });
  t.same(rows[2], { samples: 95, dso: '[kernel.kallsyms]', sym: '__nfqnl_enqueue_packet' });
});

t.test('categories by symbol, OpenSSL inside node included', async (t) => {
  t.equal(categorize('node', 'sha256_block_data_order_shaext'), 'HMAC-SHA256 (OpenSSL)');
  t.equal(categorize('libcrypto.so.3', 'HMAC_Update'), 'HMAC-SHA256 (OpenSSL)');
  t.equal(categorize('node', 'aesni_ctr32_encrypt_blocks'), 'AES (OpenSSL)');
  t.equal(categorize('node', 'EVP_CipherInit_ex'), 'OpenSSL other (EVP setup, lookups)');
  t.equal(categorize('[kernel.kallsyms]', '__nfqnl_enqueue_packet'), 'NFQUEUE/netlink crossing (kernel)');
  t.equal(categorize('[kernel.kallsyms]', 'nfqnl_recv_verdict'), 'NFQUEUE/netlink crossing (kernel)');
  t.equal(categorize('[kernel.kallsyms]', '__pi_memcpy'), 'copies (user and kernel)');
  t.equal(categorize('libc.so.6', '__memmove_avx512_unaligned_erms'), 'copies (user and kernel)');
  t.equal(categorize('gsra_native.node', 'gsra_native::pkt::fix_l4_checksum'), 'checksums');
  t.equal(categorize('[kernel.kallsyms]', 'entry_SYSCALL_64'), 'syscall entry/exit');
  t.equal(categorize('[kernel.kallsyms]', '_raw_spin_unlock_irqrestore'), 'locking and scheduling');
  t.equal(categorize('libc.so.6', 'pthread_mutex_lock'), 'locking and scheduling');
  t.equal(categorize('[kernel.kallsyms]', 'kmem_cache_alloc_node_noprof'), 'memory allocation');
  t.equal(
    categorize('[kernel.kallsyms]', 'ip_rcv_finish_core'),
    'kernel network path (IP, TCP, NAT, veth, bridge)',
  );
  t.equal(categorize('gsra_native.node', 'gsra_native::engine::Engine::classify'), 'engine code (Rust)');
  t.equal(categorize('node', 'v8::internal::Heap::Scavenge'), 'Node/V8');
  t.equal(categorize('libfoo.so', 'bar'), 'other');
});

t.test('breakdown: shares by category, largest first, and the top symbols', async (t) => {
  const b = breakdown(parsePerfReport(REPORT), 3);
  t.equal(b.total, 677);
  t.equal(b.byCategory[0]!.category, 'HMAC-SHA256 (OpenSSL)');
  t.equal(b.byCategory[0]!.pct.toFixed(1), ((100 * 290) / 677).toFixed(1));
  t.equal(
    b.byCategory.reduce((s, c) => s + c.samples, 0),
    677,
    'every sample is in exactly one category',
  );
  t.same(
    b.top.map((r) => r.sym),
    ['sha256_block_data_order_shaext', 'aesni_ctr32_encrypt_blocks', '__nfqnl_enqueue_packet'],
  );
});

t.test('a report sorted by pid gives each row its thread, so threads can be told apart', async (t) => {
  const text = [
    ' 4.77%\t201\t  20773:gsra-nfq0 \tnode\t[.] sha256_block_data_order_shaext',
    ' 4.75%\t200\t  20337:gsra-nfq0 \tnode\t[.] sha256_block_data_order_shaext',
    ' 1.12%\t47\t  20337:gsra-nfq0 \t[kernel.kallsyms]\t[k] nfqnl_recv_verdict',
  ].join('\n');
  const rows = parsePerfReport(text);
  t.same(rows[0], { tid: 20773, samples: 201, dso: 'node', sym: 'sha256_block_data_order_shaext' });
  const gw = breakdown(rows.filter((r) => r.tid === 20337));
  t.equal(gw.total, 247);
  t.same(
    gw.byCategory.map((c) => c.category),
    ['HMAC-SHA256 (OpenSSL)', 'NFQUEUE/netlink crossing (kernel)'],
  );
});

t.test('the top symbols merge the same symbol of several threads', async (t) => {
  const rows = [
    { tid: 1, samples: 10, dso: '[kernel.kallsyms]', sym: 'finish_task_switch.isra.0' },
    { tid: 2, samples: 12, dso: '[kernel.kallsyms]', sym: 'finish_task_switch.isra.0' },
    { tid: 1, samples: 15, dso: 'node', sym: 'sha256_block_data_order_shaext' },
  ];
  const b = breakdown(rows);
  t.same(
    b.top.map((r) => [r.sym, r.samples]),
    [
      ['finish_task_switch.isra.0', 22],
      ['sha256_block_data_order_shaext', 15],
    ],
  );
  t.equal(categorize('[kernel.kallsyms]', 'copy_msghdr_from_user'), 'NFQUEUE/netlink crossing (kernel)');
  t.equal(categorize('libc.so.6', '__recvmmsg'), 'syscall entry/exit');
});
