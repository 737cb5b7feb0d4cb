import type { Timing } from './args.ts';
import type { Figure } from './figures.ts';
import type { StepError } from './compare.ts';
export async function gatewayCost(
  _t: Timing,
  _say: (s: string) => void,
): Promise<{ figures: Figure[]; errors: StepError[] }> {
  throw new Error('not yet');
}
