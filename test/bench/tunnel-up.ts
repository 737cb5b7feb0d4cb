// A tunnel is up when it carries a ping from en1 to the internal address behind it: the
// handshake through the home NAT and the whole path, checked before anything is measured.
import type { Lab } from '../lab/lab.ts';
import { waitFor } from '../lab/exec.ts';

export async function waitTunnelUp(lab: Lab, tunnel: string, target: string): Promise<void> {
  await waitFor(
    `the ${tunnel} tunnel to carry a ping from en1 to ${target}`,
    async () =>
      (await lab.exec('en1', ['ping', '-c1', '-W1', target], { allowFail: true, timeoutMs: 3000 })).code ===
      0,
    10_000,
    200,
  );
}
