// @gsra/agent: the GSRA agent daemon and its parts.
export * from './config.ts';
export * from './daemon.ts';
export * from './data-plane.ts';
export * from './vin.ts';
