//! What a link grants: its claims, their rules, and the decoded [`Claims`].

use std::fmt::{self, Write as _};
use std::net::IpAddr;

use ipnet::IpNet;
use time::OffsetDateTime;

use crate::path::MediaPath;
use crate::upload::{self, UploadError, UploadLimits};
use crate::values::{DispositionType, Methods};
use crate::wire::{self, MalformedToken};

/// Renders a `Content-Disposition` value with both the ASCII `filename`
/// fallback and the RFC 8187 `filename*` form.
pub(crate) fn render_disposition(kind: DispositionType, filename: &str) -> String {
    let mut out = String::with_capacity(24 + filename.len() * 4);
    out.push_str(match kind {
        DispositionType::Inline => "inline",
        DispositionType::Attachment => "attachment",
    });
    if filename.is_empty() {
        return out;
    }
    out.push_str("; filename=\"");
    for c in filename.chars() {
        out.push(match c {
            ' '..='~' if c != '"' && c != '\\' && c != '%' => c,
            _ => '_',
        });
    }
    out.push_str("\"; filename*=UTF-8''");
    for b in filename.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

pub(crate) fn to_datetime(unix: u64) -> OffsetDateTime {
    // Every time in a decoded payload is at most wire::MAX_TIME, which is in range.
    OffsetDateTime::from_unix_timestamp(unix as i64).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Whether `ip` is in `net`; an IPv4-mapped IPv6 address counts as its IPv4
/// address, on either side: `::ffff:198.51.100.0/120` is the network
/// `198.51.100.0/24`, and holds the client `198.51.100.9` however it is
/// written (docs/FORMAT.md §7, step 12).
pub(crate) fn net_allows(net: IpNet, ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    if let (IpNet::V6(v6), IpAddr::V4(v4)) = (net, ip) {
        // A mapped network of at least the 96-bit prefix is an IPv4 one.
        if let (Some(base), Some(prefix)) = (
            v6.network().to_ipv4_mapped(),
            v6.prefix_len().checked_sub(96),
        ) {
            return ipnet::Ipv4Net::new(base, prefix).is_ok_and(|n| n.contains(&v4));
        }
    }
    net.contains(&ip)
}

/// The scope of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// Exactly this path.
    Exact(&'a str),
    /// Every path below this directory (ends in `/`).
    Prefix(&'a str),
}

/// The decoded claims of a token.
///
/// Obtained as a [`Grant`](crate::Grant) (after the MAC and every check
/// passed) or through [`decode_unverified`](crate::decode_unverified) (for
/// diagnostics only: nothing in it is authenticated).
#[derive(Clone, PartialEq, Eq)]
pub struct Claims {
    /// The payload the claims were parsed from (one allocation per decoded
    /// token); the text fields are spans of it. A payload has one spelling
    /// for given claims, so equal payloads are equal claims.
    payload: Box<[u8]>,
    spans: wire::TextSpans,
    methods: Methods,
    issued_at: u64,
    expires: u64,
    not_before: Option<u64>,
    client_net: Option<IpNet>,
    disposition: Option<DispositionType>,
    generation: Option<u64>,
    upload: Option<UploadLimits>,
}

impl Claims {
    /// Parses a payload (the token without its tag), checking every field.
    pub(crate) fn parse(payload: &[u8]) -> Result<Claims, MalformedToken> {
        let fields = wire::decode_fields(payload)?;
        fields.path.validate()?;
        Ok(Claims::from_fields(payload, &fields))
    }

    /// Claims from a payload and its decoded fields, whose path the caller
    /// has proven canonical (see [`wire::UncheckedPath`]).
    ///
    /// The payload is kept as it is: one copy, where assembling the text
    /// fields into a string would take four more copies and a UTF-8 check
    /// of all of it on every granted link (BENCHMARKS.md, "Design
    /// measurements").
    #[inline]
    pub(crate) fn from_fields(payload: &[u8], fields: &wire::Fields<'_>) -> Claims {
        Claims {
            payload: payload.into(),
            spans: fields.spans,
            methods: fields.methods,
            issued_at: fields.issued_at,
            expires: fields.expires,
            not_before: fields.not_before,
            client_net: fields.client_net,
            disposition: fields.disposition,
            generation: fields.generation,
            upload: fields.upload,
        }
    }

    /// A text field. Every span was checked when the payload was parsed
    /// (ASCII for the key id and subject, canonical for the path, UTF-8 for
    /// the rest), so this conversion cannot fail; safe code has no way to
    /// keep that first check's result, hence the second.
    fn text(&self, span: wire::Span) -> &str {
        std::str::from_utf8(span.of(&self.payload)).unwrap_or_default()
    }

    /// The id of the key that signed the link.
    pub fn key_id(&self) -> &str {
        self.text(self.spans.key_id)
    }

    /// The user the link was issued to.
    pub fn subject(&self) -> &str {
        self.text(self.spans.subject)
    }

    /// The user's bytes (printable ASCII), without a UTF-8 check.
    #[inline]
    pub(crate) fn subject_bytes(&self) -> &[u8] {
        self.spans.subject.of(&self.payload)
    }

    /// The signed path: one file, or a directory prefix ending in `/`.
    pub fn path(&self) -> &str {
        self.text(self.spans.path)
    }

    /// The signed scope.
    pub fn scope(&self) -> Scope<'_> {
        let p = self.path();
        if p.ends_with('/') {
            Scope::Prefix(p)
        } else {
            Scope::Exact(p)
        }
    }

    /// Whether the scope covers `path`.
    pub fn covers(&self, path: &MediaPath<'_>) -> bool {
        crate::path::scope_covers(self.path().as_bytes(), path.as_str().as_bytes())
    }

    /// The methods the link grants.
    pub fn methods(&self) -> Methods {
        self.methods
    }

    /// When the link was signed.
    pub fn issued_at(&self) -> OffsetDateTime {
        to_datetime(self.issued_at)
    }

    /// When the link was signed, in Unix seconds.
    #[inline]
    pub(crate) fn issued_at_secs(&self) -> u64 {
        self.issued_at
    }

    /// When the link stops working.
    pub fn expires_at(&self) -> OffsetDateTime {
        to_datetime(self.expires)
    }

    /// When the link starts working, if later than it was signed.
    pub fn not_before(&self) -> Option<OffsetDateTime> {
        self.not_before.map(to_datetime)
    }

    /// The client address range the link is bound to, if any.
    pub fn client_net(&self) -> Option<IpNet> {
        self.client_net
    }

    /// Whether `ip` may use the link (always, when it is not bound).
    /// IPv4-mapped IPv6 addresses count as their IPv4 address.
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        self.client_net.is_none_or(|net| net_allows(net, ip))
    }

    /// The signed disposition type, if any.
    pub fn disposition_type(&self) -> Option<DispositionType> {
        self.disposition
    }

    /// The signed download filename, if any.
    pub fn filename(&self) -> Option<&str> {
        let name = self.text(self.spans.filename);
        (!name.is_empty()).then_some(name)
    }

    /// The `Content-Disposition` header value the link asks for, with the
    /// RFC 8187 `filename*` form for non-ASCII names.
    pub fn content_disposition(&self) -> Option<String> {
        self.disposition
            .map(|kind| render_disposition(kind, self.text(self.spans.filename)))
    }

    /// The `Content-Type` the link asks for, if any.
    pub fn content_type(&self) -> Option<&str> {
        self.spans.content_type.map(|span| self.text(span))
    }

    /// The revocation generation, if any.
    pub fn generation(&self) -> Option<u64> {
        self.generation
    }

    /// The upload claims (empty when the link signs none; see
    /// [`UploadLimits`]).
    pub fn upload(&self) -> UploadLimits {
        self.upload.unwrap_or_default()
    }

    /// Whether an upload of `len` bytes (its `Content-Length`, or the bytes
    /// received so far) is within the link's `max_size`.
    pub fn admits_length(&self, len: u64) -> Result<(), UploadError> {
        match self.upload().max_size {
            Some(max) if len > max => Err(UploadError::TooLarge),
            _ => Ok(()),
        }
    }

    /// Whether an upload sent with the `Content-Type` value `sent` (`None`:
    /// none sent) may be stored under the link: always, unless the link
    /// names a content type, which it must then match (same
    /// `type/subtype`, ignoring case, and the parameters the link names).
    pub fn admits_content_type(&self, sent: Option<&str>) -> Result<(), UploadError> {
        match self.content_type() {
            None => Ok(()),
            Some(signed) if sent.is_some_and(|s| upload::content_type_matches(signed, s)) => Ok(()),
            Some(_) => Err(UploadError::ContentType),
        }
    }

    /// Whether the whole upload, `len` bytes that hash to `sha256`, is the
    /// one the link allows: within `max_size`, and the signed digest when
    /// there is one (compared in constant time).
    pub fn admits_received(&self, len: u64, sha256: &[u8; 32]) -> Result<(), UploadError> {
        self.admits_length(len)?;
        match &self.upload().sha256 {
            Some(signed)
                if !bool::from(subtle::ConstantTimeEq::ct_eq(&signed[..], &sha256[..])) =>
            {
                Err(UploadError::DigestMismatch)
            }
            _ => Ok(()),
        }
    }

    /// How long the link has left at `now` (zero once expired).
    pub fn remaining(&self, now: OffsetDateTime) -> time::Duration {
        let left = self.expires as i64 - now.unix_timestamp();
        time::Duration::seconds(left.max(0))
    }
}

impl fmt::Debug for Claims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claims")
            .field("key_id", &self.key_id())
            .field("subject", &self.subject())
            .field("path", &self.path())
            .field("methods", &self.methods)
            .field("issued_at", &self.issued_at)
            .field("expires", &self.expires)
            .field("not_before", &self.not_before)
            .field("client_net", &self.client_net)
            .field("disposition", &self.content_disposition())
            .field("content_type", &self.content_type())
            .field("generation", &self.generation)
            .field("upload", &self.upload)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::Method;

    #[test]
    fn disposition_has_ascii_fallback_and_rfc8187_form() {
        assert_eq!(
            render_disposition(DispositionType::Attachment, "report.pdf"),
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        );
        assert_eq!(
            render_disposition(DispositionType::Inline, "naïve \"x\".pdf"),
            "inline; filename=\"na_ve _x_.pdf\"; filename*=UTF-8''na%C3%AFve%20%22x%22.pdf"
        );
        assert_eq!(render_disposition(DispositionType::Inline, ""), "inline");
    }

    #[test]
    fn methods_wire_form() {
        assert_eq!(Methods::from_bits(0), None);
        assert_eq!(Methods::from_bits(8), None);
        assert_eq!(Methods::from_bits(3), Some(Methods::READ));
        assert!(Methods::READ.contains(Method::Head));
        assert!(!Methods::READ.contains(Method::Put));
        assert_eq!((Methods::GET | Methods::PUT).bits(), 5);
    }
}
