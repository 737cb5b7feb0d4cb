// How a GSRA daemon runs in the foreground: until SIGTERM or SIGINT, then a clean stop (kernel
// rules removed, sessions released). The exit code says whether the stop went well.
import type { Logger } from './logger.ts';

export interface Stoppable {
  stop(): Promise<void>;
  /** SIGHUP, when the daemon supports it (re-read what it reads at start). */
  reload?(): Promise<void>;
}

export function serveUntilSignal(daemon: Stoppable, logger: Logger): Promise<number> {
  return new Promise<number>((resolve) => {
    const onHup = () => void daemon.reload?.();
    if (daemon.reload) process.on('SIGHUP', onHup);
    const stop = (signal: string) => {
      logger.info('stopping', { signal });
      process.off('SIGHUP', onHup);
      daemon.stop().then(
        () => resolve(0),
        (e: Error) => {
          logger.error('stop failed', { reason: e.message });
          resolve(1);
        },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
