//! Loading keyrings from a keys file or the environment (the signer crate
//! parses; this module does the I/O and checks the file's permissions).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use mediagate_signer::{KeyError, Keyring};

/// Why a keyring could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadKeysError {
    /// The file cannot be read.
    #[error("cannot read keys file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The keys are invalid.
    #[error("{path}: {source}")]
    Keys {
        /// The file (or environment variable).
        path: String,
        /// Why.
        source: KeyError,
    },
}

/// Reads a TOML keys file. Warns (through `tracing`) when other users may
/// read it.
pub fn load_keyring_file(path: &Path) -> Result<Keyring, LoadKeysError> {
    let shown = path.display().to_string();
    let read = |source| LoadKeysError::Read {
        path: shown.clone(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read)?;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(file = %shown, "keys file is readable by other users; chmod 600 it");
    }
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(read)?);
    Keyring::from_toml(&text).map_err(|source| LoadKeysError::Keys {
        path: shown,
        source,
    })
}

/// Reads the `id:secret[,id:secret...]` form from environment variable
/// `var`; `Ok(None)` when it is not set.
pub fn load_keyring_env(var: &str) -> Result<Option<Keyring>, LoadKeysError> {
    let Some(value) = std::env::var_os(var) else {
        return Ok(None);
    };
    let value = zeroize::Zeroizing::new(value.to_string_lossy().into_owned());
    Keyring::from_env_value(&value)
        .map(Some)
        .map_err(|source| LoadKeysError::Keys {
            path: format!("${var}"),
            source,
        })
}
