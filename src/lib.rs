#![doc = include_str!("../README.md")]
//!
//! This facade re-exports the two libraries as [`signer`] and [`verifier`];
//! the `mediagate` binary is the command line.
#![forbid(unsafe_code)]

pub use mediagate_signer as signer;
pub use mediagate_verifier as verifier;
