export * from './logger.ts';
export * from './config.ts';
export * from './dns.ts';
export * as protocol from './protocol/index.ts';
export * from './service.ts';
