//! Upload claims: what a `PUT` link allows beyond its path ([`UploadLimits`]),
//! and the pure checks of an upload against them ([`UploadError`]).
//!
//! A verifier checks the link first ([`Verifier::verify`](crate::Verifier)
//! with [`Method::Put`](crate::Method)), then the upload's declared length
//! and content type before reading any of its body
//! ([`Claims::admits_length`](crate::Claims::admits_length),
//! [`Claims::admits_content_type`](crate::Claims::admits_content_type)), and
//! the bytes it received at the end
//! ([`Claims::admits_received`](crate::Claims::admits_received)).

/// The upload claims of a link (field 17 of docs/FORMAT.md §3). The
/// default (all `None`, `replace` false) claims nothing: such a link
/// carries no upload field, and a `PUT` with it may only create a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[non_exhaustive]
pub struct UploadLimits {
    /// The most bytes the upload may have.
    pub max_size: Option<u64>,
    /// The SHA-256 of the exact bytes the upload must have.
    pub sha256: Option<[u8; 32]>,
    /// Whether an existing file may be replaced (default: create only).
    /// Only for a link to one file: a prefix link creates new names.
    pub replace: bool,
}

impl UploadLimits {
    /// Whether the limits claim anything (else no upload field is signed).
    pub fn is_empty(&self) -> bool {
        *self == UploadLimits::default()
    }
}

/// Why an upload does not satisfy the link's claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UploadError {
    /// More bytes than the link's `max_size` (declared or received).
    #[error("the upload is larger than the link allows")]
    TooLarge,
    /// The request's `Content-Type` is missing or not the signed one.
    #[error("the upload's content type is not the one the link names")]
    ContentType,
    /// The bytes received do not hash to the link's SHA-256.
    #[error("the upload's bytes do not match the link's digest")]
    DigestMismatch,
}

impl UploadError {
    /// A short, stable reason code: `too_large`, `content_type`,
    /// `digest_mismatch`.
    pub fn code(&self) -> &'static str {
        match self {
            UploadError::TooLarge => "too_large",
            UploadError::ContentType => "content_type",
            UploadError::DigestMismatch => "digest_mismatch",
        }
    }
}

/// Whether the request's `Content-Type` value `sent` is the signed one,
/// `signed`: the same `type/subtype` (ASCII case-insensitive), and each
/// parameter the link names present with the same value (names
/// case-insensitive, a quoted value the same as its unquoted form). Other
/// parameters in the request are allowed.
pub(crate) fn content_type_matches(signed: &str, sent: &str) -> bool {
    let (signed_essence, signed_params) = split_media_type(signed);
    let (sent_essence, sent_params) = split_media_type(sent);
    if !signed_essence.eq_ignore_ascii_case(sent_essence) || sent_essence.is_empty() {
        return false;
    }
    signed_params.into_iter().flatten().all(|(name, value)| {
        sent_params
            .clone()
            .into_iter()
            .flatten()
            .any(|(n, v)| n.eq_ignore_ascii_case(name) && v == value)
    })
}

/// `type/subtype` (trimmed) and the `name=value` parameters after it.
fn split_media_type(
    value: &str,
) -> (
    &str,
    Option<impl Iterator<Item = (&str, &str)> + Clone + '_>,
) {
    let mut parts = value.splitn(2, ';');
    let essence = parts.next().unwrap_or_default().trim();
    let params = parts.next().map(|rest| {
        rest.split(';').filter_map(|p| {
            let (name, value) = p.trim().split_once('=')?;
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            Some((name.trim(), value))
        })
    });
    (essence, params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_match_by_essence_and_signed_parameters() {
        for (signed, sent, ok) in [
            ("image/jpeg", "image/jpeg", true),
            ("image/jpeg", "IMAGE/JPEG", true),
            ("image/jpeg", " image/jpeg ", true),
            ("image/jpeg", "image/jpeg; q=1", true),
            ("image/jpeg", "image/png", false),
            ("image/jpeg", "image/jpegx", false),
            ("image/jpeg", "", false),
            (
                "text/plain; charset=utf-8",
                "text/plain;charset=utf-8",
                true,
            ),
            (
                "text/plain; charset=utf-8",
                "text/plain; Charset=\"utf-8\"",
                true,
            ),
            ("text/plain; charset=utf-8", "text/plain", false),
            (
                "text/plain; charset=utf-8",
                "text/plain; charset=latin1",
                false,
            ),
        ] {
            assert_eq!(content_type_matches(signed, sent), ok, "{signed} / {sent}");
        }
    }

    #[test]
    fn empty_limits_claim_nothing() {
        assert!(UploadLimits::default().is_empty());
        let l = UploadLimits {
            replace: true,
            ..UploadLimits::default()
        };
        assert!(!l.is_empty());
        assert_eq!(UploadError::TooLarge.code(), "too_large");
    }
}
