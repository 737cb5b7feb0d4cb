//! GSRA native packet engine. std + hand-declared FFI only (no crates).
//!
//! - `pkt`: bounds-checked IPv4/TCP/UDP/ICMP parsing, checksums (full and RFC 1624).
//! - `crypto`: AES-128-CTR and HMAC-SHA256 from the OS (`crypto/openssl_linux.rs`,
//!   `crypto/cng_windows.rs`).
//! - `pccom`: the PCCOM data-plane construction (docs/pccom.md).
//! - `seqadj`: TCP sequence adjustment after an ALG changed a segment's length.
//! - `engine`: the flow table with its PIT, and the data path — `engine/protect.rs` and
//!   `engine/unprotect.rs` — with held packets, punts, ICMP, expiry and events around it.
//! - `gso`: TCP segmentation of GSO super-packets taken on the sending side.
//! - `host`: the engine as the N-API layer and the backends share it.
//! - `backend`: the OS packet path (`backend/nfq_linux.rs`, `backend/windivert_windows.rs`).
//! - `dpapi_windows`: DPAPI for the Windows agent's cached login.
//! - `napi`: the N-API surface used by native/index.ts.
//! - `bench`: the in-engine benchmark loop.

pub mod backend;
pub mod bench;
pub mod crypto;
#[cfg(windows)]
pub mod dpapi_windows;
pub mod engine;
pub mod gso;
pub mod host;
mod lock;
pub mod pccom;
pub mod pkt;
pub mod seqadj;

mod napi;
