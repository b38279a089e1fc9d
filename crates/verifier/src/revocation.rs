//! The revocation check a gate makes after a link is granted and before
//! any file is opened: [`RevocationCheck`], which an embedding app may
//! implement over its own store, and [`RevocationsHandle`], a
//! [`Revocations`] set replaced whole when its source changes (what
//! `mediagate serve` does with its revocations file).

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use mediagate_signer::Grant;
use mediagate_signer::revoke::{Revocations, Revoked};

/// What a [`RevocationCheck`] says of a granted link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Revocation {
    /// Not revoked: serve it.
    Valid,
    /// Revoked: 403 `revoked`.
    Revoked(Revoked),
    /// Not known: the rules are too old to trust (their source has been
    /// out of reach for too long). 503 `revocations_unavailable`, with
    /// `Retry-After`, rather than serve a link that may have been revoked.
    Unknown,
}

/// Decides whether a granted link is revoked. Called once per granted
/// request, on the request's thread: keep it to a lookup in memory.
pub trait RevocationCheck: Send + Sync + fmt::Debug {
    /// What the rules say of `grant`.
    fn check(&self, grant: &Grant) -> Revocation;

    /// Whether the health check should report the rules as not current
    /// (503 `revocations_unavailable`); default `false`.
    fn unhealthy(&self) -> bool {
        false
    }

    /// Whether the rules' source is out of reach, though the rules are
    /// still trusted: the health check answers 200 with
    /// `mediagate-revocations: stale`; default `false`.
    fn out_of_reach(&self) -> bool {
        false
    }
}

/// A revocations set that every clone of a gate checks, replaced whole by
/// [`replace`](Self::replace) while requests read it without a lock.
#[derive(Clone, Default)]
pub struct RevocationsHandle {
    current: Arc<ArcSwap<Revocations>>,
}

impl RevocationsHandle {
    /// A handle holding `revocations`.
    pub fn new(revocations: Revocations) -> Self {
        RevocationsHandle {
            current: Arc::new(ArcSwap::from_pointee(revocations)),
        }
    }

    /// Checks every link from now on against `revocations`.
    pub fn replace(&self, revocations: Revocations) {
        self.current.store(Arc::new(revocations));
    }

    /// The set in force now.
    pub fn current(&self) -> Arc<Revocations> {
        self.current.load_full()
    }
}

impl RevocationsHandle {
    /// Why the rules in force revoke `grant`, if they do.
    #[inline]
    pub fn revoked(&self, grant: &Grant) -> Option<Revoked> {
        let set = self.current.load();
        if set.is_empty() {
            return None;
        }
        set.check(grant.claims(), grant.link_id())
    }
}

impl RevocationCheck for RevocationsHandle {
    #[inline]
    fn check(&self, grant: &Grant) -> Revocation {
        match self.revoked(grant) {
            Some(why) => Revocation::Revoked(why),
            None => Revocation::Valid,
        }
    }
}

impl fmt::Debug for RevocationsHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationsHandle")
            .field("rules", &self.current.load().len())
            .finish()
    }
}
