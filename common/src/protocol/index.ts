// GSRA control protocol, version 1: codec, crypto and the pure state machines of both sides.
// Specification: docs/protocol.md.
export * from './constants.ts';
export * from './errors.ts';
export * from './codec.ts';
export * from './crypto.ts';
export * from './retransmit.ts';
export * from './gateway.ts';
export * from './agent.ts';
