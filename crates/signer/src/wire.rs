//! Link format v1: the canonical payload bytes, and the token encoding.
//!
//! This module is the byte-level contract written up in `docs/FORMAT.md`;
//! keep the two in step. Everything here is pure: it neither computes MACs
//! nor looks at the clock.
//!
//! ```text
//! payload = version(1) key_id_len(1) key_id flags(1) methods(1)
//!           issued_at(8) expires(8) [not_before(8)]
//!           subject_len(1) subject path_len(2) path
//!           [client_net] [disposition] [content_type] [generation(8)]
//!           [upload]
//! token   = base64url_nopad(payload || HMAC-SHA256(link_key, payload))
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::limits::{self, MAX_TIME, MAX_TOKEN_LEN, MIN_TOKEN_LEN, VERSION, is_valid_key_id};
use crate::path::{self, MediaPath};
use crate::upload::UploadLimits;
use crate::values::{DispositionType, Method, Methods};

pub(crate) const FLAG_NOT_BEFORE: u8 = 1 << 0;
pub(crate) const FLAG_CLIENT_NET: u8 = 1 << 1;
pub(crate) const FLAG_DISPOSITION: u8 = 1 << 2;
pub(crate) const FLAG_CONTENT_TYPE: u8 = 1 << 3;
pub(crate) const FLAG_GENERATION: u8 = 1 << 4;
pub(crate) const FLAG_UPLOAD: u8 = 1 << 5;
const KNOWN_FLAGS: u8 = 0b11_1111;

/// The upload field's own flags (docs/FORMAT.md §3, field 17).
const UPLOAD_MAX_SIZE: u8 = 1 << 0;
const UPLOAD_SHA256: u8 = 1 << 1;
const UPLOAD_REPLACE: u8 = 1 << 2;
const KNOWN_UPLOAD_FLAGS: u8 = 0b111;

/// Why the bytes of a token are not a well-formed v1 token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MalformedToken {
    /// Shorter than [`MIN_TOKEN_LEN`] characters.
    #[error("token is too short")]
    TooShort,
    /// Longer than [`MAX_TOKEN_LEN`] characters.
    #[error("token is too long")]
    TooLong,
    /// Not canonical base64url without padding: another alphabet, padding,
    /// non-zero trailing bits or an impossible length.
    #[error("token is not canonical base64url")]
    Encoding,
    /// The key id field is malformed.
    #[error("token key id is malformed")]
    KeyId,
    /// A payload field is malformed (only a faulty signer can produce this:
    /// it is checked after the MAC).
    #[error("token payload field {0} is malformed")]
    Field(&'static str),
    /// Bytes follow the last field.
    #[error("token payload has trailing bytes")]
    TrailingBytes,
}

/// The claims of one link, borrowed from a payload or from a signer's
/// builder. Numbers are Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawClaims<'a> {
    pub key_id: &'a str,
    pub methods: Methods,
    pub issued_at: u64,
    pub expires: u64,
    pub not_before: Option<u64>,
    pub subject: &'a str,
    pub path: &'a str,
    pub client_net: Option<IpNet>,
    pub disposition: Option<(DispositionType, &'a str)>,
    pub content_type: Option<&'a str>,
    pub generation: Option<u64>,
    /// `None` when the link claims no upload limits.
    pub upload: Option<UploadLimits>,
}

/// Bytes up to which signing and verifying work in a stack buffer; longer
/// links (long paths or filenames) use one extra heap buffer.
pub(crate) const STACK_BUF_LEN: usize = 256;

/// A write cursor over an exactly-sized output slice.
pub(crate) struct PayloadBuf<'a> {
    bytes: &'a mut [u8],
    len: usize,
}

impl<'a> PayloadBuf<'a> {
    pub(crate) fn new(bytes: &'a mut [u8]) -> Self {
        PayloadBuf { bytes, len: 0 }
    }

    /// Appends bytes. The slice is sized by [`payload_len`], so this never
    /// runs past its end; if it did, that would be a bug here, and it panics
    /// rather than write a wrong token.
    pub(crate) fn extend_from_slice(&mut self, data: &[u8]) {
        let end = self.len + data.len();
        self.bytes[self.len..end].copy_from_slice(data);
        self.len = end;
    }

    pub(crate) fn push(&mut self, b: u8) {
        self.extend_from_slice(&[b]);
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The exact length of the payload of `c`.
#[inline]
pub(crate) fn payload_len(c: &RawClaims<'_>) -> usize {
    let mut n = 1 + 1 + c.key_id.len() + 1 + 1 + 8 + 8 + 1 + c.subject.len() + 2 + c.path.len();
    if c.not_before.is_some() {
        n += 8;
    }
    if let Some(net) = c.client_net {
        n += if net.addr().is_ipv4() {
            1 + 4 + 1
        } else {
            1 + 16 + 1
        };
    }
    if let Some((_, name)) = c.disposition {
        n += 2 + name.len();
    }
    if let Some(ct) = c.content_type {
        n += 1 + ct.len();
    }
    if c.generation.is_some() {
        n += 8;
    }
    if let Some(up) = &c.upload {
        n += 1
            + if up.max_size.is_some() { 8 } else { 0 }
            + if up.sha256.is_some() { 32 } else { 0 };
    }
    n
}

/// Appends the canonical payload of `c` to `out`. The claims must already be
/// valid (the signer checks them); lengths are not re-checked here.
#[inline]
pub(crate) fn encode_payload(c: &RawClaims<'_>, out: &mut PayloadBuf) {
    let mut flags = 0;
    if c.not_before.is_some() {
        flags |= FLAG_NOT_BEFORE;
    }
    if c.client_net.is_some() {
        flags |= FLAG_CLIENT_NET;
    }
    if c.disposition.is_some() {
        flags |= FLAG_DISPOSITION;
    }
    if c.content_type.is_some() {
        flags |= FLAG_CONTENT_TYPE;
    }
    if c.generation.is_some() {
        flags |= FLAG_GENERATION;
    }
    if c.upload.is_some() {
        flags |= FLAG_UPLOAD;
    }
    out.push(VERSION);
    out.push(c.key_id.len() as u8);
    out.extend_from_slice(c.key_id.as_bytes());
    out.push(flags);
    out.push(c.methods.bits());
    out.extend_from_slice(&c.issued_at.to_be_bytes());
    out.extend_from_slice(&c.expires.to_be_bytes());
    if let Some(nbf) = c.not_before {
        out.extend_from_slice(&nbf.to_be_bytes());
    }
    out.push(c.subject.len() as u8);
    out.extend_from_slice(c.subject.as_bytes());
    out.extend_from_slice(&(c.path.len() as u16).to_be_bytes());
    out.extend_from_slice(c.path.as_bytes());
    if let Some(net) = c.client_net {
        match net.addr() {
            IpAddr::V4(a) => {
                out.push(4);
                out.extend_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                out.push(6);
                out.extend_from_slice(&a.octets());
            }
        }
        out.push(net.prefix_len());
    }
    if let Some((kind, name)) = c.disposition {
        out.push(kind as u8);
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
    }
    if let Some(ct) = c.content_type {
        out.push(ct.len() as u8);
        out.extend_from_slice(ct.as_bytes());
    }
    if let Some(generation) = c.generation {
        out.extend_from_slice(&generation.to_be_bytes());
    }
    if let Some(up) = &c.upload {
        let mut bits = 0;
        if up.max_size.is_some() {
            bits |= UPLOAD_MAX_SIZE;
        }
        if up.sha256.is_some() {
            bits |= UPLOAD_SHA256;
        }
        if up.replace {
            bits |= UPLOAD_REPLACE;
        }
        out.push(bits);
        if let Some(max) = up.max_size {
            out.extend_from_slice(&max.to_be_bytes());
        }
        if let Some(digest) = &up.sha256 {
            out.extend_from_slice(digest);
        }
    }
}

/// Checks the token's length and returns the number of bytes it decodes to.
pub(crate) fn decoded_len(token: &str) -> Result<usize, MalformedToken> {
    if token.len() < MIN_TOKEN_LEN {
        return Err(MalformedToken::TooShort);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(MalformedToken::TooLong);
    }
    if token.len() % 4 == 1 {
        return Err(MalformedToken::Encoding);
    }
    Ok(token.len() * 3 / 4)
}

/// Decodes the token text to `payload || tag` into `out`, which must be
/// [`decoded_len`] bytes long. Refuses every spelling but the one canonical
/// form: the strict decoder refuses padding, the standard alphabet,
/// whitespace and non-zero trailing bits.
pub(crate) fn decode_token_into(token: &str, out: &mut [u8]) -> Result<(), MalformedToken> {
    // SIMD decoding: this is a third of the cost of verifying a link.
    base64_simd::URL_SAFE_NO_PAD
        .decode(token.as_bytes(), base64_simd::Out::from_slice(out))
        .map(|_| ())
        .map_err(|_| MalformedToken::Encoding)
}

/// Appends `payload || tag`, encoded as a token, to `out`.
#[inline]
pub(crate) fn encode_token_into(bytes: &[u8], out: &mut String) {
    base64_simd::URL_SAFE_NO_PAD.encode_append(bytes, out);
}

/// Reads the key id from an unauthenticated payload, so that the right key
/// can check the MAC. Nothing else is read before the MAC check.
pub(crate) fn peek_key_id(payload: &[u8]) -> Result<&[u8], MalformedToken> {
    let len = *payload.get(1).ok_or(MalformedToken::KeyId)? as usize;
    let id = payload.get(2..2 + len).ok_or(MalformedToken::KeyId)?;
    if is_valid_key_id(id) {
        Ok(id)
    } else {
        Err(MalformedToken::KeyId)
    }
}

/// A cursor over payload bytes.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Takes `n` bytes and says where they were.
    fn take_span(
        &mut self,
        n: usize,
        field: &'static str,
    ) -> Result<(Span, &'a [u8]), MalformedToken> {
        let start = self.pos;
        let bytes = self.take(n, field)?;
        // Payloads are shorter than MAX_PAYLOAD_LEN (< 64 KiB).
        Ok((
            Span {
                start: start as u16,
                end: self.pos as u16,
            },
            bytes,
        ))
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], MalformedToken> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(MalformedToken::Field(field))?;
        let out = self
            .buf
            .get(self.pos..end)
            .ok_or(MalformedToken::Field(field))?;
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, MalformedToken> {
        Ok(self.take(1, field)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, MalformedToken> {
        let b = self.take(2, field)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, MalformedToken> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8, field)?);
        Ok(u64::from_be_bytes(a))
    }

    fn time(&mut self, field: &'static str) -> Result<u64, MalformedToken> {
        let t = self.u64(field)?;
        if t > MAX_TIME {
            return Err(MalformedToken::Field(field));
        }
        Ok(t)
    }
}

/// Where a field sits in its payload: [`Claims`](crate::Claims) keeps the
/// payload and reads its text fields through these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Span {
    pub start: u16,
    pub end: u16,
}

impl Span {
    /// The bytes of the field in `payload` (empty if out of range, which a
    /// span made by [`decode_fields`] for that payload never is).
    pub(crate) fn of(self, payload: &[u8]) -> &[u8] {
        payload
            .get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }
}

/// Where the text fields of a payload sit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct TextSpans {
    pub key_id: Span,
    pub subject: Span,
    pub path: Span,
    /// Empty when the link names no file.
    pub filename: Span,
    pub content_type: Option<Span>,
}

/// The fields of a payload, checked against every rule except the path's
/// canonical form (see [`UncheckedPath`]). The text fields are checked (the
/// key id and the subject ASCII, the filename and content type UTF-8) and
/// located by their [`TextSpans`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fields<'a> {
    pub methods: Methods,
    pub issued_at: u64,
    pub expires: u64,
    pub not_before: Option<u64>,
    pub path: UncheckedPath<'a>,
    pub client_net: Option<IpNet>,
    pub disposition: Option<DispositionType>,
    pub generation: Option<u64>,
    pub upload: Option<UploadLimits>,
    /// Where the text fields are.
    pub spans: TextSpans,
}

/// A payload's path field, not yet known to be canonical. Two things prove
/// it is: a full check ([`validate`](Self::validate)), or a match against a
/// canonical request path ([`covers`](Self::covers)), which proves the same
/// for less: an exact copy of a canonical path is canonical, and so is a
/// prefix of one that ends in `/` (whole segments of a canonical path, at
/// most as long).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UncheckedPath<'a>(&'a [u8]);

impl<'a> UncheckedPath<'a> {
    /// The path, if it is canonical.
    pub(crate) fn validate(self) -> Result<&'a str, MalformedToken> {
        path::validate_bytes(self.0).map_err(|_| MalformedToken::Field("path"))?;
        std::str::from_utf8(self.0).map_err(|_| MalformedToken::Field("path"))
    }

    /// Whether, as a scope (exact, or a prefix ending in `/`), the path
    /// covers the canonical path `request`.
    pub(crate) fn covers(self, request: &MediaPath<'_>) -> bool {
        path::scope_covers(self.0, request.as_str().as_bytes())
    }
}

/// Parses an authenticated payload strictly: every field must satisfy the
/// rules the signer enforces, and nothing may follow the last field.
#[inline]
pub(crate) fn decode_fields(payload: &[u8]) -> Result<Fields<'_>, MalformedToken> {
    let mut r = Reader {
        buf: payload,
        pos: 0,
    };
    if r.u8("version")? != VERSION {
        return Err(MalformedToken::Field("version"));
    }
    let key_len = r.u8("key_id")? as usize;
    let (key_id_span, key_id) = r.take_span(key_len, "key_id")?;
    if !is_valid_key_id(key_id) {
        return Err(MalformedToken::KeyId);
    }
    let flags = r.u8("flags")?;
    if flags & !KNOWN_FLAGS != 0 {
        return Err(MalformedToken::Field("flags"));
    }
    let methods = Methods::from_bits(r.u8("methods")?).ok_or(MalformedToken::Field("methods"))?;
    let issued_at = r.time("issued_at")?;
    let expires = r.time("expires")?;
    if expires <= issued_at {
        return Err(MalformedToken::Field("expires"));
    }
    let not_before = if flags & FLAG_NOT_BEFORE != 0 {
        let nbf = r.time("not_before")?;
        if nbf >= expires {
            return Err(MalformedToken::Field("not_before"));
        }
        Some(nbf)
    } else {
        None
    };
    let subject_len = r.u8("subject")? as usize;
    let (subject_span, subject) = r.take_span(subject_len, "subject")?;
    limits::check_subject_bytes(subject).map_err(|_| MalformedToken::Field("subject"))?;
    let path_len = r.u16("path")? as usize;
    let (path_span, path) = r.take_span(path_len, "path")?;
    let path = UncheckedPath(path);
    let client_net = if flags & FLAG_CLIENT_NET != 0 {
        let addr = match r.u8("client_net")? {
            4 => {
                let b = r.take(4, "client_net")?;
                IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
            }
            6 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(r.take(16, "client_net")?);
                IpAddr::V6(Ipv6Addr::from(a))
            }
            _ => return Err(MalformedToken::Field("client_net")),
        };
        let prefix = r.u8("client_net")?;
        let net = IpNet::new(addr, prefix).map_err(|_| MalformedToken::Field("client_net"))?;
        // One spelling: host bits are zero.
        if net.trunc() != net {
            return Err(MalformedToken::Field("client_net"));
        }
        Some(net)
    } else {
        None
    };
    let mut filename_span = Span::default();
    let disposition = if flags & FLAG_DISPOSITION != 0 {
        let kind = match r.u8("disposition")? {
            0 => DispositionType::Inline,
            1 => DispositionType::Attachment,
            _ => return Err(MalformedToken::Field("disposition")),
        };
        let len = r.u8("disposition")? as usize;
        let (span, name) = r.take_span(len, "disposition")?;
        let name = std::str::from_utf8(name).map_err(|_| MalformedToken::Field("disposition"))?;
        filename_span = span;
        if !name.is_empty() {
            limits::check_filename(name).map_err(|_| MalformedToken::Field("disposition"))?;
        }
        Some(kind)
    } else {
        None
    };
    let content_type_span = if flags & FLAG_CONTENT_TYPE != 0 {
        let len = r.u8("content_type")? as usize;
        let (span, ct) = r.take_span(len, "content_type")?;
        let ct = std::str::from_utf8(ct).map_err(|_| MalformedToken::Field("content_type"))?;
        limits::check_content_type(ct).map_err(|_| MalformedToken::Field("content_type"))?;
        Some(span)
    } else {
        None
    };
    let generation = if flags & FLAG_GENERATION != 0 {
        Some(r.u64("generation")?)
    } else {
        None
    };
    let upload = if flags & FLAG_UPLOAD != 0 {
        Some(decode_upload(&mut r, methods, path)?)
    } else {
        None
    };
    if r.pos != payload.len() {
        return Err(MalformedToken::TrailingBytes);
    }
    Ok(Fields {
        methods,
        issued_at,
        expires,
        not_before,
        path,
        client_net,
        disposition,
        generation,
        upload,
        spans: TextSpans {
            key_id: key_id_span,
            subject: subject_span,
            path: path_span,
            filename: filename_span,
            content_type: content_type_span,
        },
    })
}

/// Reads field 17: the upload claims of a `PUT` link. One spelling: at
/// least one claim, no unknown bit, and `replace` only on a link to one
/// file (a prefix link creates new names).
fn decode_upload(
    r: &mut Reader<'_>,
    methods: Methods,
    path: UncheckedPath<'_>,
) -> Result<UploadLimits, MalformedToken> {
    const FIELD: &str = "upload";
    let bits = r.u8(FIELD)?;
    if bits == 0 || bits & !KNOWN_UPLOAD_FLAGS != 0 || !methods.contains(Method::Put) {
        return Err(MalformedToken::Field(FIELD));
    }
    let replace = bits & UPLOAD_REPLACE != 0;
    if replace && path.0.ends_with(b"/") {
        return Err(MalformedToken::Field(FIELD));
    }
    let max_size = if bits & UPLOAD_MAX_SIZE != 0 {
        Some(r.u64(FIELD)?)
    } else {
        None
    };
    let sha256 = if bits & UPLOAD_SHA256 != 0 {
        let mut d = [0u8; 32];
        d.copy_from_slice(r.take(32, FIELD)?);
        Some(d)
    } else {
        None
    };
    Ok(UploadLimits {
        max_size,
        sha256,
        replace,
    })
}

/// [`decode_fields`] with the path checked: the claims a payload encodes.
#[cfg(test)]
pub(crate) fn decode_payload(payload: &[u8]) -> Result<RawClaims<'_>, MalformedToken> {
    let f = decode_fields(payload)?;
    let text = |span: Span| {
        std::str::from_utf8(span.of(payload)).map_err(|_| MalformedToken::Field("text"))
    };
    Ok(RawClaims {
        key_id: text(f.spans.key_id)?,
        methods: f.methods,
        issued_at: f.issued_at,
        expires: f.expires,
        not_before: f.not_before,
        subject: text(f.spans.subject)?,
        path: f.path.validate()?,
        client_net: f.client_net,
        disposition: match f.disposition {
            Some(kind) => Some((kind, text(f.spans.filename)?)),
            None => None,
        },
        content_type: f.spans.content_type.map(text).transpose()?,
        generation: f.generation,
        upload: f.upload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::encoded_len;

    fn sample() -> RawClaims<'static> {
        RawClaims {
            key_id: "k1",
            methods: Methods::READ,
            issued_at: 1_700_000_000,
            expires: 1_700_000_600,
            not_before: Some(1_700_000_010),
            subject: "user-42",
            path: "/videos/a.mp4",
            client_net: Some("203.0.113.0/24".parse().unwrap()),
            disposition: Some((DispositionType::Attachment, "a b.mp4")),
            content_type: Some("video/mp4"),
            generation: Some(7),
            upload: None,
        }
    }

    fn upload() -> RawClaims<'static> {
        RawClaims {
            methods: Methods::PUT,
            path: "/uploads/a.jpg",
            upload: Some(UploadLimits {
                max_size: Some(50 << 20),
                sha256: Some([7; 32]),
                replace: true,
            }),
            ..sample()
        }
    }

    fn encoded(c: &RawClaims<'_>) -> Vec<u8> {
        let mut bytes = vec![0; payload_len(c)];
        let mut buf = PayloadBuf::new(&mut bytes);
        encode_payload(c, &mut buf);
        assert_eq!(buf.as_slice().len(), payload_len(c));
        bytes
    }

    #[test]
    fn upload_claims_round_trip() {
        for limits in [
            UploadLimits {
                max_size: Some(0),
                ..UploadLimits::default()
            },
            UploadLimits {
                sha256: Some([1; 32]),
                ..UploadLimits::default()
            },
            UploadLimits {
                replace: true,
                ..UploadLimits::default()
            },
            upload().upload.unwrap(),
        ] {
            let c = RawClaims {
                upload: Some(limits),
                ..upload()
            };
            assert_eq!(decode_payload(&encoded(&c)).unwrap(), c);
        }
    }

    #[test]
    fn upload_field_has_one_spelling() {
        let bytes = encoded(&upload());
        let at = bytes.len() - 1 - 8 - 32;
        assert_eq!(bytes[at], 0b111);
        for bits in [0u8, 0b1000, 0x80] {
            let mut b = bytes.clone();
            b[at] = bits;
            assert!(decode_payload(&b).is_err(), "upload flags {bits:#b}");
        }
        // Upload claims on a link that grants no PUT.
        let read = RawClaims {
            methods: Methods::READ,
            ..upload()
        };
        assert_eq!(
            decode_payload(&encoded(&read)),
            Err(MalformedToken::Field("upload"))
        );
        // Replacing below a prefix.
        let prefix = RawClaims {
            path: "/uploads/",
            ..upload()
        };
        assert_eq!(
            decode_payload(&encoded(&prefix)),
            Err(MalformedToken::Field("upload"))
        );
        let create = RawClaims {
            upload: Some(UploadLimits {
                replace: false,
                ..upload().upload.unwrap()
            }),
            ..prefix
        };
        assert!(decode_payload(&encoded(&create)).is_ok());
    }

    #[test]
    fn payload_round_trips() {
        let c = sample();
        let mut bytes = vec![0; payload_len(&c)];
        let mut buf = PayloadBuf::new(&mut bytes);
        encode_payload(&c, &mut buf);
        assert_eq!(buf.as_slice().len(), payload_len(&c));
        assert_eq!(decode_payload(buf.as_slice()).unwrap(), c);
        let minimal = RawClaims {
            not_before: None,
            client_net: None,
            disposition: None,
            content_type: None,
            generation: None,
            upload: None,
            ..c
        };
        let mut bytes = vec![0; payload_len(&minimal)];
        let mut buf = PayloadBuf::new(&mut bytes);
        encode_payload(&minimal, &mut buf);
        assert_eq!(decode_payload(buf.as_slice()).unwrap(), minimal);
    }

    #[test]
    fn decoder_rejects_trailing_and_truncated_payloads() {
        let mut bytes = vec![0; payload_len(&sample())];
        let mut out = PayloadBuf::new(&mut bytes);
        encode_payload(&sample(), &mut out);
        let mut buf = out.as_slice().to_vec();
        for n in 0..buf.len() {
            assert!(decode_payload(&buf[..n]).is_err(), "truncated at {n}");
        }
        buf.push(0);
        assert_eq!(decode_payload(&buf), Err(MalformedToken::TrailingBytes));
    }

    #[test]
    fn limits_are_consistent() {
        const { assert!(MIN_TOKEN_LEN < MAX_TOKEN_LEN) };
        assert_eq!((MIN_TOKEN_LEN, MAX_TOKEN_LEN), (78, 2266));
        assert_eq!(encoded_len(3), 4);
        assert_eq!(encoded_len(4), 6);
        assert_eq!(encoded_len(32), 43);
    }
}
