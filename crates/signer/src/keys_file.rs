//! Loading a keyring from a keys file or an environment variable: the I/O
//! around [`Keyring::from_toml`] and [`Keyring::from_env_value`], with the
//! file's permissions checked as ssh checks a private key's. Behind the
//! `keys-file` feature, so the pure library does no I/O.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::{KeyError, Keyring};

/// Why a keyring could not be loaded. No message quotes a value read from
/// the keys file or variable (see [`KeyError`]).
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
    /// The file may be read or changed by users other than the one allowed
    /// by [`KeysFileAccess`]: refused, as ssh refuses such a private key.
    #[error(
        "keys file {path} {problem} (mode {mode:04o}): run `chmod 600 {path}` \
         (and chown it to the user that runs mediagate)"
    )]
    Exposed {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
        /// Who else may use it.
        problem: &'static str,
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

impl LoadKeysError {
    /// A short, stable name for the error: `keys_unreadable`,
    /// `keys_exposed`, or the [`KeyError::code`] of invalid keys.
    pub fn code(&self) -> &'static str {
        match self {
            LoadKeysError::Read { .. } => "keys_unreadable",
            LoadKeysError::Exposed { .. } => "keys_exposed",
            LoadKeysError::Keys { source, .. } => source.code(),
        }
    }
}

/// Who besides its owner may read a keys file that
/// [`load_keyring_file`] accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeysFileAccess {
    /// Nobody: mode 0600 or 0400, owned by the user running the process
    /// (the default).
    #[default]
    OwnerOnly,
    /// Also its group, read-only (0640, 0440), owned by the running user
    /// or by root: secrets mounted read-only for a service's group
    /// (Kubernetes `defaultMode: 0440` with `fsGroup`, systemd
    /// credentials). Never writable by the group, never readable by others.
    GroupReadable,
}

/// Reads a TOML keys file, refusing one that other users may read or
/// change (see [`KeysFileAccess`]). The checks use the opened file
/// (`fstat`), so a file swapped between check and read is not missed.
pub fn load_keyring_file(path: &Path, access: KeysFileAccess) -> Result<Keyring, LoadKeysError> {
    use std::os::unix::fs::MetadataExt;
    let shown = path.display().to_string();
    let read = |source| LoadKeysError::Read {
        path: shown.clone(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    let meta = file.metadata().map_err(read)?;
    let mode = meta.permissions().mode() & 0o7777;
    let owner = meta.uid();
    let me = rustix::process::geteuid().as_raw();
    let exposed = |problem| LoadKeysError::Exposed {
        path: shown.clone(),
        mode,
        problem,
    };
    let (others_may, owners) = match access {
        KeysFileAccess::OwnerOnly => (0o077, [me, me]),
        KeysFileAccess::GroupReadable => (0o037, [me, 0]),
    };
    // A character device (`/dev/stdin` on a terminal, `/dev/zero`) has no
    // owner to speak of; files, pipes and FIFOs are checked.
    let device = std::os::unix::fs::FileTypeExt::is_char_device(&meta.file_type());
    if !device && mode & others_may != 0 {
        return Err(exposed(match access {
            KeysFileAccess::OwnerOnly => "may be read or changed by group or others",
            KeysFileAccess::GroupReadable => "may be changed by its group, or used by others",
        }));
    }
    if !device && !owners.contains(&owner) {
        return Err(exposed("is owned by another user"));
    }
    let text = read_small(file, meta.len()).map_err(read)?;
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
fn read_small(file: std::fs::File, len: u64) -> std::io::Result<zeroize::Zeroizing<String>> {
    use std::io::Read as _;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Key;

    #[test]
    fn keys_files_are_read_from_files_and_pipes_up_to_a_limit() {
        let dir = tempfile::tempdir().unwrap();
        let toml = Keyring::new(Key::new("k1", &[7u8; 32]).unwrap()).to_toml();
        let file = dir.path().join("keys.toml");
        private(&file, &toml);
        assert!(
            load_keyring_file(&file, OWNER)
                .unwrap()
                .get(b"k1")
                .is_some()
        );
        // A pipe, as `--keys <(vault read ...)` gives.
        let fifo = dir.path().join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .args(["-m", "600"])
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let writer = {
            let (fifo, toml) = (fifo.clone(), toml.clone());
            std::thread::spawn(move || std::fs::write(fifo, toml).unwrap())
        };
        assert!(
            load_keyring_file(&fifo, OWNER)
                .unwrap()
                .get(b"k1")
                .is_some()
        );
        writer.join().unwrap();
        // Past the limit: refused, whether a file or an endless device.
        let big = dir.path().join("big.toml");
        let mut padded = toml.clone();
        padded.push_str(&"#".repeat(MAX_KEYS_FILE as usize));
        private(&big, &padded);
        for path in [big.as_path(), Path::new("/dev/zero")] {
            let err = load_keyring_file(path, OWNER).unwrap_err().to_string();
            assert!(err.contains("larger than 1 MiB"), "{err}");
        }
    }

    const OWNER: KeysFileAccess = KeysFileAccess::OwnerOnly;

    fn private(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    #[test]
    fn keys_files_others_may_use_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys.toml");
        private(
            &file,
            &Keyring::new(Key::new("k1", &[7u8; 32]).unwrap()).to_toml(),
        );
        let group = KeysFileAccess::GroupReadable;
        for (mode, owner_only, group_readable) in [
            (0o600, true, true),
            (0o400, true, true),
            (0o640, false, true),
            (0o440, false, true),
            (0o660, false, false),
            (0o644, false, false),
            (0o604, false, false),
            (0o602, false, false),
            (0o700, true, true),
        ] {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
            for (access, accepted) in [(OWNER, owner_only), (group, group_readable)] {
                let loaded = load_keyring_file(&file, access);
                assert_eq!(loaded.is_ok(), accepted, "{mode:o} {access:?}");
                if let Err(e) = loaded {
                    assert!(matches!(e, LoadKeysError::Exposed { .. }));
                    assert!(e.to_string().contains("chmod 600"), "{e}");
                }
            }
        }
    }
}
