//! The one canonical form of a media path, shared by the signer and the verifier.
//!
//! A [`MediaPath`] is an absolute, `/`-separated UTF-8 path that is already
//! percent-decoded. It is *validated, never normalized*: anything that a file
//! system, a proxy or another URL parser could read in more than one way is
//! refused outright instead of being cleaned up:
//!
//! - it starts with `/` and is at most [`MAX_PATH_LEN`] bytes long;
//! - no segment is empty (`//`), `.` or `..`, and none is longer than
//!   [`MAX_SEGMENT_LEN`] bytes;
//! - no backslash, no NUL, no control character (C0, DEL or C1);
//! - when decoded from a URL: every `%` starts a valid `%XX` escape, the
//!   result is valid UTF-8, and `%2F` (an encoded `/`) is refused.
//!
//! A path that ends in `/` names a directory. As the scope of a link it is a
//! *prefix*: it covers every path below it, matched by whole segments.
//!
//! ```
//! use mediagate_signer::MediaPath;
//!
//! let p = MediaPath::from_uri_path("/videos/caf%C3%A9.mp4")?;
//! assert_eq!(p.as_str(), "/videos/café.mp4");
//! assert!(MediaPath::from_uri_path("/videos/%2e%2e/secret").is_err());
//! assert!(MediaPath::parse("/videos//a.mp4").is_err());
//! # Ok::<(), mediagate_signer::PathError>(())
//! ```

use std::borrow::Cow;
use std::fmt;

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

use crate::limits::{MAX_PATH_LEN, MAX_SEGMENT_LEN, PATH_MARKER};

/// Why a path is not a canonical media path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path is empty.
    #[error("path is empty")]
    Empty,
    /// The path does not start with `/`.
    #[error("path is not absolute")]
    NotAbsolute,
    /// The path is longer than [`MAX_PATH_LEN`] bytes.
    #[error("path is longer than {MAX_PATH_LEN} bytes")]
    TooLong,
    /// A segment is longer than [`MAX_SEGMENT_LEN`] bytes.
    #[error("path segment is longer than {MAX_SEGMENT_LEN} bytes")]
    SegmentTooLong,
    /// The path has an empty segment (`//`).
    #[error("path has an empty segment")]
    EmptySegment,
    /// The path has a `.` or `..` segment.
    #[error("path has a dot segment")]
    DotSegment,
    /// The path contains a backslash.
    #[error("path contains a backslash")]
    Backslash,
    /// The path contains NUL or another control character.
    #[error("path contains a control character")]
    ControlCharacter,
    /// A `%` is not followed by two hexadecimal digits.
    #[error("path has an invalid percent escape")]
    InvalidPercentEncoding,
    /// The path contains `%2F`, an encoded `/`.
    #[error("path contains an encoded slash")]
    EncodedSlash,
    /// The decoded path is not valid UTF-8.
    #[error("path is not valid UTF-8")]
    InvalidUtf8,
    /// The URL path contains a character that must be percent-encoded.
    #[error("path contains a character that must be percent-encoded")]
    UnencodedCharacter,
    /// A prefix scope was expected (a path ending in `/`).
    #[error("prefix paths must end in '/'")]
    NotADirectory,
}

/// A validated, percent-decoded media path: absolute, `/`-separated UTF-8,
/// validated and never normalized (no `.`, `..` or empty segments, no
/// backslash, no control character; decoded from a URL exactly once,
/// refusing `%2F` and malformed escapes). A path ending in `/` is a
/// directory: as a link scope, a prefix. The rules are in `docs/FORMAT.md`
/// §5.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MediaPath<'a>(Cow<'a, str>);

impl<'a> MediaPath<'a> {
    /// Validates an already-decoded path.
    #[inline]
    pub fn parse(path: &'a str) -> Result<Self, PathError> {
        validate(path)?;
        Ok(MediaPath(Cow::Borrowed(path)))
    }

    /// Percent-decodes the path component of a URL exactly once, then
    /// validates the result.
    ///
    /// Borrows when the input holds no escapes. The input must be ASCII, as
    /// in an HTTP request target.
    pub fn from_uri_path(raw: &'a str) -> Result<Self, PathError> {
        match percent_decode_strict(raw)? {
            Cow::Borrowed(s) => Self::parse(s),
            Cow::Owned(s) => {
                validate(&s)?;
                Ok(MediaPath(Cow::Owned(s)))
            }
        }
    }

    /// The decoded path.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the path names a directory (ends in `/`), which as a link
    /// scope makes it a prefix.
    pub fn is_dir(&self) -> bool {
        self.0.ends_with('/')
    }

    /// Whether the path lies below `/_mg/`, the path-form transport's
    /// marker: no link may name one, and a verifier serves no file there
    /// (a request that reaches one, as `/%5Fmg/...` does once decoded, is
    /// refused).
    pub fn is_reserved(&self) -> bool {
        is_reserved(&self.0)
    }

    /// The path relative to the media root: without its leading `/`.
    pub fn relative(&self) -> &str {
        &self.0[1..]
    }

    /// Whether `self`, taken as a link scope, covers `request`: equal to an
    /// exact scope, or below a prefix scope by whole segments.
    pub fn covers(&self, request: &MediaPath<'_>) -> bool {
        scope_covers(self.as_str().as_bytes(), request.as_str().as_bytes())
    }

    /// Copies the path into an owned value.
    pub fn into_owned(self) -> MediaPath<'static> {
        MediaPath(Cow::Owned(self.0.into_owned()))
    }
}

impl fmt::Debug for MediaPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for MediaPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether a canonical path lies below `/_mg/`, the path-form transport's
/// marker (see `transport`): a verifier with that transport on reads such a
/// request path as a token and a path, so no link may name one.
#[inline]
pub(crate) fn is_reserved(path: &str) -> bool {
    path.strip_prefix('/')
        .and_then(|p| p.strip_prefix(PATH_MARKER))
        .is_some_and(|rest| rest.starts_with('/'))
}

/// Whether the scope `scope` (exact path, or prefix ending in `/`) covers the
/// request path `path`. Both must be canonical.
#[inline]
pub(crate) fn scope_covers(scope: &[u8], path: &[u8]) -> bool {
    // A canonical prefix ends in '/', so a match of its bytes is a match
    // of whole segments: "/videos/" never covers "/videos-private/x".
    let n = scope.len();
    path.get(..n) == Some(scope) && (n == path.len() || scope.last() == Some(&b'/'))
}

/// Byte classes for [`validate`].
const OK: u8 = 0;
const SLASH: u8 = 1;
const DOT: u8 = 2;
const CONTROL: u8 = 3;
const BACKSLASH: u8 = 4;
const HIGH: u8 = 5;

const CLASS: [u8; 256] = crate::scan::byte_table!(OK, |b| match b {
    b'/' => SLASH,
    b'.' => DOT,
    b'\\' => BACKSLASH,
    0x00..=0x1f | 0x7f => CONTROL,
    0x80..=0xff => HIGH,
    _ => OK,
});

/// Checks the canonical-path rules on a decoded path. Runs for every link
/// signed and every request verified, so the common case (no special byte,
/// no `/.` or `//`, short segments) is one branch-free pass; anything else
/// takes the detailed pass that names the broken rule.
#[inline]
pub(crate) fn validate(path: &str) -> Result<(), PathError> {
    validate_bytes(path.as_bytes())
}

/// [`validate`] on bytes; UTF-8 validity is the caller's to check (the C1
/// control check assumes UTF-8).
#[inline]
pub(crate) fn validate_bytes(bytes: &[u8]) -> Result<(), PathError> {
    if bytes.is_empty() {
        return Err(PathError::Empty);
    }
    if bytes[0] != b'/' {
        return Err(PathError::NotAbsolute);
    }
    if bytes.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong);
    }
    // One vectorized scan over each byte and the one before it (the first
    // byte is the '/' checked above): any byte that needs a closer look,
    // and any "//" or "/.".
    let flagged = crate::scan::any_pair(bytes, |a, b| {
        // C0 controls, DEL and every non-ASCII byte in one comparison: one
        // added to each, they are exactly the bytes at most 0x20 as `i8`.
        u8::from(b.wrapping_add(1) as i8 <= 0x20)
            | u8::from(b == b'\\')
            // "//" or "/." ('.' and '/' differ only in the low bit).
            | (u8::from(a == b'/') & u8::from(b | 1 == b'/'))
    });
    // A path this short cannot hold an over-long segment.
    if flagged == 0 && bytes.len() <= MAX_SEGMENT_LEN + 1 {
        return Ok(());
    }
    validate_slow(bytes)
}

/// The detailed pass of [`validate`], for paths the fast pass flagged.
fn validate_slow(bytes: &[u8]) -> Result<(), PathError> {
    let check_segment = |len: usize, dots: usize| match len {
        0 => Err(PathError::EmptySegment),
        1 | 2 if dots == len => Err(PathError::DotSegment),
        n if n > MAX_SEGMENT_LEN => Err(PathError::SegmentTooLong),
        _ => Ok(()),
    };
    let (mut len, mut dots, mut high) = (0usize, 0usize, false);
    for &b in &bytes[1..] {
        match CLASS[b as usize] {
            OK => len += 1,
            DOT => {
                len += 1;
                dots += 1;
            }
            SLASH => {
                check_segment(len, dots)?;
                len = 0;
                dots = 0;
            }
            HIGH => {
                len += 1;
                high = true;
            }
            BACKSLASH => return Err(PathError::Backslash),
            _ => return Err(PathError::ControlCharacter),
        }
    }
    // The last segment may be empty: a directory's trailing slash.
    if len > 0 {
        check_segment(len, dots)?;
    }
    // C1 controls (U+0080..U+009F) are encoded as C2 80..C2 9F.
    if high && bytes.windows(2).any(|w| w[0] == 0xc2 && w[1] <= 0x9f) {
        return Err(PathError::ControlCharacter);
    }
    Ok(())
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes once, refusing malformed escapes, `%2F`, characters that
/// must have been escaped, and non-UTF-8 results.
pub(crate) fn percent_decode_strict(raw: &str) -> Result<Cow<'_, str>, PathError> {
    let bytes = raw.as_bytes();
    if bytes.len() > 3 * MAX_PATH_LEN {
        return Err(PathError::TooLong);
    }
    if let Some(&b) = bytes.iter().find(|&&b| !is_uri_path_byte(b)) {
        return Err(if b == b'\\' {
            PathError::Backslash
        } else if b < 0x20 || b == 0x7f {
            PathError::ControlCharacter
        } else {
            PathError::UnencodedCharacter
        });
    }
    let Some(first) = bytes.iter().position(|&b| b == b'%') else {
        return Ok(Cow::Borrowed(raw));
    };
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&bytes[..first]);
    let mut i = first;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex_value);
            let lo = bytes.get(i + 2).copied().and_then(hex_value);
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(PathError::InvalidPercentEncoding);
            };
            let decoded = hi << 4 | lo;
            if decoded == b'/' {
                return Err(PathError::EncodedSlash);
            }
            out.push(decoded);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| PathError::InvalidUtf8)
}

/// Bytes that may appear unescaped in the path of a request target
/// (RFC 3986 `pchar` plus `/` and `%`).
fn is_uri_path_byte(b: u8) -> bool {
    matches!(b,
        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9'
        | b'-' | b'.' | b'_' | b'~'
        | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
        | b':' | b'@' | b'/' | b'%')
}

/// What [`encode_path`] escapes: everything but RFC 3986 unreserved
/// characters, `/` and a few sub-delimiters that no server reads specially.
const PATH_ESCAPE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}')
    .add(b';')
    .add(b'+')
    .add(b'&')
    .add(b'=')
    .add(b'\'');

/// Whether `b` is written as is in a URL path (see [`PATH_ESCAPE`]).
const fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'('
                | b')'
                | b'*'
                | b','
                | b':'
                | b'@'
                | b'/'
        )
}

const PLAIN: [bool; 256] = crate::scan::byte_table!(false, |b| is_plain(b));

/// Whether `b` needs escaping (1) or not (0): the complement of [`PLAIN`]
/// as branch-free comparisons, which the compiler vectorizes (neither a
/// table lookup nor short-circuit logic would be).
#[inline]
fn needs_escape(b: u8) -> u8 {
    u8::from(b <= 0x20)
        | u8::from(b.wrapping_sub(0x22) <= 0x23 - 0x22)
        | u8::from(b.wrapping_sub(0x25) <= 0x27 - 0x25)
        | u8::from(b == 0x2b)
        | u8::from(b.wrapping_sub(0x3b) <= 0x3f - 0x3b)
        | u8::from(b.wrapping_sub(0x5b) <= 0x5e - 0x5b)
        | u8::from(b == 0x60)
        | (u8::from(b >= 0x7b) & u8::from(b != b'~'))
}

/// Whether any byte of `bytes` needs escaping.
fn any_needs_escape(bytes: &[u8]) -> bool {
    crate::scan::any_byte(bytes, needs_escape) != 0
}

/// The URL (percent-encoded) form of a path, measured once and then
/// written: a path that needs no escape (nearly all) is copied as is.
pub(crate) struct Encoded<'a> {
    path: &'a str,
    len: usize,
    plain: bool,
}

impl<'a> Encoded<'a> {
    pub(crate) fn new(path: &'a str) -> Self {
        let escapes = any_needs_escape(path.as_bytes());
        let len = if escapes {
            path.bytes()
                .map(|b| if PLAIN[b as usize] { 1 } else { 3 })
                .sum()
        } else {
            path.len()
        };
        Encoded {
            path,
            len,
            plain: !escapes,
        }
    }

    /// The length of the encoded form.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Appends the encoded form to `out`.
    pub(crate) fn push_to(&self, out: &mut String) {
        if self.plain {
            out.push_str(self.path);
        } else {
            utf8_percent_encode(self.path, PATH_ESCAPE).for_each(|piece| out.push_str(piece));
        }
    }
}

/// The URL (percent-encoded) form of a canonical path.
///
/// ```
/// assert_eq!(mediagate_signer::encode_path("/a b/é.txt"), "/a%20b/%C3%A9.txt");
/// ```
pub fn encode_path(path: &str) -> String {
    let encoded = Encoded::new(path);
    let mut out = String::with_capacity(encoded.len());
    encoded.push_to(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_canonical_paths() {
        for p in [
            "/a",
            "/videos/a.mp4",
            "/videos/show/",
            "/",
            "/a/b/c/d.e.f",
            "/...",
            "/.hidden",
            "/a..b",
            "/café/naïve.txt",
            "/a;b=c",
        ] {
            assert!(MediaPath::parse(p).is_ok(), "{p}");
        }
    }

    #[test]
    fn rejects_non_canonical_paths() {
        let cases = [
            ("", PathError::Empty),
            ("a/b", PathError::NotAbsolute),
            ("//a", PathError::EmptySegment),
            ("/a//b", PathError::EmptySegment),
            ("/a/./b", PathError::DotSegment),
            ("/a/../b", PathError::DotSegment),
            ("/..", PathError::DotSegment),
            ("/a/..", PathError::DotSegment),
            ("/a/.", PathError::DotSegment),
            ("/a\\b", PathError::Backslash),
            ("/a\0b", PathError::ControlCharacter),
            ("/a\nb", PathError::ControlCharacter),
            ("/a\u{7f}", PathError::ControlCharacter),
            ("/a\u{85}", PathError::ControlCharacter),
        ];
        for (p, e) in cases {
            assert_eq!(MediaPath::parse(p).err(), Some(e), "{p:?}");
        }
        let long = format!("/{}", "a".repeat(MAX_SEGMENT_LEN + 1));
        assert_eq!(
            MediaPath::parse(&long).err(),
            Some(PathError::SegmentTooLong)
        );
        let longer = "/abc".repeat(MAX_PATH_LEN / 4 + 1);
        assert_eq!(MediaPath::parse(&longer).err(), Some(PathError::TooLong));
    }

    #[test]
    fn decodes_once_and_strictly() {
        assert_eq!(MediaPath::from_uri_path("/a%20b").unwrap().as_str(), "/a b");
        // Decoded once: %252e stays the literal "%2e".
        assert_eq!(
            MediaPath::from_uri_path("/%252e%252e/x").unwrap().as_str(),
            "/%2e%2e/x"
        );
        let cases = [
            ("/%2e%2e/x", PathError::DotSegment),
            ("/a%2fb", PathError::EncodedSlash),
            ("/a%2Fb", PathError::EncodedSlash),
            ("/a%5cb", PathError::Backslash),
            ("/a%00", PathError::ControlCharacter),
            ("/a%", PathError::InvalidPercentEncoding),
            ("/a%4", PathError::InvalidPercentEncoding),
            ("/a%zz", PathError::InvalidPercentEncoding),
            ("/%c0%ae", PathError::InvalidUtf8),
            ("/a b", PathError::UnencodedCharacter),
            ("/a?b", PathError::UnencodedCharacter),
            ("/a#b", PathError::UnencodedCharacter),
            ("/a\\b", PathError::Backslash),
        ];
        for (p, e) in cases {
            assert_eq!(MediaPath::from_uri_path(p).err(), Some(e), "{p:?}");
        }
    }

    #[test]
    fn prefix_scope_matches_whole_segments() {
        let scope = MediaPath::parse("/videos/").unwrap();
        let inside = MediaPath::parse("/videos/a/b.ts").unwrap();
        let sibling = MediaPath::parse("/videos-private/x").unwrap();
        let itself = MediaPath::parse("/videos").unwrap();
        assert!(scope.covers(&inside));
        assert!(!scope.covers(&sibling));
        assert!(!scope.covers(&itself));
        let exact = MediaPath::parse("/videos/a").unwrap();
        assert!(exact.covers(&MediaPath::parse("/videos/a").unwrap()));
        assert!(!exact.covers(&MediaPath::parse("/videos/a/b").unwrap()));
        assert!(!exact.covers(&MediaPath::parse("/videos/ab").unwrap()));
    }

    fn segment() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9 ._~%+;=&'é中-]{1,12}"
            .prop_filter("not a dot segment", |s| s != "." && s != "..")
    }

    #[test]
    fn plain_table_matches_the_escape_set() {
        for b in 0..=255u8 {
            let escaped =
                utf8_percent_encode(std::str::from_utf8(&[b]).unwrap_or("\u{fffd}"), PATH_ESCAPE)
                    .collect::<String>();
            if b < 0x80 {
                assert_eq!(PLAIN[b as usize], escaped.len() == 1, "byte {b:#x}");
            } else {
                assert!(!PLAIN[b as usize]);
            }
            assert_eq!(needs_escape(b) == 1, !PLAIN[b as usize], "byte {b:#x}");
        }
    }

    proptest! {
        #[test]
        fn blockwise_escape_check_agrees_with_the_table(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            prop_assert_eq!(any_needs_escape(&bytes), bytes.iter().any(|&b| !PLAIN[b as usize]));
        }

        #[test]
        fn encoded_len_is_exact(p in "/[a-zA-Z0-9 %é/;+._~-]{0,30}") {
            prop_assert_eq!(Encoded::new(&p).len(), encode_path(&p).len());
        }

        #[test]
        fn encoded_len_is_exact_for_any_text(p in any::<String>()) {
            let encoded = encode_path(&p);
            prop_assert_eq!(Encoded::new(&p).len(), encoded.len());
            prop_assert_eq!(encoded == p, p.bytes().all(|b| PLAIN[b as usize]));
        }

        #[test]
        fn encode_then_decode_round_trips(segs in proptest::collection::vec(segment(), 1..6), dir in any::<bool>()) {
            let mut path = format!("/{}", segs.join("/"));
            if dir { path.push('/'); }
            prop_assume!(MediaPath::parse(&path).is_ok());
            let encoded = encode_path(&path);
            let decoded = MediaPath::from_uri_path(&encoded).unwrap();
            prop_assert_eq!(decoded.as_str(), path.as_str());
        }

        #[test]
        fn decoder_never_panics_and_output_is_canonical(raw in "[/a-z.%0-9A-F\\\\]{0,40}") {
            if let Ok(p) = MediaPath::from_uri_path(&raw) {
                prop_assert!(validate(p.as_str()).is_ok());
                prop_assert!(!p.as_str().split('/').any(|s| s == ".." || s == "."));
            }
        }

        #[test]
        fn fast_and_detailed_validation_agree(rest in "[a-z./\\\\\x00\x7fé\u{85}]{0,24}") {
            let path = format!("/{rest}");
            prop_assert_eq!(validate(&path), validate_slow(path.as_bytes()));
            prop_assert_eq!(validate_bytes(path.as_bytes()), validate(&path));
        }

        /// The same over any bytes and lengths, the blockwise scan's (17
        /// bytes on) included: mostly plain bytes with now and then one at a
        /// class boundary, so that a lone byte the fast pass misses shows.
        #[test]
        fn fast_and_detailed_validation_agree_on_any_bytes(
            rest in proptest::collection::vec(
                prop_oneof![
                    200 => b'a'..=b'z',
                    20 => Just(b'/'),
                    2 => Just(b'.'),
                    1 => Just(b'\\'),
                    1 => Just(0x1f),
                    1 => Just(b' '),
                    1 => Just(0x7e),
                    1 => Just(0x7f),
                    1 => Just(0x80),
                    1 => Just(0xc2),
                    1 => Just(0xff),
                    1 => any::<u8>(),
                ],
                0..80,
            )
        ) {
            let mut path = vec![b'/'];
            path.extend(rest);
            prop_assert_eq!(validate_bytes(&path), validate_slow(&path));
        }

        #[test]
        fn prefix_never_covers_outside(a in segment(), b in segment(), rest in segment()) {
            let scope_s = format!("/{a}/");
            let req_s = format!("/{b}/{rest}");
            let (Ok(scope), Ok(req)) = (MediaPath::parse(&scope_s), MediaPath::parse(&req_s)) else {
                return Ok(());
            };
            prop_assert_eq!(scope.covers(&req), a == b);
        }
    }
}
