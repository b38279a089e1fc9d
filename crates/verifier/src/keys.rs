//! Loading keyrings from a keys file or the environment (the signer crate
//! parses; this module does the I/O and checks the file's permissions), and
//! the handle that swaps the keyring of a running gate.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use mediagate_signer::time::Duration;
use mediagate_signer::{KeyError, Keyring, Verifier};

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
    let text = read_small(path, meta.len()).map_err(read)?;
    Keyring::from_toml(&text).map_err(|source| LoadKeysError::Keys {
        path: shown,
        source,
    })
}

/// The most bytes read from a keys file: thousands of keys fit.
const MAX_KEYS_FILE: u64 = 1 << 20;

/// Reads a keys file of at most [`MAX_KEYS_FILE`] bytes into memory that
/// is zeroed when dropped, sized once from `len` so that no partial copy of
/// the secrets is left behind by a reallocation. A pipe (`--keys <(...)`)
/// works; a device that never ends (`/dev/zero`) is refused at the limit
/// instead of filling memory.
fn read_small(path: &Path, len: u64) -> std::io::Result<zeroize::Zeroizing<String>> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)?;
    let mut text =
        zeroize::Zeroizing::new(String::with_capacity(len.min(MAX_KEYS_FILE) as usize + 1));
    file.take(MAX_KEYS_FILE + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_KEYS_FILE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "larger than 1 MiB, not a keys file",
        ));
    }
    Ok(text)
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

/// The keyring a running [`MediaGate`](crate::MediaGate) checks links with,
/// which a key rotation replaces without a restart (`mediagate serve` does
/// on `SIGHUP`). From [`MediaGate::keyring_handle`](crate::MediaGate::keyring_handle);
/// the gate's clones share it, on every worker thread.
#[derive(Clone)]
pub struct KeyringHandle {
    /// Read by every request without a lock; replaced whole.
    current: Arc<ArcSwap<Verifier>>,
    leeway: Duration,
    max_ttl: Duration,
}

impl KeyringHandle {
    pub(crate) fn new(keyring: Keyring, leeway: Duration, max_ttl: Duration) -> Self {
        KeyringHandle {
            current: Arc::new(ArcSwap::new(verifier(keyring, leeway, max_ttl))),
            leeway,
            max_ttl,
        }
    }

    /// Checks every link from now on against `keyring`, with the same leeway
    /// and maximum lifetime. A request already past its link check is not
    /// affected. Links signed with a key that `keyring` no longer holds are
    /// refused from then on (`unknown_key`).
    pub fn replace(&self, keyring: Keyring) {
        let next = verifier(keyring, self.leeway, self.max_ttl);
        self.current.store(next);
    }

    /// The verifier for one request.
    pub(crate) fn verifier(&self) -> arc_swap::Guard<Arc<Verifier>> {
        self.current.load()
    }
}

/// A verifier of `keyring` with the gate's leeway and maximum lifetime.
fn verifier(keyring: Keyring, leeway: Duration, max_ttl: Duration) -> Arc<Verifier> {
    Arc::new(Verifier::new(keyring).leeway(leeway).max_ttl(max_ttl))
}

impl fmt::Debug for KeyringHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The verifier's keyring shows key ids only, never a secret.
        f.debug_struct("KeyringHandle")
            .field("verifier", &**self.current.load())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mediagate_signer::Key;

    #[test]
    fn debug_names_key_ids_never_secrets() {
        let secret = [0x5au8; 32];
        let handle = KeyringHandle::new(
            Keyring::new(Key::new("first", &secret).unwrap()),
            Duration::seconds(5),
            Duration::days(1),
        );
        handle.replace(Keyring::new(Key::new("second", &secret).unwrap()));
        let shown = format!("{handle:?}");
        assert!(
            shown.contains("second") && !shown.contains("first"),
            "{shown}"
        );
        // Neither the bytes nor their spellings (decimal, hex, base64url).
        for needle in ["90, 90", "5a5a", "WlpaWlpa"] {
            assert!(!shown.contains(needle), "{shown}");
        }
    }

    #[test]
    fn keys_files_are_read_from_files_and_pipes_up_to_a_limit() {
        let dir = tempfile::tempdir().unwrap();
        let toml = Keyring::new(Key::new("k1", &[7u8; 32]).unwrap()).to_toml();
        let file = dir.path().join("keys.toml");
        std::fs::write(&file, &toml).unwrap();
        assert!(load_keyring_file(&file).unwrap().get(b"k1").is_some());
        // A pipe, as `--keys <(vault read ...)` gives.
        let fifo = dir.path().join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let writer = {
            let (fifo, toml) = (fifo.clone(), toml.clone());
            std::thread::spawn(move || std::fs::write(fifo, toml).unwrap())
        };
        assert!(load_keyring_file(&fifo).unwrap().get(b"k1").is_some());
        writer.join().unwrap();
        // Past the limit: refused, whether a file or an endless device.
        let big = dir.path().join("big.toml");
        let mut padded = toml.clone();
        padded.push_str(&"#".repeat(MAX_KEYS_FILE as usize));
        std::fs::write(&big, padded).unwrap();
        for path in [big.as_path(), Path::new("/dev/zero")] {
            let err = load_keyring_file(path).unwrap_err().to_string();
            assert!(err.contains("larger than 1 MiB"), "{err}");
        }
    }
}
