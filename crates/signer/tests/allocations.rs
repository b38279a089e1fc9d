//! Signing is called once per link in template loops: minting and rendering
//! a link in one step allocates the output string and nothing else, and
//! verifying allocates only the grant's copy of the payload (nothing when it
//! refuses a link). Counted with a counting global allocator, which this
//! test binary alone links.

use mediagate_signer::time::{Duration, OffsetDateTime};
use mediagate_signer::{Key, Keyring, MediaPath, Method, RequestFacts, Signer, Verifier};

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("in range")
}

fn ring() -> Keyring {
    Keyring::new(Key::new("k1", &[7u8; 32]).expect("valid key"))
}

fn allocations(f: impl FnOnce()) -> u64 {
    allocation_counter::measure(f).count_total
}

#[test]
fn minting_allocates_only_the_output() {
    let signer = Signer::new(ring());
    let link = || {
        signer
            .link("user-123456", "/videos/2026/show-42/720p/master.m3u8")
            .issued_at(now())
            .ttl(Duration::minutes(10))
            .attachment("Quarterly report é.pdf")
    };
    // Warm up anything lazily initialized (CPU feature detection).
    let _ = link().url("https://m.example/media");

    let base = "https://media.example.com/media";
    let one_step: [(&str, &dyn Fn() -> String); 3] = [
        ("token", &|| link().token().expect("signs")),
        ("url", &|| link().url(base).expect("signs")),
        ("path_form", &|| link().path_form(base).expect("signs")),
    ];
    for (name, render) in one_step {
        let mut out = String::new();
        assert_eq!(allocations(|| out = render()), 1, "{name}");
        assert!(!out.is_empty(), "{name}");
    }
    // A signed link keeps its token: one allocation for it, one per rendering.
    let mut link_value = None;
    assert_eq!(allocations(|| link_value = link().sign().ok()), 1, "sign");
    let signed = link_value.expect("signs");
    let renders: [(&str, &dyn Fn() -> String); 3] = [
        ("query", &|| signed.query()),
        ("url", &|| signed.url(base)),
        ("path_form", &|| signed.path_form(base)),
    ];
    for (name, render) in renders {
        let mut out = String::new();
        assert_eq!(allocations(|| out = render()), 1, "{name}");
        assert!(out.contains(signed.token()), "{name}");
    }
}

#[test]
fn long_links_allocate_one_buffer_more() {
    let signer = Signer::new(ring());
    let path = format!("/{}/{}", "a".repeat(200), "b".repeat(200));
    let url = || {
        signer
            .link("u", &path)
            .issued_at(now())
            .ttl(Duration::minutes(1))
            .url("")
            .expect("signs")
    };
    let _ = url();
    let mut out = String::new();
    assert_eq!(allocations(|| out = url()), 2);
    assert!(out.len() > 400);
}

#[test]
fn verifying_allocates_only_the_grant_and_refusing_nothing() {
    let signer = Signer::new(ring());
    let verifier = Verifier::new(ring());
    let token = signer
        .link("42", "/videos/a.mp4")
        .issued_at(now())
        .ttl(Duration::minutes(10))
        .attachment("report é.pdf")
        .token()
        .expect("signs");
    let path = MediaPath::parse("/videos/a.mp4").expect("canonical");
    let facts = RequestFacts::new(Method::Get, &path);
    let _ = verifier.verify(&token, &facts, now());
    let mut grant = None;
    assert_eq!(
        allocations(|| grant = verifier.verify(&token, &facts, now()).ok()),
        1
    );
    let grant = grant.expect("granted");
    assert_eq!(
        (grant.claims().subject(), grant.claims().filename()),
        ("42", Some("report é.pdf"))
    );

    // A correctly signed link refused after the MAC check: no grant built.
    let other = MediaPath::parse("/videos/b.mp4").expect("canonical");
    let later = now() + Duration::hours(1);
    let refusals = [
        ("expired", RequestFacts::new(Method::Get, &path), later),
        ("method", RequestFacts::new(Method::Put, &path), now()),
        ("scope", RequestFacts::new(Method::Get, &other), now()),
    ];
    for (name, facts, at) in refusals {
        let mut outcome = None;
        assert_eq!(
            allocations(|| outcome = Some(verifier.verify(&token, &facts, at))),
            0,
            "{name}"
        );
        assert!(matches!(outcome, Some(Err(_))), "{name}");
    }
}
