//! RFC 9530 `Content-Digest`: the digests a client sends of the bytes it
//! uploads, checked when they are whole.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use sha2::{Digest as _, Sha256, Sha512};

/// The digests a request asks to be checked (those of the algorithms
/// known here; others are ignored, as RFC 9530 §2 allows).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Expected {
    pub(crate) sha256: Option<[u8; 32]>,
    pub(crate) sha512: Option<[u8; 64]>,
}

/// A `Content-Digest` that is no structured-field dictionary of byte
/// sequences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed;

/// Reads every `Content-Digest` line of `headers`.
pub(crate) fn expected(headers: &HeaderMap) -> Result<Expected, Malformed> {
    let mut out = Expected::default();
    for value in headers.get_all("content-digest") {
        let value = value.to_str().map_err(|_| Malformed)?;
        for member in value.split(',') {
            let member = member.trim_matches([' ', '\t']);
            let (key, rest) = member.split_once('=').ok_or(Malformed)?;
            // Parameters (`;a=b`) are allowed after the value, and ignored.
            let bytes = rest.split(';').next().unwrap_or_default();
            let b64 = bytes
                .strip_prefix(':')
                .and_then(|b| b.strip_suffix(':'))
                .ok_or(Malformed)?;
            let key = key.trim();
            if key.is_empty()
                || !key
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.*".contains(&b))
            {
                return Err(Malformed);
            }
            let digest = STANDARD.decode(b64).map_err(|_| Malformed)?;
            match key {
                "sha-256" => out.sha256 = Some(digest.try_into().map_err(|_| Malformed)?),
                "sha-512" => out.sha512 = Some(digest.try_into().map_err(|_| Malformed)?),
                _ => {}
            }
        }
    }
    Ok(out)
}

/// The running digests of an upload's bytes: SHA-256 when the link or the
/// request names one, SHA-512 when the request does.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hashing {
    sha256: Option<Sha256>,
    sha512: Option<Sha512>,
}

impl Hashing {
    pub(crate) fn new(sha256: bool, sha512: bool) -> Self {
        Hashing {
            sha256: sha256.then(Sha256::new),
            sha512: sha512.then(Sha512::new),
        }
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        if let Some(h) = &mut self.sha256 {
            h.update(bytes);
        }
        if let Some(h) = &mut self.sha512 {
            h.update(bytes);
        }
    }

    /// The SHA-256 and SHA-512 of the bytes, for those computed.
    pub(crate) fn finish(self) -> (Option<[u8; 32]>, Option<[u8; 64]>) {
        (
            self.sha256.map(|h| h.finalize().into()),
            self.sha512.map(|h| h.finalize().into()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("content-digest", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn reads_known_algorithms_and_ignores_others() {
        let hello = STANDARD.encode(Sha256::digest(b"hello"));
        let got = expected(&headers(&[&format!("sha-256=:{hello}:, md5=:AAAA:")])).unwrap();
        assert_eq!(got.sha256, Some(Sha256::digest(b"hello").into()));
        assert_eq!(got.sha512, None);
        assert_eq!(expected(&HeaderMap::new()), Ok(Expected::default()));
        assert_eq!(
            expected(&headers(&["unixsum=:AAAA:"])),
            Ok(Expected::default())
        );
    }

    #[test]
    fn malformed_values_are_refused() {
        for bad in [
            "sha-256",
            "sha-256=abc",
            "sha-256=:not base64!:",
            "sha-256=:AAAA:",
            "SHA-256=:AAAA:",
            "=:AAAA:",
        ] {
            assert_eq!(expected(&headers(&[bad])), Err(Malformed), "{bad}");
        }
    }

    proptest::proptest! {
        /// Any header value is read or refused, never a panic; a value the
        /// parser accepts names digests of the right lengths only.
        #[test]
        fn any_value_is_read_or_refused(value in "[ -~]{0,120}") {
            if let Ok(v) = http::HeaderValue::from_str(&value) {
                let mut h = HeaderMap::new();
                h.insert("content-digest", v);
                let _ = expected(&h);
            }
        }

        /// A digest written the RFC 9530 way reads back.
        #[test]
        fn written_digests_read_back(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let d: [u8; 32] = Sha256::digest(&bytes).into();
            let h = headers(&[&format!("sha-256=:{}:", STANDARD.encode(d))]);
            proptest::prop_assert_eq!(expected(&h).unwrap().sha256, Some(d));
        }
    }

    #[test]
    fn hashing_computes_what_is_asked() {
        let mut h = Hashing::new(true, false);
        h.update(b"hel");
        h.update(b"lo");
        let (a, b) = h.finish();
        assert_eq!(a, Some(Sha256::digest(b"hello").into()));
        assert_eq!(b, None);
    }
}
