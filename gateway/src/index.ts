// @gsra/gateway: the GSRA router daemon and its parts.
export * from './config.ts';
export * from './daemon.ts';
export * from './data-plane.ts';
export * from './dns-responder.ts';
export * from './policy.ts';
export * from './ports.ts';
