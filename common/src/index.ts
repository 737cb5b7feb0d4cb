export * from './logger.ts';
export * from './config.ts';
export * from './dns.ts';
export * as protocol from './protocol/index.ts';
export * from './service.ts';
export * from './store/state-store.ts';
export * from './store/store-key.ts';
export { JournalStore, type JournalStoreOptions } from './store/journal-store.ts';
