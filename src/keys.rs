//! Where the command's keys come from (a keys file or `MEDIAGATE_KEYS`),
//! and `mediagate keygen`, which creates a keys file or rotates one.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use mediagate::signer::keys::{KeysFileAccess, load_keyring_env, load_keyring_file};
use mediagate::signer::time::OffsetDateTime;
use mediagate::signer::{Key, Keyring};

use crate::cli::KeysAction;
use crate::warn;

/// Who may read a keys file besides its owner: the owner alone, unless
/// `MEDIAGATE_KEYS_GROUP_READABLE` is `1` or `true` (secrets mounted
/// read-only for a group; see [`KeysFileAccess`]).
pub(crate) fn keys_access() -> Result<KeysFileAccess> {
    match std::env::var("MEDIAGATE_KEYS_GROUP_READABLE").as_deref() {
        Err(std::env::VarError::NotPresent) | Ok("" | "0" | "false") => {
            Ok(KeysFileAccess::OwnerOnly)
        }
        Ok("1" | "true") => Ok(KeysFileAccess::GroupReadable),
        _ => bail!("MEDIAGATE_KEYS_GROUP_READABLE must be 1, true, 0 or false"),
    }
}

/// Reads the keys file `file` as [`keys_access`] allows.
pub(crate) fn load_keys_file(file: &Path) -> Result<Keyring> {
    Ok(load_keyring_file(file, keys_access()?)?)
}

/// The keyring of a keys file or, without one, of `MEDIAGATE_KEYS`.
pub(crate) fn load_keys(file: Option<&Path>) -> Result<Keyring> {
    if let Some(file) = file {
        return load_keys_file(file);
    }
    load_keyring_env("MEDIAGATE_KEYS")?.ok_or_else(|| {
        anyhow!("no keys: pass --keys FILE, or set MEDIAGATE_KEYS_FILE or MEDIAGATE_KEYS")
    })
}

/// Writes `text` to `path` with mode 0600, atomically (a temporary file
/// beside it, renamed over it).
pub(crate) fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("keys"),
        std::process::id()
    ));
    // Written beside the target and renamed over it, so that a failure
    // leaves the old file (and no temporary one) in place.
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.with_context(|| format!("cannot write {}", path.display()))
}

/// What to do next after a keys file changed: servers read it again on
/// SIGHUP.
const RELOAD_HINT: &str = "servers using this file take the change on `kill -HUP <pid>` \
     (or `systemctl reload mediagate`)";

/// Creates the keys file `out` with one new key, or adds a new key to it
/// and, when `activate`, makes that the active one (the old keys still
/// verify).
pub(crate) fn keygen(out: &Path, id: Option<String>, activate: bool) -> Result<()> {
    let existing = if out.exists() {
        Some(load_keys_file(out)?)
    } else {
        None
    };
    let taken = |id: &str| {
        existing
            .as_ref()
            .is_some_and(|ring| ring.get(id.as_bytes()).is_some())
    };
    let id = match id {
        Some(id) if taken(&id) => {
            bail!(
                "{} already has a key {id:?}: choose another --id",
                out.display()
            )
        }
        Some(id) => id,
        // The signing time names the key; a second key in the same second
        // gets a suffix.
        None => {
            let stem = format!("k-{}", OffsetDateTime::now_utc().unix_timestamp());
            (1..)
                .map(|n| match n {
                    1 => stem.clone(),
                    n => format!("{stem}-{n}"),
                })
                .find(|id| !taken(id))
                .unwrap_or(stem)
        }
    };
    let key = Key::generate(&id)?;
    let ring = match existing {
        Some(ring) => {
            let mut ring = ring.with_verify_key(key)?;
            if activate {
                ring.set_active(&id)?;
            }
            ring
        }
        None => Keyring::new(key),
    };
    write_private(out, &ring.to_toml())?;
    warn(format_args!(
        "wrote {} (added key {id}; active key {}, {} key(s)); {RELOAD_HINT}",
        out.display(),
        ring.active().id(),
        ring.keys().count()
    ));
    Ok(())
}

/// `mediagate keys list|activate|retire`.
pub(crate) fn keys(action: KeysAction) -> Result<()> {
    match action {
        KeysAction::List { keys } => {
            let ring = load_keys_file(&keys)?;
            for key in ring.keys() {
                let mark = if key.id() == ring.active().id() {
                    "  (active: signs new links)"
                } else {
                    ""
                };
                say!("{}{mark}", key.id())?;
            }
            Ok(())
        }
        KeysAction::Activate { id, keys } => {
            let mut ring = load_keys_file(&keys)?;
            if ring.get(id.as_bytes()).is_none() {
                bail!(
                    "{}: no key {id:?} is listed (`mediagate keys list` shows them)",
                    keys.display()
                );
            }
            ring.set_active(&id)?;
            write_private(&keys, &ring.to_toml())?;
            warn(format_args!(
                "{}: {id} now signs new links; {RELOAD_HINT}",
                keys.display()
            ));
            Ok(())
        }
        KeysAction::Retire { id, keys } => {
            let mut ring = load_keys_file(&keys)?;
            ring.retire(&id)
                .map_err(|e| anyhow!("{}: {id}: {e}", keys.display()))?;
            write_private(&keys, &ring.to_toml())?;
            warn(format_args!(
                "{}: {id} retired; links it signed are refused once servers reload; {RELOAD_HINT}",
                keys.display()
            ));
            Ok(())
        }
    }
}
