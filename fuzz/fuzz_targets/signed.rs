//! Arbitrary payloads, correctly signed: what the verifier does with
//! authenticated bytes. Parsing them never panics, and the verifier's
//! shortcut (a signed path that covers the request's canonical path is not
//! re-validated) decides exactly as the full check does: `verify` and
//! `authenticate` agree on every payload and request path.
#![no_main]

use std::sync::OnceLock;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use mediagate_signer::time::OffsetDateTime;
use mediagate_signer::{Key, Keyring, MediaPath, Method, RequestFacts, Verifier, VerifyError};
use sha2::Sha256;

const SECRET: [u8; 32] = [7u8; 32];

fn verifier() -> &'static (Verifier, Hmac<Sha256>) {
    static V: OnceLock<(Verifier, Hmac<Sha256>)> = OnceLock::new();
    V.get_or_init(|| {
        let ring = Keyring::new(Key::new("fuzz", &SECRET).expect("key"));
        // link_key = HMAC-SHA256(secret, "mediagate link key v1") (FORMAT.md §2).
        let mut derive = Hmac::<Sha256>::new_from_slice(&SECRET).expect("any length");
        derive.update(b"mediagate link key v1");
        let link_key = derive.finalize().into_bytes();
        let mac = Hmac::<Sha256>::new_from_slice(&link_key).expect("any length");
        (Verifier::new(ring), mac)
    })
}

fuzz_target!(|data: &[u8]| {
    let (verifier, mac) = verifier();
    // The request path comes first: up to the first NUL, if canonical.
    let (request, payload) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"/a/b"[..], data),
    };
    let Ok(request) = std::str::from_utf8(request) else {
        return;
    };
    let Ok(path) = MediaPath::parse(request) else {
        return;
    };
    let mut m = mac.clone();
    m.update(payload);
    let signed = [payload, &m.finalize().into_bytes()[..]].concat();
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signed);
    let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time");
    let facts = RequestFacts::new(Method::Get, &path);
    let verified = verifier.verify(&token, &facts, now);
    let authenticated = verifier.authenticate(&token);
    match verified {
        Ok(grant) => {
            let claims = authenticated.expect("a granted token authenticates");
            assert_eq!(*grant.claims(), claims);
            let scope = MediaPath::parse(grant.claims().path()).expect("a granted path is canonical");
            assert!(scope.covers(&path));
        }
        // Refused before or while parsing: the full parse refuses the same way.
        Err(
            e @ (VerifyError::Malformed(_)
            | VerifyError::UnsupportedVersion(_)
            | VerifyError::UnknownKey
            | VerifyError::BadSignature),
        ) => assert_eq!(authenticated.err(), Some(e)),
        // Refused by a check on well-formed claims.
        Err(_) => {
            let claims = authenticated.expect("well-formed claims authenticate");
            MediaPath::parse(claims.path()).expect("well-formed claims have a canonical path");
        }
    }
});
