//! mediagate: expiring signed links for private media, and the edge server
//! that checks them and streams the files.
//!
//! This facade re-exports the two libraries; the `mediagate` binary is the
//! command line.
//!
//! ```
//! use mediagate::signer::{Key, Keyring, Signer};
//! use mediagate::signer::time::Duration;
//!
//! let signer = Signer::new(Keyring::new(Key::generate("k1")?));
//! let link = signer.link("/videos/a.mp4").user("42").ttl(Duration::minutes(5)).sign()?;
//! assert!(link.url("/media").starts_with("/media/videos/a.mp4?mg_token="));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

pub use mediagate_signer as signer;
pub use mediagate_verifier as verifier;
