#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod claims;
mod key;
mod path;
mod scan;
mod sign;
pub mod transport;
mod verify;
mod wire;

pub use claims::{ClaimError, Claims, DispositionType, Method, Methods, Scope};
pub use key::{
    GENERATED_SECRET_LEN, Key, KeyError, KeyPlace, Keyring, MAX_KEY_ID_LEN, MAX_SECRET_LEN,
    MIN_SECRET_LEN,
};
pub use path::{MAX_PATH_LEN, MAX_SEGMENT_LEN, MediaPath, PathError, encode_path};
pub use sign::{DEFAULT_MAX_TTL, LinkBuilder, SignError, SignedLink, Signer};
pub use verify::{DEFAULT_LEEWAY, Grant, RequestFacts, Verifier, VerifyError, decode_unverified};
pub use wire::{
    MAX_CONTENT_TYPE_LEN, MAX_FILENAME_LEN, MAX_SUBJECT_LEN, MAX_TIME, MAX_TOKEN_LEN,
    MIN_TOKEN_LEN, MalformedToken, TAG_LEN, VERSION,
};

/// Re-exported so that callers name the same `Duration` and `OffsetDateTime`.
pub use time;

/// The link format v1, byte by byte: the specification other
/// implementations follow (`docs/FORMAT.md`).
pub mod spec {
    #![doc = include_str!("../../../docs/FORMAT.md")]
}

/// Key handling: the keys file, the environment form, and rotation.
pub mod keys {
    #![doc = include_str!("key_docs.md")]
    pub use crate::key::*;
}
