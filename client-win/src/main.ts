// The agent's entry point when bundled into one file (dist/win/gsra-agent.mjs, run by the
// Windows service host with the node.exe beside it). bin/gsra-agent.mjs is the same through tsx.
import { main } from './cli.ts';

process.exitCode = await main(process.argv.slice(2), {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  env: process.env,
});
