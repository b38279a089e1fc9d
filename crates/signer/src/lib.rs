#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod claims;
mod key;
#[cfg(feature = "keys-file")]
mod keys_file;
pub mod limits;
mod path;
pub mod revoke;
mod scan;
mod sign;
pub mod transport;
mod upload;
mod values;
mod verify;
mod wire;

pub use claims::{Claims, Scope};
pub use key::{Key, KeyError, KeyPlace, Keyring};
pub use limits::ClaimError;
pub use path::{MediaPath, PathError, encode_path};
pub use sign::{DEFAULT_MAX_TTL, LinkBuilder, SignError, SignedLink, Signer};
pub use upload::{UploadError, UploadLimits};
pub use values::{DispositionType, Method, Methods};
pub use verify::{DEFAULT_LEEWAY, Grant, RequestFacts, Verifier, VerifyError, decode_unverified};
pub use wire::MalformedToken;

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
    #[cfg(feature = "keys-file")]
    pub use crate::keys_file::{
        KeysFileAccess, LoadKeysError, load_keyring_env, load_keyring_file,
    };
}
