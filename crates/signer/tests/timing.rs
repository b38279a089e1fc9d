//! Constant-time tag comparison, checked statistically.
//!
//! The guarantee is by construction: the tag is compared with the `subtle`
//! crate's constant-time equality over all 32 bytes (as four 64-bit words,
//! folded before the one branch). This test measures it anyway: a token whose
//! *first* tag byte is wrong must take as long to refuse as one whose
//! *last* tag byte is wrong (an early-exit comparison would refuse the
//! first kind sooner). Timing on shared machines is noisy, so the test is
//! ignored in CI; run it with
//! `cargo test --release -p mediagate-signer --test timing -- --ignored --nocapture`.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::hint::black_box;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mediagate_signer::time::{Duration, OffsetDateTime};
use mediagate_signer::{Key, Keyring, MediaPath, Method, RequestFacts, Signer, Verifier};

fn corrupt(token: &str, byte_from_end: usize) -> String {
    let mut raw = URL_SAFE_NO_PAD.decode(token).unwrap();
    let i = raw.len() - byte_from_end;
    raw[i] ^= 0x01;
    URL_SAFE_NO_PAD.encode(raw)
}

#[test]
#[ignore = "timing measurement; run by hand on a quiet machine"]
fn first_and_last_tag_byte_errors_take_the_same_time() {
    let ring = Keyring::new(Key::new("t", &[5u8; 32]).unwrap());
    let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    let token = Signer::new(ring.clone())
        .link("u", "/a")
        .issued_at(now)
        .ttl(Duration::minutes(5))
        .sign()
        .unwrap()
        .into_token();
    let first = corrupt(&token, 32); // first tag byte
    let last = corrupt(&token, 1); // last tag byte
    let verifier = Verifier::new(ring);
    let path = MediaPath::parse("/a").unwrap();
    let facts = RequestFacts::new(Method::Get, &path);
    let sample = |t: &str| {
        let start = Instant::now();
        for _ in 0..2000 {
            let _ = black_box(verifier.verify(black_box(t), &facts, now));
        }
        start.elapsed().as_nanos() as f64 / 2000.0
    };
    // Interleave the two kinds so that drift hits both alike.
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..200 {
        a.push(sample(&first));
        b.push(sample(&last));
    }
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (ma, mb) = (a[a.len() / 2], b[b.len() / 2]);
    let diff = (ma - mb).abs() / ma.min(mb);
    println!(
        "median ns per refusal: first byte wrong {ma:.1}, last byte wrong {mb:.1} ({:.2}% apart)",
        diff * 100.0
    );
    assert!(
        diff < 0.03,
        "first/last tag byte errors differ by {:.2}%",
        diff * 100.0
    );
}
