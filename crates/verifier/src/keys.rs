//! The handle that swaps the keyring of a running gate. (Keys files are
//! loaded by the signer crate: `mediagate_signer::keys::load_keyring_file`.)

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use mediagate_signer::time::Duration;
use mediagate_signer::{Keyring, Verifier};

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
}
