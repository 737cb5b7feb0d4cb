#!/usr/bin/env node
// gsra-gateway: see gateway/src/cli.ts and docs/gateway.md. TypeScript runs through tsx,
// resolved from this file's location so the command works from any directory.
if (parseInt(process.versions.node, 10) < 22) {
  process.stderr.write(
    `gsra-gateway: Node ${process.version} is not supported; run it on Node 24 LTS or 22 (docs/gateway.md, "Runtime")\n`,
  );
  process.exit(1);
}
const { register } = await import('tsx/esm/api');

register();
const { main } = await import('../src/cli.ts');
process.exitCode = await main(process.argv.slice(2), {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
});
