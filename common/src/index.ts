export * from './logger.ts';
export * from './config.ts';
