// The Windows agent under wine64 (one throw-away Windows 10 prefix for the whole file): the
// bundled agent on node.exe 22 with the cross-built addon, and the MSI through its life —
// install with properties, the service under wine's SCM, stop/start, upgrade keeping config
// and login, uninstall leaving nothing behind. What wine cannot do (load the WinDivert kernel
// driver) must fail with the sentence, not a crash. See docs/windows.md for what this proves.
import t from 'tap';
import { mkdirSync, readFileSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { selftest } from '../src/selftest.ts';
import { buildWin, INSTALLED_FILES, Prefix, z } from './wine.ts';

const prefix = new Prefix();
t.teardown(() => prefix.cleanup());

const built = buildWin();
if (built.code !== 0) t.bailout(`npm run build:win failed:\n${built.log.slice(-3000)}`);
t.pass('npm run build:win');
const init = prefix.init();
t.equal(init.code, 0, `wine prefix ready ${init.stderr.slice(-500)}`);
prefix.keepAlive(join(built.dir, 'node.exe'));
const node = (args: string[]) =>
  prefix.run([join(built.dir, 'node.exe'), join(built.dir, 'gsra-agent.mjs'), ...args]);

t.test(
  'the bundled agent on node.exe 22: golden packets give the Linux bytes (CNG vs OpenSSL)',
  async (t) => {
    const linux = selftest();
    t.ok(linux.ok, `Linux selftest: ${linux.failures.join('; ')}`);
    const r = node(['selftest', '--open-windivert']);
    t.equal(r.code, 0, `selftest under wine: ${r.stderr.slice(-2000)}`);
    const win = JSON.parse(r.stdout) as ReturnType<typeof selftest>;
    t.equal(win.platform, 'win32-x64');
    t.ok(win.ok, win.failures.join('; '));
    t.equal(win.packets, linux.packets);
    t.ok(win.packets > 40, `${win.packets} packets`);
    t.equal(win.digest, linux.digest, 'byte-identical output');
    t.equal(win.dpapi, 'ok', 'DPAPI round trip');
    t.equal(
      win.windivertFilters,
      '5 filters compiled by WinDivert.dll',
      "WinDivert's own compiler accepts the filters",
    );
    t.match(
      win.windivertOpen,
      /^cannot divert packets: .*error 1114, ERROR_DLL_INIT_FAILED/,
      'the driver cannot load under wine: a sentence',
    );
  },
);

t.test('--help and status (no service) run under wine', async (t) => {
  const h = node(['--help']);
  t.equal(h.code, 0, h.stderr);
  t.match(h.stdout, /usage: gsra-agent <command>/);
  t.match(h.stdout, /C:\\ProgramData\\GSRA\\agent\.json/, 'Windows default config path');
  const s = node(['status']);
  t.equal(s.code, 1);
  t.match(s.stderr, /gsra-agent status: the agent is not running/);
});

t.test('WinDivert.dll missing: the sentence names the folder', async (t) => {
  const probe = join(dirname(built.dir), 'probe');
  mkdirSync(probe, { recursive: true });
  writeFileSync(
    join(probe, 'probe.mjs'),
    `import { createRequire } from 'node:module';
const n = createRequire(import.meta.url)(${JSON.stringify(z(join(built.dir, 'gsra_native.win32-x64-gnu.node')))});
const h = n.createEngine({ role: 'agent', vinNet: '198.19.224.0/20' });
try { n.startWinDivert(h, { dir: ${JSON.stringify(z(probe))}, vinNet: '198.19.224.0/20', ggr: '203.0.113.1', ports: [40000, 59999] }); console.log('started'); }
catch (e) { console.log(e.message); }
try { n.startWinDivert(h, { dir: 'relative', vinNet: '198.19.224.0/20', ggr: '203.0.113.1', ports: [40000, 59999] }); }
catch (e) { console.log(e.message); }\n`,
  );
  const r = prefix.run([join(built.dir, 'node.exe'), join(probe, 'probe.mjs')]);
  t.equal(r.code, 0, r.stderr);
  const [missing, relative] = r.stdout.trim().split(/\r?\n/);
  t.match(missing, /^cannot divert packets: WinDivert\.dll could not be loaded from Z:\\.*probe/);
  t.match(relative, /must be an absolute path/);
});

t.test('the MSI: install, service, stop/start, upgrade, uninstall', async (t) => {
  const ca = join(dirname(built.dir), 'ca.pem');
  writeFileSync(ca, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
  const props = [
    'GATEWAY=203.0.113.1',
    'ZONES=corp.example',
    'LDAPURL=ldaps://203.0.113.1',
    `LDAPCA=${z(ca)}`,
    'BASEDN=dc=corp,dc=example',
  ];
  const inst = prefix.run(['msiexec', '/i', built.msi, '/qn', ...props]);
  t.equal(inst.code, 0, `msiexec /i ${inst.stderr.slice(-1500)}`);
  const pf = prefix.c('C:\\Program Files\\GSRA');
  for (const f of INSTALLED_FILES) t.ok(existsSync(join(pf, f)), `Program Files\\GSRA\\${f}`);
  const data = prefix.c('C:\\ProgramData\\GSRA');
  const cfg = JSON.parse(readFileSync(join(data, 'agent.json'), 'utf8'));
  t.same(cfg.gateway, { address: '203.0.113.1' }, 'config written from the MSI properties');
  t.equal(cfg.ldap.caFile, 'C:\\ProgramData\\GSRA\\ldap-ca.pem', 'the CA copied beside the config');

  const log = join(data, 'logs', 'agent.log');
  const waitLog = async (re: RegExp, what: string) => {
    for (let i = 0; i < 120; i++) {
      if (existsSync(log) && re.test(readFileSync(log, 'utf8'))) return true;
      await new Promise((r) => setTimeout(r, 500));
    }
    t.fail(`${what}: ${existsSync(log) ? readFileSync(log, 'utf8').slice(-1500) : 'no log'}`);
    return false;
  };
  // Windows Installer's StopServices waits for the service to stop; wine's does not, and then
  // removes files still in use. Before an uninstall the test stops it and waits, as Windows would.
  const stopped = async () => {
    prefix.run(['sc', 'stop', 'GsraAgent']);
    for (let i = 0; i < 60; i++) {
      if (/STATE\s+:\s+1\s+STOPPED/.test(prefix.run(['sc', 'query', 'GsraAgent']).stdout)) return true;
      await new Promise((r) => setTimeout(r, 500));
    }
    return false;
  };
  const q = prefix.run(['sc', 'query', 'GsraAgent']);
  t.match(q.stdout, /STATE\s+:\s+(2|4)/, 'service GsraAgent started by the MSI');
  // (wine's `sc qc` prints nothing: the service's registry key says the same.)
  const reg = prefix.run(['reg', 'query', 'HKLM\\System\\CurrentControlSet\\Services\\GsraAgent']).stdout;
  t.match(reg, /Start\s+REG_DWORD\s+0x2\b/, 'automatic start');
  t.match(reg, /ObjectName\s+REG_SZ\s+LocalSystem/, 'runs as LocalSystem');
  t.match(
    reg,
    /ImagePath\s+REG_SZ\s+C:\\Program Files\\GSRA\\gsra-service\.exe/,
    'the service host is the service',
  );
  t.ok(
    await waitLog(
      /"service guard|no service guard \(WinDivertOpen failed\)/,
      'the host tried its WinDivert guard',
    ),
  );
  t.match(
    readFileSync(join(data, 'guard-filter.txt'), 'utf8'),
    /^outbound and ip and ip\.DstAddr >= 198\.19\.224\.0 and ip\.DstAddr <= 198\.19\.239\.255/,
    "the guard filter comes from the agent's config",
  );
  t.ok(
    await waitLog(
      /not logged in: no C:\\ProgramData\\GSRA\\state\\credentials\.dpapi/,
      'the agent ran under the host and said why it stopped',
    ),
  );
  t.ok(await waitLog(/"agent exited".*restarting in 2 s/, 'the host restarts the agent, with backoff'));

  // A login (a real DPAPI blob, machine scope, as `gsra-agent login` writes it): the agent now
  // gets as far as the WinDivert data plane, which cannot open under wine, and says so.
  const creds = {
    user: 'alice',
    dn: 'uid=alice,dc=corp,dc=example',
    secret: Buffer.alloc(32, 1).toString('base64'),
    groups: [
      { name: 'sales', keys: [{ version: 1, key: Buffer.alloc(32, 2).toString('base64') }], hosts: [] },
    ],
    fetchedAt: Date.now(),
  };
  const writer = join(dirname(built.dir), 'write-creds.mjs');
  const addon = 'C:\\Program Files\\GSRA\\gsra_native.win32-x64-gnu.node';
  const target = 'C:\\ProgramData\\GSRA\\state\\credentials.dpapi';
  writeFileSync(
    writer,
    [
      "import { createRequire } from 'node:module';",
      "import { writeFileSync } from 'node:fs';",
      `const n = createRequire(import.meta.url)(${JSON.stringify(addon)});`,
      `writeFileSync(${JSON.stringify(target)}, n.dpapiProtect(Buffer.from(${JSON.stringify(JSON.stringify(creds))}), true));`,
    ].join('\n'),
  );
  const w = prefix.run([join(pf, 'node.exe'), writer]);
  t.equal(w.code, 0, w.stderr);
  t.ok(
    await waitLog(
      /cannot start: cannot divert packets: .*error 1114/,
      "the service's agent loads the DPAPI login and reaches WinDivert",
    ),
  );

  const stop = prefix.run(['sc', 'stop', 'GsraAgent']);
  t.equal(stop.code, 0, stop.stderr);
  t.ok(await waitLog(/"service host stopped"/, 'the host stopped on SERVICE_CONTROL_STOP'));
  t.match(prefix.run(['sc', 'query', 'GsraAgent']).stdout, /STATE\s+:\s+1\s+STOPPED/);
  rmSync(log);
  t.equal(prefix.run(['sc', 'start', 'GsraAgent']).code, 0);
  t.ok(await waitLog(/"service host starting"/, 'started again by sc start'));

  // Upgrade: a newer version keeps config and login.
  const login = readFileSync(join(data, 'state', 'credentials.dpapi'));
  const v2 = buildWin('0.1.1');
  t.teardown(() => rmSync(dirname(v2.dir), { recursive: true, force: true }));
  t.equal(v2.code, 0, v2.log.slice(-2000));
  t.ok(await stopped(), 'service stopped before the upgrade (wine does not wait for it)');
  const up = prefix.run(['msiexec', '/i', v2.msi, '/qn']);
  t.equal(up.code, 0, `upgrade ${up.stderr.slice(-1500)}`);
  t.same(JSON.parse(readFileSync(join(data, 'agent.json'), 'utf8')), cfg, 'config kept');
  t.ok(readFileSync(join(data, 'state', 'credentials.dpapi')).equals(login), 'login kept');
  t.ok(existsSync(join(pf, 'gsra-service.exe')), 'files in place after the upgrade');
  t.match(
    prefix.run(['sc', 'query', 'GsraAgent']).stdout,
    /STATE\s+:\s+(2|4)/,
    'service running after the upgrade',
  );

  t.match(
    prefix.run(['sc', 'query', 'WinDivert']).stdout,
    /SERVICE_NAME: WinDivert/,
    'WinDivert.dll created its driver service',
  );
  t.ok(await stopped(), 'service stopped before the uninstall');
  const un = prefix.run(['msiexec', '/x', v2.msi, '/qn']);
  t.equal(un.code, 0, un.stderr.slice(-1500));
  t.notOk(existsSync(pf), 'Program Files\\GSRA removed');
  t.notMatch(prefix.run(['sc', 'query', 'GsraAgent']).stdout, /GsraAgent/, 'service GsraAgent removed');
  t.notMatch(
    prefix.run(['sc', 'query', 'WinDivert']).stdout,
    /WinDivert/,
    'WinDivert driver service removed',
  );
  t.same(
    JSON.parse(readFileSync(join(data, 'agent.json'), 'utf8')),
    cfg,
    'a plain uninstall keeps the config',
  );
  // Reinstalled, it finds its config and login again; uninstalled with PURGE=1, nothing is left.
  rmSync(log);
  t.equal(prefix.run(['msiexec', '/i', v2.msi, '/qn']).code, 0, 'reinstall');
  t.ok(
    await waitLog(
      /cannot start: cannot divert packets/,
      'the reinstalled service uses the kept config and login',
    ),
  );
  t.ok(await stopped(), 'service stopped before the uninstall');
  const purge = prefix.run(['msiexec', '/x', v2.msi, '/qn', 'PURGE=1']);
  t.equal(purge.code, 0, purge.stderr.slice(-1500));
  t.notOk(existsSync(pf), 'Program Files\\GSRA removed again');
  t.notOk(existsSync(data), 'PURGE=1: ProgramData\\GSRA (config, login, logs) removed');
});

t.teardown(() => rmSync(dirname(built.dir), { recursive: true, force: true }));
