//! Keyrings from a keys file, the environment, or TOML text; shared by
//! `Signer` and `Verifier`.

use std::path::PathBuf;

use mediagate_signer::keys::{KeysFileAccess, load_keyring_env, load_keyring_file};
use mediagate_signer::{Key, Keyring};
use pyo3::prelude::*;

use crate::errors;

/// Reads a keys file with the GIL released (it is file I/O). The file must
/// be readable by its owner only (0600), or also by its group when
/// `group_readable` (0640, as systemd credentials and Kubernetes secrets
/// mount them).
pub(crate) fn from_file(py: Python<'_>, path: PathBuf, group_readable: bool) -> PyResult<Keyring> {
    let access = if group_readable {
        KeysFileAccess::GroupReadable
    } else {
        KeysFileAccess::OwnerOnly
    };
    py.detach(|| load_keyring_file(&path, access))
        .map_err(errors::load_keys)
}

/// Reads `id:secret[,id:secret...]` from the environment variable `var`.
pub(crate) fn from_env(var: &str) -> PyResult<Keyring> {
    match load_keyring_env(var) {
        Ok(Some(ring)) => Ok(ring),
        Ok(None) => Err(errors::error(
            errors::Class::Keys,
            "keys_missing",
            format!("the environment variable {var} is not set"),
            None,
        )),
        Err(e) => Err(errors::load_keys(e)),
    }
}

/// Parses a keys file's text.
pub(crate) fn from_toml(text: &str) -> PyResult<Keyring> {
    Keyring::from_toml(text).map_err(errors::keys)
}

/// A new keys file's text holding one fresh random key named `key_id`
/// (write it with mode 0600; `mediagate keygen` does the same).
#[pyfunction]
#[pyo3(signature = (key_id = "k1"))]
pub(crate) fn generate_keys(key_id: &str) -> PyResult<String> {
    let key = Key::generate(key_id).map_err(errors::keys)?;
    Ok(Keyring::new(key).to_toml().to_string())
}
