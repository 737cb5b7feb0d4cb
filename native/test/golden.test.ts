// The golden vectors of docs/pccom.md §10, three ways: recomputed by an independent implementation
// written from the document alone (native/tests/golden.py: Python's hmac and the openssl command
// line's AES), pinned in the engine's Rust tests (native/tests/protection.rs, which checks the
// engine produces them), and quoted in the document. All three must agree byte for byte.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const native = join(dirname(fileURLToPath(import.meta.url)), '..');
const python = execFileSync('python3', [join(native, 'tests', 'golden.py')], { encoding: 'utf8' });
const computed = Object.fromEntries(
  python
    .trim()
    .split('\n')
    .map((l) => l.split(' ') as [string, string]),
);
const rust = readFileSync(join(native, 'tests', 'protection.rs'), 'utf8');
const doc = readFileSync(join(native, '..', 'docs', 'pccom.md'), 'utf8');

for (const [name, constant] of [
  ['syn', 'GOLDEN_SYN'],
  ['data', 'GOLDEN_DATA'],
  ['udp', 'GOLDEN_UDP'],
] as const) {
  t.test(`the ${name} vector`, async (t) => {
    const hex = computed[name] ?? '';
    t.match(hex, /^45[0-9a-f]+$/, 'golden.py printed an IPv4 packet');
    t.match(rust, new RegExp(`const ${constant}: &str = "${hex}";`), 'pinned in protection.rs');
    t.ok(doc.includes(hex), 'quoted in docs/pccom.md');
  });
}
