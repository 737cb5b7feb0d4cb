// A short story a newcomer can follow: numbered steps, each one line saying what was shown,
// and a non-zero exit code if any step failed.
export class Narrative {
  private n = 0;
  failures = 0;

  say(text: string): void {
    console.log(text);
  }

  /** Run one step; fn returns the detail to print (what was observed). */
  async step(title: string, fn: () => Promise<string | void>): Promise<boolean> {
    this.n += 1;
    const t0 = Date.now();
    try {
      const detail = await fn();
      console.log(`  ✔ ${this.n}. ${title}${detail ? ` — ${detail}` : ''} (${Date.now() - t0} ms)`);
      return true;
    } catch (e) {
      this.failures += 1;
      console.log(`  ✘ ${this.n}. ${title} — FAILED: ${(e as Error).message}`);
      return false;
    }
  }

  /** Throw unless cond: for use inside a step. */
  static expect(cond: unknown, what: string): void {
    if (!cond) throw new Error(what);
  }
}
