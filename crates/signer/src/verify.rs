//! Checking links: [`Verifier`], the [`RequestFacts`] it checks against, and
//! the [`Grant`] it returns.
//!
//! The order of the checks is part of the format (`docs/FORMAT.md`):
//! encoding, version, key id, MAC; then, on authenticated claims only,
//! lifetime, not-before, expiry, method, scope, client address.

use std::net::IpAddr;

use time::{Duration, OffsetDateTime};

use crate::claims::{Claims, net_allows, to_datetime};
use crate::key::Keyring;
use crate::limits::{TAG_LEN, VERSION};
use crate::path::MediaPath;
use crate::revoke::LinkId;
use crate::sign::DEFAULT_MAX_TTL;
use crate::values::Method;
use crate::wire::{self, MalformedToken};

/// The clock skew a [`Verifier`] tolerates unless configured otherwise.
pub const DEFAULT_LEEWAY: Duration = Duration::seconds(30);

/// Why a link does not grant a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The token is not a well-formed token.
    #[error("malformed token: {0}")]
    Malformed(#[from] MalformedToken),
    /// The token is of a format version this verifier does not know.
    #[error("unsupported token version {0}")]
    UnsupportedVersion(u8),
    /// No key in the keyring has the token's key id.
    #[error("unknown signing key")]
    UnknownKey,
    /// The MAC does not match: the token was altered or signed with another
    /// secret.
    #[error("bad signature")]
    BadSignature,
    /// The link's lifetime exceeds the verifier's maximum.
    #[error("link lifetime {lifetime} exceeds the maximum {max}")]
    LifetimeTooLong {
        /// The link's lifetime (expiry minus signing time).
        lifetime: Duration,
        /// The verifier's maximum.
        max: Duration,
    },
    /// The link is not valid yet (its not-before or signing time is ahead
    /// of the clock by more than the leeway).
    #[error("link is not valid until {valid_from}")]
    NotYetValid {
        /// When the link becomes valid.
        valid_from: OffsetDateTime,
    },
    /// The link has expired.
    #[error("link expired at {expired_at}")]
    Expired {
        /// When the link expired.
        expired_at: OffsetDateTime,
    },
    /// The link does not grant the request's method.
    #[error("method not granted by the link")]
    MethodNotAllowed,
    /// The request's path is outside the link's scope.
    #[error("path is outside the link's scope")]
    ScopeMismatch,
    /// The link is bound to other client addresses.
    #[error("client address does not match the link")]
    IpMismatch,
    /// The link is bound to a client address, and the request's is unknown.
    #[error("link is bound to a client address, and the request's is unknown")]
    IpUnknown,
}

impl VerifyError {
    /// A short, stable, machine-readable reason code, safe to send to
    /// clients and to log.
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::Malformed(_) => "malformed_token",
            VerifyError::UnsupportedVersion(_) => "unsupported_version",
            VerifyError::UnknownKey => "unknown_key",
            VerifyError::BadSignature => "bad_signature",
            VerifyError::LifetimeTooLong { .. } => "lifetime_too_long",
            VerifyError::NotYetValid { .. } => "not_yet_valid",
            VerifyError::Expired { .. } => "expired",
            VerifyError::MethodNotAllowed => "method",
            VerifyError::ScopeMismatch => "scope",
            VerifyError::IpMismatch | VerifyError::IpUnknown => "ip",
        }
    }
}

/// What a verifier checks a link against: the request's method, canonical
/// path and client address.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RequestFacts<'a> {
    /// The request's method.
    pub method: Method,
    /// The request's canonical path, relative to the mount point.
    pub path: &'a MediaPath<'a>,
    /// The client's address, when known.
    pub client_ip: Option<IpAddr>,
}

impl<'a> RequestFacts<'a> {
    /// Facts for a request with no known client address.
    pub fn new(method: Method, path: &'a MediaPath<'a>) -> Self {
        RequestFacts {
            method,
            path,
            client_ip: None,
        }
    }

    /// Sets the client's address.
    pub fn client_ip(mut self, ip: IpAddr) -> Self {
        self.client_ip = Some(ip);
        self
    }
}

/// Authenticated claims that grant a request: what [`Verifier::verify`]
/// returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    claims: Claims,
    link_id: LinkId,
}

impl Grant {
    /// The claims of the link.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// The link's id, for revocation (see [`crate::revoke`]).
    pub fn link_id(&self) -> LinkId {
        self.link_id
    }

    /// The claims, owned.
    pub fn into_claims(self) -> Claims {
        self.claims
    }
}

/// Checks tokens against requests with the keys of a [`Keyring`].
///
/// Defaults: leeway [`DEFAULT_LEEWAY`] (30 s) on every time check; maximum
/// lifetime [`DEFAULT_MAX_TTL`] (7 days).
#[derive(Debug, Clone)]
pub struct Verifier {
    keyring: Keyring,
    leeway: i64,
    max_ttl: Duration,
}

impl Verifier {
    /// A verifier that accepts links signed by any key of `keyring`.
    pub fn new(keyring: Keyring) -> Self {
        Verifier {
            keyring,
            leeway: DEFAULT_LEEWAY.whole_seconds(),
            max_ttl: DEFAULT_MAX_TTL,
        }
    }

    /// Clock skew tolerated between signer and verifier (default 30 s;
    /// negative values count as zero).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway.whole_seconds().max(0);
        self
    }

    /// Refuses links whose lifetime exceeds `max` (default 7 days), even
    /// when correctly signed.
    pub fn max_ttl(mut self, max: Duration) -> Self {
        self.max_ttl = max;
        self
    }

    /// The keyring.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Checks `token` against `request` at time `now`.
    pub fn verify(
        &self,
        token: &str,
        request: &RequestFacts<'_>,
        now: OffsetDateTime,
    ) -> Result<Grant, VerifyError> {
        with_decoded(token, |payload, tag| {
            self.check_mac(payload, tag)?;
            let fields = wire::decode_fields(payload)?;
            // A signed path that covers the request's canonical path is
            // canonical itself; only one that does not needs the full check,
            // which still comes first, so that the error is the same.
            let covered = fields.path.covers(request.path);
            if !covered {
                fields.path.validate()?;
            }
            self.check(&fields, covered, request, now)?;
            // Built only once every check passed: a refusal allocates nothing.
            Ok(Grant {
                claims: Claims::from_fields(payload, &fields),
                link_id: LinkId::from_tag(tag),
            })
        })
    }

    /// Checks only the encoding and the MAC, returning the authenticated
    /// claims without comparing them to a request or the clock. For tools
    /// that explain a link (`mediagate inspect`).
    pub fn authenticate(&self, token: &str) -> Result<Claims, VerifyError> {
        with_decoded(token, |payload, tag| {
            self.check_mac(payload, tag)?;
            Ok(Claims::parse(payload)?)
        })
    }

    /// Version, key id and MAC: everything before a payload is trusted.
    fn check_mac(&self, payload: &[u8], tag: &[u8; TAG_LEN]) -> Result<(), VerifyError> {
        if payload[0] != VERSION {
            return Err(VerifyError::UnsupportedVersion(payload[0]));
        }
        let key_id = wire::peek_key_id(payload)?;
        let key = self.keyring.get(key_id).ok_or(VerifyError::UnknownKey)?;
        // Constant-time comparison of the full 32-byte tag.
        if key.link_tag_matches(payload, tag) {
            Ok(())
        } else {
            Err(VerifyError::BadSignature)
        }
    }

    /// The checks on authenticated fields, in spec order; `covered` is
    /// whether the scope covers the request's path (decided while parsing).
    fn check(
        &self,
        fields: &wire::Fields<'_>,
        covered: bool,
        request: &RequestFacts<'_>,
        now: OffsetDateTime,
    ) -> Result<(), VerifyError> {
        let now = now.unix_timestamp();
        // Times are at most MAX_TIME, far inside i64.
        let (issued_at, expires) = (fields.issued_at as i64, fields.expires as i64);
        let lifetime = Duration::seconds(expires - issued_at);
        if lifetime > self.max_ttl {
            return Err(VerifyError::LifetimeTooLong {
                lifetime,
                max: self.max_ttl,
            });
        }
        if let Some(nbf) = fields.not_before {
            if now.saturating_add(self.leeway) < nbf as i64 {
                return Err(VerifyError::NotYetValid {
                    valid_from: to_datetime(nbf),
                });
            }
        }
        // A link signed in the future means the clocks disagree by more than
        // the leeway.
        if now.saturating_add(self.leeway) < issued_at {
            return Err(VerifyError::NotYetValid {
                valid_from: to_datetime(fields.issued_at),
            });
        }
        if now >= expires.saturating_add(self.leeway) {
            return Err(VerifyError::Expired {
                expired_at: to_datetime(fields.expires),
            });
        }
        if !fields.methods.contains(request.method) {
            return Err(VerifyError::MethodNotAllowed);
        }
        if !covered {
            return Err(VerifyError::ScopeMismatch);
        }
        if let Some(net) = fields.client_net {
            let ip = request.client_ip.ok_or(VerifyError::IpUnknown)?;
            if !net_allows(net, ip) {
                return Err(VerifyError::IpMismatch);
            }
        }
        Ok(())
    }
}

/// Decodes a token's claims **without checking its MAC**.
///
/// Nothing in the result is authenticated: use it only to explain a link to
/// a person (as `mediagate inspect` does without keys), never to grant
/// access.
pub fn decode_unverified(token: &str) -> Result<Claims, VerifyError> {
    with_decoded(token, |payload, _tag| {
        if payload[0] != VERSION {
            return Err(VerifyError::UnsupportedVersion(payload[0]));
        }
        Ok(Claims::parse(payload)?)
    })
}

/// Decodes `token` into a stack buffer (a heap one for unusually long
/// tokens) and hands its payload and tag to `f`.
pub(crate) fn with_decoded<T>(
    token: &str,
    f: impl FnOnce(&[u8], &[u8; TAG_LEN]) -> Result<T, VerifyError>,
) -> Result<T, VerifyError> {
    let len = wire::decoded_len(token)?;
    let mut stack = [0u8; wire::STACK_BUF_LEN];
    let mut heap = Vec::new();
    let buf = if len <= stack.len() {
        &mut stack[..len]
    } else {
        heap.resize(len, 0);
        &mut heap[..]
    };
    wire::decode_token_into(token, buf)?;
    // decoded_len guarantees at least MIN_TOKEN_LEN characters, which
    // decode to more than TAG_LEN + 1 bytes.
    match buf.split_last_chunk::<TAG_LEN>() {
        Some((payload, tag)) => f(payload, tag),
        None => Err(MalformedToken::TooShort.into()),
    }
}
