// A step of the benchmark that may fail on its own: its error is recorded (for the summary, the
// meta file and the exit code) and said, and the steps after it still run.

export interface StepError {
  step: string;
  error: string;
}

export function stepRunner(errors: StepError[], say: (s: string) => void, prefix = '') {
  return async (name: string, f: () => Promise<void>): Promise<void> => {
    const step = `${prefix}${name}`;
    try {
      await f();
    } catch (e) {
      errors.push({ step, error: (e as Error).message });
      say(`${step}: FAILED: ${(e as Error).message}`);
    }
  };
}
