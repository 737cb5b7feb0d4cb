#!/usr/bin/env node
// gsra-agent: see client-win/src/cli.ts and docs/agent.md. TypeScript runs through tsx,
// resolved from this file's location so the command works from any directory.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli.ts');
process.exitCode = await main(process.argv.slice(2), {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  env: process.env,
});
