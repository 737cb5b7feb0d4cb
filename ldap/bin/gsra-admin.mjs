#!/usr/bin/env -S node --import tsx
// gsra-admin: see ldap/src/cli/main.ts and docs/ldap.md.
import { main } from '../src/cli/main.ts';

process.exitCode = await main(process.argv.slice(2), {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  env: process.env,
});
