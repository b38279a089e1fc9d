//! What a link grants: its claims, their rules, and the decoded [`Claims`].

use std::fmt::{self, Write as _};
use std::net::IpAddr;
use std::ops::BitOr;

use ipnet::IpNet;
use time::OffsetDateTime;

use crate::path::MediaPath;
use crate::scan;
use crate::wire::{self, MAX_CONTENT_TYPE_LEN, MAX_FILENAME_LEN, MAX_SUBJECT_LEN, MalformedToken};

/// An HTTP method a link can grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `PUT` (reserved for upload links).
    Put,
}

impl Method {
    /// Maps an HTTP method name (case-sensitive, as on the wire).
    pub fn from_name(name: &str) -> Option<Method> {
        match name {
            "GET" => Some(Method::Get),
            "HEAD" => Some(Method::Head),
            "PUT" => Some(Method::Put),
            _ => None,
        }
    }

    /// The name, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Put => "PUT",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Method::Get => 1,
            Method::Head => 2,
            Method::Put => 4,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The set of methods a link grants. The default is [`Methods::READ`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Methods(u8);

impl Methods {
    /// `GET` only.
    pub const GET: Methods = Methods(1);
    /// `HEAD` only.
    pub const HEAD: Methods = Methods(2);
    /// `PUT` only (for upload links).
    pub const PUT: Methods = Methods(4);
    /// `GET` and `HEAD`: what a download link grants.
    pub const READ: Methods = Methods(3);
    const ALL_BITS: u8 = 7;

    /// The wire form.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// Reads the wire form: a non-empty set of known methods.
    pub fn from_bits(bits: u8) -> Option<Methods> {
        (bits != 0 && bits & !Self::ALL_BITS == 0).then_some(Methods(bits))
    }

    /// Whether `method` is in the set.
    pub fn contains(self, method: Method) -> bool {
        self.0 & method.bit() != 0
    }

    /// The methods in the set, in a fixed order.
    pub fn iter(self) -> impl Iterator<Item = Method> {
        [Method::Get, Method::Head, Method::Put]
            .into_iter()
            .filter(move |m| self.contains(*m))
    }
}

impl Default for Methods {
    fn default() -> Self {
        Methods::READ
    }
}

/// The set of one method.
impl From<Method> for Methods {
    fn from(method: Method) -> Methods {
        Methods(method.bit())
    }
}

impl BitOr for Methods {
    type Output = Methods;
    fn bitor(self, rhs: Methods) -> Methods {
        Methods(self.0 | rhs.0)
    }
}

impl fmt::Debug for Methods {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// How the browser should present the file (RFC 6266).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DispositionType {
    /// Show in the browser.
    Inline = 0,
    /// Download as a file.
    Attachment = 1,
}

/// Why a claim value is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimError {
    /// The subject is empty, longer than 128 bytes, or not printable ASCII
    /// without spaces.
    #[error("user id must be 1 to {MAX_SUBJECT_LEN} printable ASCII characters without spaces")]
    Subject,
    /// The filename is empty, too long, or holds a control character, `/`
    /// or `\`.
    #[error(
        "filename must be 1 to {MAX_FILENAME_LEN} bytes without control characters, '/' or '\\'"
    )]
    Filename,
    /// The content type is not `type/subtype[; name=value]...` of HTTP
    /// tokens, or is longer than 127 bytes.
    #[error("content type must look like type/subtype[; name=value]")]
    ContentType,
}

/// Subjects are 1..=128 bytes of printable ASCII (0x21..=0x7E).
#[inline]
pub(crate) fn check_subject(s: &str) -> Result<(), ClaimError> {
    check_subject_bytes(s.as_bytes())
}

#[inline]
pub(crate) fn check_subject_bytes(s: &[u8]) -> Result<(), ClaimError> {
    let ok = (1..=MAX_SUBJECT_LEN).contains(&s.len())
        && scan::any_byte(s, |b| u8::from(!b.is_ascii_graphic())) == 0;
    if ok { Ok(()) } else { Err(ClaimError::Subject) }
}

/// Filenames: 1..=255 bytes, no control character (C0, DEL, or C1, which
/// UTF-8 encodes as C2 80..C2 9F), no `/` or `\`.
#[inline]
pub(crate) fn check_filename(s: &str) -> Result<(), ClaimError> {
    let s = s.as_bytes();
    if s.is_empty() || s.len() > MAX_FILENAME_LEN {
        return Err(ClaimError::Filename);
    }
    // Bit 0: a refused byte; bit 1: a C2 byte, which may start a C1 control
    // and calls for a look at the byte after it.
    let flags = scan::any_byte(s, |b| {
        (u8::from(b < 0x20) | u8::from(b == 0x7f) | u8::from(b == b'/') | u8::from(b == b'\\'))
            | (u8::from(b == 0xc2) << 1)
    });
    let c1 = flags & 2 != 0
        && s.windows(2)
            .any(|w| w[0] == 0xc2 && (0x80..=0x9f).contains(&w[1]));
    if flags & 1 == 0 && !c1 {
        Ok(())
    } else {
        Err(ClaimError::Filename)
    }
}

fn is_token_byte(b: u8) -> bool {
    TOKEN_BYTE[b as usize]
}

/// The bytes of an HTTP token (RFC 9110 `tchar`).
static TOKEN_BYTE: [bool; 256] = crate::scan::byte_table!(false, |b| b.is_ascii_alphanumeric()
    || matches!(
        b,
        b'!' | b'#'
            | b'$'
            | b'%'
            | b'&'
            | b'\''
            | b'*'
            | b'+'
            | b'-'
            | b'.'
            | b'^'
            | b'_'
            | b'`'
            | b'|'
            | b'~'
    ));

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

#[inline]
pub(crate) fn check_content_type(s: &str) -> Result<(), ClaimError> {
    if s.is_empty() || s.len() > MAX_CONTENT_TYPE_LEN {
        return Err(ClaimError::ContentType);
    }
    let mut parts = s.split(';');
    let essence = parts.next().unwrap_or_default();
    let ok_essence = essence
        .split_once('/')
        .is_some_and(|(t, st)| is_token(t) && is_token(st));
    let ok_params = parts.all(|p| {
        p.strip_prefix(' ')
            .unwrap_or(p)
            .split_once('=')
            .is_some_and(|(n, v)| is_token(n) && is_token(v))
    });
    if ok_essence && ok_params {
        Ok(())
    } else {
        Err(ClaimError::ContentType)
    }
}

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
    /// fields into a string measured 0.1x-0.2x of a whole verify more (four
    /// more copies and a UTF-8 check of all of it, on every granted link).
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
        crate::path::scope_covers(self.path(), path.as_str())
    }

    /// The methods the link grants.
    pub fn methods(&self) -> Methods {
        self.methods
    }

    /// When the link was signed.
    pub fn issued_at(&self) -> OffsetDateTime {
        to_datetime(self.issued_at)
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
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_from_names_and_back() {
        for m in [Method::Get, Method::Head, Method::Put] {
            assert_eq!(Method::from_name(m.as_str()), Some(m));
            assert_eq!(m.to_string(), m.as_str());
            let one = Methods::from(m);
            assert!(one.contains(m));
            assert_eq!(one.iter().collect::<Vec<_>>(), [m]);
        }
        assert_eq!(
            Methods::from(Method::Get) | Method::Head.into(),
            Methods::READ
        );
        assert_eq!(Method::from_name("get"), None, "names are case-sensitive");
    }

    #[test]
    fn subject_rules() {
        for ok in ["42", "user@example.com", "a:b|c", &"x".repeat(128)] {
            assert!(check_subject(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a\0", "é", "a\n", &"x".repeat(129)] {
            assert!(check_subject(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn content_type_rules() {
        for ok in [
            "video/mp4",
            "text/plain; charset=utf-8",
            "application/vnd.apple.mpegurl",
        ] {
            assert!(check_content_type(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "video",
            "video/",
            "/mp4",
            "text/html\r\nX: y",
            "a/b; c",
            "a b/c",
        ] {
            assert!(check_content_type(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn filename_rules() {
        assert!(check_filename("report 2026.pdf").is_ok());
        assert!(check_filename("résumé.pdf").is_ok());
        assert!(check_filename("no\u{a0}break.pdf").is_ok());
        assert!(check_filename("x").is_ok());
        for bad in ["a\u{85}b", "\u{9f}", "a\u{80}", "/", "\\", "\u{7f}", "x\t"] {
            assert!(check_filename(bad).is_err(), "{bad:?}");
        }
        for bad in ["", "a/b", "a\\b", "a\r\nb", &"x".repeat(256)] {
            assert!(check_filename(bad).is_err(), "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn filename_check_is_the_char_rule(name in "\\PC{0,3}[\\x00-\\x{a0}/\\\\]{0,3}\\PC{0,3}") {
            let expected = !name.is_empty()
                && name.len() <= MAX_FILENAME_LEN
                && !name.chars().any(|c| c.is_control() || c == '/' || c == '\\');
            proptest::prop_assert_eq!(check_filename(&name).is_ok(), expected, "{:?}", name);
        }

        #[test]
        fn token_bytes_are_tchar(b in proptest::prelude::any::<u8>()) {
            let tchar = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            proptest::prop_assert_eq!(is_token_byte(b), tchar);
        }
    }

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
