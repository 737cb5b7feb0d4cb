export * from './logger.ts';
export * from './config.ts';
export * from './dns.ts';
