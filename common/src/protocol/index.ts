// GSRA control protocol, version 2: the message table and its codec, the crypto, the session
// channel both sides share, and the pure state machines of both sides. Specification:
// docs/protocol.md (§16 maps it to these files).
export * from './constants.ts';
export * from './errors.ts';
export { bytesToIp, checkIPv4, checkInName, checkName, ipToBytes } from './fields.ts';
export * from './messages.ts';
export * from './codec.ts';
export * from './crypto.ts';
export * from './retransmit.ts';
export * from './channel.ts';
export * from './reservation-table.ts';
export * from './gateway-types.ts';
export { GatewayControl } from './gateway-control.ts';
export * from './gateway-state.ts';
export * from './agent-pools.ts';
export * from './agent-types.ts';
export * from './agent-control.ts';
