// Runs the Rust tests with both toolchains CI supports (rustup's cargo and Debian's Rust 1.63,
// in separate target directories) and checks that the crate compiles for Windows.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const crate = join(dirname(fileURLToPath(import.meta.url)), '..');
const rustupCargo = [
  process.env.CARGO_HOME ? join(process.env.CARGO_HOME, 'bin/cargo') : '',
  '/root/.cargo/bin/cargo',
].find((c) => c && existsSync(c));

function cargo(bin: string, args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(bin, args, {
    cwd: crate,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    timeout: 240_000,
  });
  return { status: r.status, out: `${r.stdout ?? ''}\n${r.stderr ?? ''}` };
}

function summarize(out: string) {
  let passed = 0;
  let failed = 0;
  for (const m of out.matchAll(/test result: \w+\. (\d+) passed; (\d+) failed/g)) {
    passed += Number(m[1]);
    failed += Number(m[2]);
  }
  const mut = /GSRA_MUTATION_INPUTS=(\d+)/.exec(out);
  return { passed, failed, mutationInputs: mut ? Number(mut[1]) : 0 };
}

const toolchains: {
  name: string;
  bin: string | undefined;
  env: Record<string, string>;
  targetDir: string;
}[] = [
  { name: 'rustup', bin: rustupCargo, env: {}, targetDir: 'target' },
  { name: 'debian', bin: '/usr/bin/cargo', env: { RUSTC: '/usr/bin/rustc' }, targetDir: 'target/debian' },
];

for (const tc of toolchains) {
  t.test(`cargo test --release (${tc.name})`, async (t) => {
    t.ok(tc.bin && existsSync(tc.bin), `${tc.name} cargo is installed`);
    if (!tc.bin) return;
    const r = cargo(tc.bin, ['test', '--release', '--target-dir', tc.targetDir, '--', '--nocapture'], tc.env);
    const s = summarize(r.out);
    t.equal(r.status, 0, `cargo test exit status\n${r.status === 0 ? '' : r.out.slice(-4000)}`);
    t.ok(s.passed > 20, `${s.passed} Rust tests passed`);
    t.equal(s.failed, 0);
    t.ok(s.mutationInputs >= 1_000_000, `mutation test ran ${s.mutationInputs} inputs`);
    t.match(r.out, /GSRA_FUZZ_SEED=\d+/, 'the mutation test printed its seed');
  });
}

t.test('the mutation test replays a run from GSRA_FUZZ_SEED', async (t) => {
  t.ok(rustupCargo, 'rustup cargo is installed');
  if (!rustupCargo) return;
  const env = { GSRA_FUZZ_SEED: '12345', GSRA_FUZZ_ITERS: '20000' };
  const runs = [1, 2].map(() =>
    cargo(rustupCargo, ['test', '--release', '--test', 'mutation', '--', '--nocapture'], env),
  );
  for (const r of runs) {
    t.equal(r.status, 0, r.status === 0 ? 'mutation test passed' : r.out.slice(-4000));
    t.match(r.out, /GSRA_FUZZ_SEED=12345\n/, 'it used the given seed');
  }
  const accepted = runs.map((r) => /GSRA_MUTATION_INPUTS=20000 accepted=(\d+)/.exec(r.out)?.[1]);
  t.ok(accepted[0], 'it reported how many inputs were accepted');
  t.equal(accepted[0], accepted[1], 'the same seed gives the same run');
});

t.test('cargo check --target x86_64-pc-windows-gnu (debian)', async (t) => {
  const r = cargo(
    '/usr/bin/cargo',
    ['check', '--target', 'x86_64-pc-windows-gnu', '--target-dir', 'target/debian'],
    {
      RUSTC: '/usr/bin/rustc',
    },
  );
  t.equal(r.status, 0, r.status === 0 ? 'compiles for Windows' : r.out.slice(-4000));
});

t.test('the Windows .node links against node.exe (build.sh --windows)', async (t) => {
  const r = spawnSync('bash', [join(crate, 'build.sh'), '--windows'], { encoding: 'utf8', timeout: 240_000 });
  t.equal(r.status, 0, r.status === 0 ? 'cross-built' : `${r.stdout}\n${r.stderr}`.slice(-4000));
  const dump = spawnSync(
    'x86_64-w64-mingw32-objdump',
    ['-p', join(crate, 'gsra_native.win32-x64-gnu.node')],
    {
      encoding: 'utf8',
      maxBuffer: 64 << 20,
    },
  );
  t.match(dump.stdout, /DLL Name: node\.exe/, 'imports N-API from node.exe');
  t.match(dump.stdout, /DLL Name: bcrypt\.dll/, 'crypto from CNG');
  t.match(dump.stdout, /napi_register_module_v1/, 'exports the module entry point');
});
