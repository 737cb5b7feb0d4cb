//! GSRA native packet engine. std + hand-declared FFI only (no crates).
//!
//! - `pkt`: bounds-checked IPv4/TCP/UDP/ICMP parsing, checksums (full and RFC 1624).
//! - `crypto`: AES-128-CTR and HMAC-SHA256 from the OS (libcrypto / CNG).
//! - `pccom`: the PCCOM data-plane construction (docs/pccom.md).
//! - `seqadj`: TCP sequence adjustment after an ALG changed a segment's length.
//! - `engine`: VAT / translation tables with their PIT, held packets, punts, events, expiry.
//! - `backend`: the packet-source boundary (Linux NFQUEUE, Windows WFP stub).
//! - `napi`: the N-API surface used by native/index.ts.

pub mod backend;
pub mod bench;
pub mod crypto;
pub mod engine;
pub mod pccom;
pub mod pkt;
pub mod seqadj;

#[cfg(test)]
mod tests;

mod napi;
