//! Token parsing and verification: any input is refused or accepted
//! without panicking, and nothing the verifier accepts was not signed.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mediagate_signer::time::{Duration, OffsetDateTime};
use mediagate_signer::{Key, Keyring, MediaPath, Method, RequestFacts, Signer, Verifier};

fn verifier() -> &'static (Verifier, String) {
    static V: OnceLock<(Verifier, String)> = OnceLock::new();
    V.get_or_init(|| {
        let ring = Keyring::new(Key::new("fuzz", &[7u8; 32]).expect("key"));
        let token = Signer::new(ring.clone())
            .prefix("u", "/a/")
            .issued_at(OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time"))
            .ttl(Duration::hours(1))
            .sign()
            .expect("sign")
            .into_token();
        (Verifier::new(ring), token)
    })
}

fuzz_target!(|data: &[u8]| {
    let (verifier, valid) = verifier();
    let now = OffsetDateTime::from_unix_timestamp(1_800_000_100).expect("time");
    let path = MediaPath::parse("/a/b").expect("path");
    let facts = RequestFacts::new(Method::Get, &path);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = mediagate_signer::decode_unverified(text);
        if verifier.verify(text, &facts, now).is_ok() {
            // The only token the fuzzer can know that verifies is ours.
            assert_eq!(text, valid.as_str());
        }
    }
    // Mutations of the valid token: flip one byte.
    if let Some((&i, rest)) = data.split_first() {
        let mut t = valid.clone().into_bytes();
        let at = i as usize % t.len();
        t[at] = rest.first().copied().unwrap_or(b'A');
        if let Ok(t) = String::from_utf8(t) {
            if t != *valid {
                assert!(verifier.verify(&t, &facts, now).is_err());
            }
        }
    }
});
