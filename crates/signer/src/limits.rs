//! Every bound of the link format, and the validators of its small
//! values (subject, filename, content type, key id): the leaf that the
//! encoder, the decoder, keys and paths all check against. The figures
//! are normative (`docs/FORMAT.md`).

use crate::scan;

/// The format version this crate writes and reads.
pub const VERSION: u8 = 1;

/// Length of the MAC tag at the end of every token, in bytes.
pub const TAG_LEN: usize = 32;

/// The latest time a link may carry: 9999-12-31T23:59:59Z, in Unix seconds.
pub const MAX_TIME: u64 = 253_402_300_799;

/// The longest subject (user id), in bytes.
pub const MAX_SUBJECT_LEN: usize = 128;

/// The longest signed download filename, in bytes.
pub const MAX_FILENAME_LEN: usize = 255;

/// The longest signed Content-Type, in bytes.
pub const MAX_CONTENT_TYPE_LEN: usize = 127;

/// The longest media path accepted, in bytes (after percent-decoding).
pub const MAX_PATH_LEN: usize = 1024;

/// The longest single path segment accepted, in bytes (Linux's `NAME_MAX`).
pub const MAX_SEGMENT_LEN: usize = 255;

/// The shortest secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// The longest secret accepted, in bytes.
pub const MAX_SECRET_LEN: usize = 128;

/// The length of secrets made by [`Key::generate`](crate::Key::generate), in bytes.
pub const GENERATED_SECRET_LEN: usize = 32;

/// The longest key id, in bytes.
pub const MAX_KEY_ID_LEN: usize = 32;

/// The smallest payload: one-byte key id, subject and path, no options.
pub(crate) const MIN_PAYLOAD_LEN: usize = 1 + 1 + 1 + 1 + 1 + 8 + 8 + 1 + 1 + 2 + 1;

/// The largest payload this version can hold.
pub(crate) const MAX_PAYLOAD_LEN: usize = 1
    + 1
    + MAX_KEY_ID_LEN
    + 1
    + 1
    + 8
    + 8
    + 8
    + 1
    + MAX_SUBJECT_LEN
    + 2
    + MAX_PATH_LEN
    + (1 + 16 + 1)
    + (1 + 1 + MAX_FILENAME_LEN)
    + (1 + MAX_CONTENT_TYPE_LEN)
    + 8
    + (1 + 8 + 32);

/// Shortest token accepted, in characters.
pub const MIN_TOKEN_LEN: usize = encoded_len(MIN_PAYLOAD_LEN + TAG_LEN);

/// Longest token accepted, in characters.
pub const MAX_TOKEN_LEN: usize = encoded_len(MAX_PAYLOAD_LEN + TAG_LEN);

/// Length of the unpadded base64 form of `n` bytes.
pub(crate) const fn encoded_len(n: usize) -> usize {
    (n * 4).div_ceil(3)
}

/// The path segment that announces a token in the next segment:
/// `/_mg/<token>/videos/a.mp4`.
pub const PATH_MARKER: &str = "_mg";

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

/// Whether `b` is a token character (`tchar`, RFC 9110 §5.6.2), the
/// bytes a content type's parts are made of; the verifier checks request
/// methods with it.
#[inline]
pub fn is_token_byte(b: u8) -> bool {
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

pub(crate) fn is_valid_key_id(id: &[u8]) -> bool {
    // A fold without early exit: this runs on every token, twice.
    (1..=MAX_KEY_ID_LEN).contains(&id.len())
        && id.iter().fold(true, |ok, &b| ok & KEY_ID_BYTE[b as usize])
}

/// Which bytes a key id may hold: `A-Z a-z 0-9 . _ -`.
static KEY_ID_BYTE: [bool; 256] = crate::scan::byte_table!(false, |b| b.is_ascii_alphanumeric()
    || matches!(b, b'.' | b'_' | b'-'));

#[cfg(test)]
mod tests {
    use super::*;

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
}
