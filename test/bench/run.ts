// `npm run bench [-- --only <case>[,<case>]]`: runs the registered benchmark cases one after the
// other; each prints JSON lines {"case":...,"metric":...,"value":...} on stdout. Never asserts
// on timings: figures are for reading and comparing, not pass/fail.
import { parseArgs } from 'node:util';

export type Emit = (line: Record<string, string | number>) => void;
export interface BenchCase {
  name: string;
  description: string;
  run(emit: Emit): Promise<void>;
}

/** Registered cases, loaded lazily so `--only x` does not load the others. */
const registry: Record<string, () => Promise<BenchCase>> = {
  engine: async () => (await import('./engine.ts')).engineCase,
  lab: async () => (await import('./lab.ts')).labCase,
};

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { only: { type: 'string' }, list: { type: 'boolean' } } });
  if (values.list) {
    for (const name of Object.keys(registry)) console.log(name);
    return 0;
  }
  const wanted = values.only ? values.only.split(',').map((s) => s.trim()) : Object.keys(registry);
  const unknown = wanted.filter((w) => !(w in registry));
  if (unknown.length) {
    console.error(`bench: unknown case(s) ${unknown.join(', ')}; known: ${Object.keys(registry).join(', ')}`);
    return 2;
  }
  const emit: Emit = (line) => console.log(JSON.stringify(line));
  for (const name of wanted) {
    const c = await registry[name]!();
    console.error(`bench: ${c.name}: ${c.description}`);
    await c.run(emit);
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
