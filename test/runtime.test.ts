// The Node runtime the suite and everything it starts run on: Node 24 LTS or 22 (package.json's
// engines.node), never the machine's older node. scripts/install-node.sh brings the Node 24 pinned
// in scripts/node-runtime.lock into .runtime/node/ when the machine's node is older, and
// scripts/runtime.sh puts it first on PATH for tsc, eslint, tap and every process the tests start.
// (test/e2e/session.test.ts checks the same of the gateway and agent daemons in the lab.)
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { engines: { node: string } };
const atLeast = (v: string, min: string): boolean => {
  const a = v.split('.').map(Number);
  const b = min.split('.').map(Number);
  for (let i = 0; i < 3; i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  return true;
};

t.test('the suite runs on a Node that package.json’s engines.node accepts (22.13 or later)', async (t) => {
  const m = /^>=(\d+\.\d+(?:\.\d+)?)$/.exec(pkg.engines.node);
  t.ok(m, `engines.node is ">=X.Y" (scripts/runtime.sh reads it): ${pkg.engines.node}`);
  t.ok(atLeast(m![1]!, '22'), `the minimum ${m![1]} is Node 22 or later`);
  t.ok(atLeast(process.versions.node, m![1]!), `${process.version} >= ${m![1]}`);
});

t.test(
  '`node` on PATH, which the lab starts servers and daemons with, is the suite’s own runtime',
  async (t) => {
    const [version, execPath] = execFileSync('node', ['-p', 'process.version + "\\n" + process.execPath'], {
      encoding: 'utf8',
    })
      .trim()
      .split('\n');
    t.equal(version, process.version);
    t.equal(realpathSync(execPath!), realpathSync(process.execPath));
  },
);

t.test('tsx, which loads the daemons’ TypeScript, runs on it too', async (t) => {
  const out = execFileSync(join(root, 'node_modules/.bin/tsx'), ['-e', 'console.log(process.version)'], {
    encoding: 'utf8',
  });
  t.equal(out.trim(), process.version);
});

t.test(
  'a Node the bootstrap brought in is exactly the one pinned in scripts/node-runtime.lock',
  async (t) => {
    const arch = process.arch === 'arm64' ? 'arm64' : 'x64';
    const line = readFileSync(join(root, 'scripts/node-runtime.lock'), 'utf8')
      .split('\n')
      .find((l) => l.startsWith(`node-linux-${arch} `));
    const [, version, integrity] = (line ?? '').trim().split(/\s+/);
    t.match(version, /^24\.\d+\.\d+$/, 'the pinned runtime is a Node 24 LTS release');
    t.match(integrity, /^sha512-[A-Za-z0-9+/]{86}==$/, 'pinned with its sha512 integrity');
    const exe = realpathSync(process.execPath);
    if (exe.startsWith(realpathSync(root) + '/.runtime/')) {
      t.equal(exe, join(realpathSync(root), '.runtime', `node-${version}`, 'bin', 'node'));
      t.equal(process.version, `v${version}`);
    } else {
      // The machine's own node is recent enough: nothing was brought in, and it must not be older.
      t.ok(atLeast(process.versions.node, '22.13'), `the machine's own ${process.version} is used`);
    }
  },
);

t.test(
  'each command refuses a Node older than 22 with a clear message, before loading anything',
  async (t) => {
    // The machine may have no old Node at all: make this one report 20.20.2 before the command runs.
    const node20 =
      'data:text/javascript,Object.defineProperty(process,"version",{value:"v20.20.2"});' +
      'Object.defineProperty(process,"versions",{value:{...process.versions,node:"20.20.2"}});';
    for (const [bin, doc] of [
      ['gateway/bin/gsra-gateway.mjs', 'docs/gateway.md'],
      ['client-win/bin/gsra-agent.mjs', 'docs/agent.md'],
      ['ldap/bin/gsra-admin.mjs', 'README.md'],
    ] as const) {
      const name = bin.split('/').pop()!.replace('.mjs', '');
      const r = spawnSync(process.execPath, ['--import', node20, join(root, bin), 'status'], {
        encoding: 'utf8',
      });
      t.equal(r.status, 1, `${name} exits 1`);
      t.equal(
        r.stderr,
        `${name}: Node v20.20.2 is not supported; run it on Node 24 LTS or 22 (${doc}, "Runtime")\n`,
        `${name} says why and where to read more`,
      );
      t.equal(r.stdout, '', `${name} does nothing else`);
    }
  },
);
