//! Signer benchmarks: minting a token, minting a full URL and verifying, each
//! beside a baseline measured in the same run: raw HMAC-SHA256 with a
//! precomputed key state over the same payload bytes. Prints the ratios
//! (target: each at most 1.5x the baseline).
//!
//! Run: `cargo bench --bench signer`

use std::hint::black_box;

use base64::Engine as _;
use criterion::{Criterion, criterion_group};
use hmac::{Hmac, Mac};
use mediagate::signer::time::{Duration, OffsetDateTime};
use mediagate::signer::{Key, Keyring, MediaPath, Method, RequestFacts, Signer, Verifier};
use sha2::Sha256;

const PATH: &str = "/videos/2026/show-42/720p/master.m3u8";

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn setup() -> (Signer, Verifier, String, Vec<u8>) {
    let ring = Keyring::new(Key::new("bench-1", &[9u8; 32]).expect("valid key"));
    let signer = Signer::new(ring.clone());
    let verifier = Verifier::new(ring);
    let token = signer
        .link(PATH)
        .user("user-123456")
        .issued_at(now())
        .ttl(Duration::minutes(10))
        .sign()
        .expect("signs")
        .into_token();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&token)
        .expect("decodes");
    let payload = raw[..raw.len() - 32].to_vec();
    (signer, verifier, token, payload)
}

fn benches(c: &mut Criterion) {
    let (signer, verifier, token, payload) = setup();
    // The clock is read once: reading it is not the signer's cost.
    let now = now();
    let mut g = c.benchmark_group("signer");
    let baseline = Hmac::<Sha256>::new_from_slice(&[7u8; 32]).expect("any key length");
    g.bench_function("baseline_hmac", |b| {
        b.iter(|| {
            let mut m = baseline.clone();
            m.update(black_box(&payload));
            black_box(m.finalize().into_bytes())
        })
    });
    g.bench_function("mint_token", |b| {
        b.iter(|| {
            signer
                .link(black_box(PATH))
                .user(black_box("user-123456"))
                .issued_at(now)
                .ttl(Duration::minutes(10))
                .sign()
                .map(|l| l.into_token())
        })
    });
    g.bench_function("mint_url", |b| {
        b.iter(|| {
            signer
                .link(black_box(PATH))
                .user(black_box("user-123456"))
                .issued_at(now)
                .ttl(Duration::minutes(10))
                .sign()
                .map(|l| l.url("https://media.example.com/media"))
        })
    });
    let path = MediaPath::parse(PATH).expect("canonical");
    let facts = RequestFacts::new(Method::Get, &path);
    g.bench_function("verify", |b| {
        b.iter(|| verifier.verify(black_box(&token), &facts, now))
    });
    g.finish();
}

/// The criterion group (a macro-made function, documented here).
mod group {
    #![allow(missing_docs)]
    use super::*;
    criterion_group!(signer_benches, benches);
}
use group::signer_benches;

/// Reads criterion's mean estimate (ns) for one benchmark of this run.
fn mean_ns(name: &str) -> Option<f64> {
    let dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let path = format!("{dir}/criterion/signer/{name}/new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["mean"]["point_estimate"].as_f64()
}

fn main() {
    signer_benches();
    Criterion::default().configure_from_args().final_summary();
    let (_, _, _, payload) = setup();
    let Some(base) = mean_ns("baseline_hmac") else {
        return;
    };
    println!(
        "\nratios against raw HMAC-SHA256 of the same {}-byte payload ({base:.0} ns), target <= 1.5x:",
        payload.len()
    );
    for name in ["mint_token", "mint_url", "verify"] {
        if let Some(ns) = mean_ns(name) {
            let ratio = ns / base;
            let mark = if ratio <= 1.5 { "ok" } else { "OVER TARGET" };
            println!("  {name:<12} {ns:>8.0} ns  {ratio:>5.2}x  {mark}");
        }
    }
}
