//! The test vectors in `vectors.json`: the contract for every implementation
//! of the link format. Each valid vector must sign to exactly its token and
//! verify; each invalid vector must fail with exactly its error code.
//!
//! Regenerate the file (only when the format changes on purpose) with
//! `MEDIAGATE_REGENERATE_VECTORS=1 cargo test -p mediagate-signer --test vectors`.

// Test helpers and the vector generator: a panic is the right failure here.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use mediagate_signer::time::{Duration, OffsetDateTime};
use mediagate_signer::{Key, Keyring, MediaPath, Method, Methods, RequestFacts, Signer, Verifier};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors.json");

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
struct ClaimsIn {
    /// "exact" (one file) or "prefix" (a directory, asked for explicitly).
    scope: String,
    path: String,
    user: String,
    issued_at: i64,
    expires: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    not_before: Option<i64>,
    methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_net: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    attachment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    inline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    generation: Option<u64>,
    /// Upload claims (field 17): the most bytes, the digest of the bytes
    /// (hex), and whether an existing file may be replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    replace: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
struct Request {
    method: String,
    path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_ip: Option<String>,
    now: i64,
    /// For a `PUT`: the upload (its `Content-Type`, and the length and
    /// SHA-256 of its bytes), checked against the link's upload claims
    /// once the link grants the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    upload: Option<UploadIn>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
struct UploadIn {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    content_type: Option<String>,
    length: u64,
    sha256: String,
}

#[derive(Serialize, Deserialize, Debug)]
struct Valid {
    name: String,
    /// The key that signs, when not the active one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signing_key: Option<String>,
    claims: ClaimsIn,
    payload_hex: String,
    token: String,
    /// The link's id for revocation: the first 16 bytes of the tag,
    /// base64url without padding (docs/FORMAT.md §7).
    link_id: String,
    request: Request,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    content_disposition: Option<String>,
}

#[derive(Serialize, Deserialize, Debug)]
struct Invalid {
    name: String,
    token: String,
    request: Request,
    error: String,
}

/// Claims a signer must refuse to sign, with the error it names.
#[derive(Serialize, Deserialize, Debug)]
struct Unsignable {
    name: String,
    claims: ClaimsIn,
    error: String,
}

#[derive(Serialize, Deserialize, Debug)]
struct KeyIn {
    id: String,
    secret: String,
}

#[derive(Serialize, Deserialize, Debug)]
struct Vectors {
    comment: String,
    keys: Vec<KeyIn>,
    active: String,
    leeway_seconds: i64,
    max_ttl_seconds: i64,
    valid: Vec<Valid>,
    invalid: Vec<Invalid>,
    unsignable: Vec<Unsignable>,
}

fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap()
}

fn keyring(v: &Vectors) -> Keyring {
    let mut keys = v
        .keys
        .iter()
        .map(|k| Key::from_base64(&k.id, &k.secret).unwrap());
    let mut ring = keys
        .next()
        .into_iter()
        .chain(keys)
        .fold(None::<Keyring>, |ring, key| match ring {
            None => Some(Keyring::new(key)),
            Some(r) => Some(r.with_verify_key(key).unwrap()),
        })
        .unwrap();
    ring.set_active(&v.active).unwrap();
    ring
}

fn methods(names: &[String]) -> Methods {
    names
        .iter()
        .map(|m| match m.as_str() {
            "GET" => Methods::GET,
            "HEAD" => Methods::HEAD,
            "PUT" => Methods::PUT,
            other => panic!("unknown method {other}"),
        })
        .reduce(|a, b| a | b)
        .unwrap()
}

fn sign(signer: &Signer, c: &ClaimsIn) -> Result<String, mediagate_signer::SignError> {
    let start = match c.scope.as_str() {
        "exact" => signer.link(&c.user, &c.path),
        "prefix" => signer.prefix(&c.user, &c.path),
        other => panic!("unknown scope {other}"),
    };
    let mut b = start
        .issued_at(at(c.issued_at))
        .expires_at(at(c.expires))
        .methods(methods(&c.methods));
    if let Some(nbf) = c.not_before {
        b = b.not_before(at(nbf));
    }
    if let Some(net) = &c.client_net {
        b = b.client_net(net.parse().unwrap());
    }
    if let Some(f) = &c.attachment {
        b = b.attachment(f);
    }
    if let Some(f) = &c.inline {
        b = b.inline(f);
    }
    if let Some(ct) = &c.content_type {
        b = b.content_type(ct);
    }
    if let Some(g) = c.generation {
        b = b.generation(g);
    }
    if let Some(max) = c.max_size {
        b = b.max_size(max);
    }
    if let Some(d) = &c.sha256 {
        b = b.sha256(unhex32(d));
    }
    b.replace(c.replace).sign().map(|l| l.into_token())
}

fn verify(verifier: &Verifier, token: &str, r: &Request) -> Result<(), String> {
    let path = MediaPath::parse(&r.path).map_err(|e| format!("path: {e}"))?;
    let method = Method::from_name(&r.method).ok_or("method")?;
    let mut facts = RequestFacts::new(method, &path);
    if let Some(ip) = &r.client_ip {
        facts = facts.client_ip(ip.parse().unwrap());
    }
    let grant = verifier
        .verify(token, &facts, at(r.now))
        .map_err(|e| e.code().to_owned())?;
    if let Some(up) = &r.upload {
        let claims = grant.claims();
        let refused = |e: mediagate_signer::UploadError| e.code().to_owned();
        claims
            .admits_content_type(up.content_type.as_deref())
            .map_err(refused)?;
        claims.admits_length(up.length).map_err(refused)?;
        claims
            .admits_received(up.length, &unhex32(&up.sha256))
            .map_err(refused)?;
    }
    Ok(())
}

fn unhex32(h: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex(&Sha256::digest(bytes))
}

#[test]
fn vectors_hold() {
    if std::env::var_os("MEDIAGATE_REGENERATE_VECTORS").is_some() {
        regenerate();
    }
    let text = std::fs::read_to_string(VECTORS).unwrap();
    let v: Vectors = serde_json::from_str(&text).unwrap();
    assert!(v.valid.len() >= 20 && v.invalid.len() >= 20);
    let ring = keyring(&v);
    let signer = Signer::new(ring.clone()).max_ttl(Duration::seconds(v.max_ttl_seconds));
    let verifier = Verifier::new(ring.clone())
        .leeway(Duration::seconds(v.leeway_seconds))
        .max_ttl(Duration::seconds(v.max_ttl_seconds));
    for case in &v.valid {
        let signer = match &case.signing_key {
            None => signer.clone(),
            Some(id) => {
                let mut ring = ring.clone();
                ring.set_active(id).unwrap();
                Signer::new(ring)
            }
        };
        let token = sign(&signer, &case.claims).unwrap();
        assert_eq!(token, case.token, "{}: token", case.name);
        let raw = URL_SAFE_NO_PAD.decode(&case.token).unwrap();
        assert_eq!(
            hex(&raw[..raw.len() - 32]),
            case.payload_hex,
            "{}: payload",
            case.name
        );
        assert_eq!(
            mac_by_spec(&v, &raw[..raw.len() - 32]),
            raw[raw.len() - 32..],
            "{}",
            case.name
        );
        verify(&verifier, &case.token, &case.request)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let id = mediagate_signer::revoke::LinkId::of_token(&case.token).unwrap();
        assert_eq!(id.to_string(), case.link_id, "{}: link id", case.name);
        // Every claim reads back through the accessors.
        let claims = verifier.authenticate(&case.token).unwrap();
        let c = &case.claims;
        let key_id = case.signing_key.as_deref().unwrap_or(&v.active);
        assert_eq!(claims.key_id(), key_id, "{}", case.name);
        assert_eq!(claims.subject(), c.user);
        assert_eq!(claims.path(), c.path);
        let filename = c.attachment.as_deref().or(c.inline.as_deref());
        assert_eq!(claims.filename(), filename.filter(|f| !f.is_empty()));
        assert_eq!(claims.content_type(), c.content_type.as_deref());
        assert_eq!(claims.generation(), c.generation, "{}", case.name);
        let up = claims.upload();
        assert_eq!(up.max_size, c.max_size, "{}", case.name);
        assert_eq!(up.sha256.map(|d| hex(&d)), c.sha256, "{}", case.name);
        assert_eq!(up.replace, c.replace, "{}", case.name);
        assert_eq!(claims.issued_at(), at(c.issued_at), "{}", case.name);
        assert_eq!(claims.expires_at(), at(c.expires), "{}", case.name);
        assert_eq!(claims.not_before(), c.not_before.map(at), "{}", case.name);
        assert_eq!(
            claims.client_net().map(|n| n.to_string()),
            c.client_net.clone(),
            "{}",
            case.name
        );
        assert_eq!(
            claims.content_disposition(),
            case.content_disposition,
            "{}",
            case.name
        );
    }
    for case in &v.unsignable {
        assert_eq!(
            sign(&signer, &case.claims).err().map(|e| e.code()),
            Some(case.error.as_str()),
            "{}",
            case.name
        );
    }
    for case in &v.invalid {
        assert_eq!(
            verify(&verifier, &case.token, &case.request)
                .err()
                .as_deref(),
            Some(case.error.as_str()),
            "{}",
            case.name
        );
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The MAC computed from `docs/FORMAT.md` alone, independent of the crate.
fn mac_by_spec(v: &Vectors, payload: &[u8]) -> Vec<u8> {
    let key_len = payload[1] as usize;
    let key_id = std::str::from_utf8(&payload[2..2 + key_len]).unwrap();
    let secret = v.keys.iter().find(|k| k.id == key_id).unwrap();
    mac_with_secret(&URL_SAFE_NO_PAD.decode(&secret.secret).unwrap(), payload)
}

fn mac_with_secret(secret: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut d = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    d.update(b"mediagate link key v1");
    let link_key = d.finalize().into_bytes();
    let mut m = Hmac::<Sha256>::new_from_slice(&link_key).unwrap();
    m.update(payload);
    m.finalize().into_bytes().to_vec()
}

// ---------------------------------------------------------------------------
// Generation of vectors.json.

const T0: i64 = 1_800_000_000; // 2027-01-15T08:00:00Z

fn get(path: &str) -> Request {
    Request {
        method: "GET".into(),
        path: path.into(),
        client_ip: None,
        now: T0 + 60,
        upload: None,
    }
}

/// A `PUT` of `bytes` as `content_type` to `path`.
fn put(path: &str, content_type: Option<&str>, bytes: &[u8]) -> Request {
    Request {
        method: "PUT".into(),
        upload: Some(UploadIn {
            content_type: content_type.map(Into::into),
            length: bytes.len() as u64,
            sha256: sha256_hex(bytes),
        }),
        ..get(path)
    }
}

/// Bytes the upload vectors send: the start of a JPEG.
const JPEG: &[u8] = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00";

/// An upload link's claims.
fn upload(path: &str) -> ClaimsIn {
    ClaimsIn {
        methods: vec!["PUT".into()],
        ..base(path)
    }
}

fn base(path: &str) -> ClaimsIn {
    let scope = if path.ends_with('/') {
        "prefix"
    } else {
        "exact"
    };
    ClaimsIn {
        scope: scope.into(),
        path: path.into(),
        user: "42".into(),
        issued_at: T0,
        expires: T0 + 600,
        methods: vec!["GET".into(), "HEAD".into()],
        ..Default::default()
    }
}

fn regenerate() {
    let secret = |seed: u8| {
        URL_SAFE_NO_PAD.encode(
            (0..32u8)
                .map(|i| i.wrapping_mul(7).wrapping_add(seed))
                .collect::<Vec<_>>(),
        )
    };
    let mut v = Vectors {
        comment:
            "mediagate link format v1 test vectors; see docs/FORMAT.md. Times are Unix seconds."
                .into(),
        keys: vec![
            KeyIn {
                id: "k2026".into(),
                secret: secret(1),
            },
            KeyIn {
                id: "old".into(),
                secret: secret(2),
            },
        ],
        active: "k2026".into(),
        leeway_seconds: 30,
        max_ttl_seconds: 7 * 86400,
        valid: vec![],
        invalid: vec![],
        unsignable: vec![],
    };
    let ring = keyring(&v);
    let signer = Signer::new(ring.clone()).max_ttl(Duration::seconds(v.max_ttl_seconds));
    let mut old_ring = ring.clone();
    old_ring.set_active("old").unwrap();
    let old_signer = Signer::new(old_ring);

    let mut valid: Vec<(&str, ClaimsIn, Request, bool)> = vec![
        (
            "exact path",
            base("/videos/a.mp4"),
            get("/videos/a.mp4"),
            false,
        ),
        ("root-level file", base("/a"), get("/a"), false),
        (
            "prefix covers a segment",
            base("/videos/show/"),
            get("/videos/show/seg-001.ts"),
            false,
        ),
        (
            "prefix covers a nested file",
            base("/videos/show/"),
            get("/videos/show/720p/seg-001.ts"),
            false,
        ),
        ("root prefix", base("/"), get("/anything/at/all.bin"), false),
        (
            "non-ASCII path",
            base("/photos/été/café.jpg"),
            get("/photos/été/café.jpg"),
            false,
        ),
        (
            "path with spaces and punctuation",
            base("/docs/Q3 report (final);v2.pdf"),
            get("/docs/Q3 report (final);v2.pdf"),
            false,
        ),
        (
            "HEAD is granted by default",
            base("/a.txt"),
            Request {
                method: "HEAD".into(),
                ..get("/a.txt")
            },
            false,
        ),
        (
            "GET only",
            ClaimsIn {
                methods: vec!["GET".into()],
                ..base("/a.txt")
            },
            get("/a.txt"),
            false,
        ),
        (
            "PUT upload link",
            ClaimsIn {
                methods: vec!["PUT".into()],
                ..base("/uploads/u.bin")
            },
            Request {
                method: "PUT".into(),
                ..get("/uploads/u.bin")
            },
            false,
        ),
        (
            "upload with every limit",
            ClaimsIn {
                max_size: Some(50 << 20),
                content_type: Some("image/jpeg".into()),
                sha256: Some(sha256_hex(JPEG)),
                ..upload("/uploads/42/avatar.jpg")
            },
            put("/uploads/42/avatar.jpg", Some("image/jpeg"), JPEG),
            false,
        ),
        (
            "upload of exactly the maximum size",
            ClaimsIn {
                max_size: Some(JPEG.len() as u64),
                ..upload("/uploads/42/a.bin")
            },
            put("/uploads/42/a.bin", None, JPEG),
            false,
        ),
        (
            "upload that may replace the file",
            ClaimsIn {
                replace: true,
                ..upload("/uploads/42/notes.txt")
            },
            put(
                "/uploads/42/notes.txt",
                Some("text/plain; charset=utf-8"),
                b"hi",
            ),
            false,
        ),
        (
            "upload below a prefix (new files only)",
            ClaimsIn {
                max_size: Some(1 << 30),
                ..upload("/uploads/42/")
            },
            put("/uploads/42/2027/clip.mp4", Some("video/mp4"), b"x"),
            false,
        ),
        (
            "content type matched ignoring case and with extra parameters",
            ClaimsIn {
                content_type: Some("text/csv; charset=utf-8".into()),
                ..upload("/uploads/42/t.csv")
            },
            put(
                "/uploads/42/t.csv",
                Some("TEXT/CSV; header=present; charset=\"utf-8\""),
                b"a,b\n",
            ),
            false,
        ),
        (
            "upload and download with one link",
            ClaimsIn {
                methods: vec!["GET".into(), "HEAD".into(), "PUT".into()],
                max_size: Some(1024),
                ..base("/uploads/42/doc.pdf")
            },
            get("/uploads/42/doc.pdf"),
            false,
        ),
        (
            "email-like user",
            ClaimsIn {
                user: "alice@example.com".into(),
                ..base("/a.txt")
            },
            get("/a.txt"),
            false,
        ),
        (
            "longest user id",
            ClaimsIn {
                user: "u".repeat(128),
                ..base("/a.txt")
            },
            get("/a.txt"),
            false,
        ),
        (
            "not-before in the past",
            ClaimsIn {
                not_before: Some(T0 + 30),
                ..base("/a.txt")
            },
            get("/a.txt"),
            false,
        ),
        (
            "within leeway before not-before",
            ClaimsIn {
                not_before: Some(T0 + 80),
                ..base("/a.txt")
            },
            get("/a.txt"),
            false,
        ),
        (
            "within leeway after expiry",
            base("/a.txt"),
            Request {
                now: T0 + 620,
                ..get("/a.txt")
            },
            false,
        ),
        (
            "IPv4 address binding",
            ClaimsIn {
                client_net: Some("203.0.113.7/32".into()),
                ..base("/a.txt")
            },
            Request {
                client_ip: Some("203.0.113.7".into()),
                ..get("/a.txt")
            },
            false,
        ),
        (
            "IPv4 network binding",
            ClaimsIn {
                client_net: Some("198.51.100.0/24".into()),
                ..base("/a.txt")
            },
            Request {
                client_ip: Some("198.51.100.200".into()),
                ..get("/a.txt")
            },
            false,
        ),
        (
            "IPv4-mapped IPv6 client",
            ClaimsIn {
                client_net: Some("198.51.100.0/24".into()),
                ..base("/a.txt")
            },
            Request {
                client_ip: Some("::ffff:198.51.100.9".into()),
                ..get("/a.txt")
            },
            false,
        ),
        (
            "IPv4 client in an IPv4-mapped IPv6 network",
            ClaimsIn {
                client_net: Some("::ffff:198.51.100.0/120".into()),
                ..base("/a.txt")
            },
            Request {
                client_ip: Some("198.51.100.9".into()),
                ..get("/a.txt")
            },
            false,
        ),
        (
            "IPv6 network binding",
            ClaimsIn {
                client_net: Some("2001:db8:1234::/48".into()),
                ..base("/a.txt")
            },
            Request {
                client_ip: Some("2001:db8:1234:5::1".into()),
                ..get("/a.txt")
            },
            false,
        ),
        (
            "attachment with ASCII name",
            ClaimsIn {
                attachment: Some("invoice-0042.pdf".into()),
                ..base("/inv/42.pdf")
            },
            get("/inv/42.pdf"),
            false,
        ),
        (
            "attachment with non-ASCII name",
            ClaimsIn {
                attachment: Some("Überweisung März.pdf".into()),
                ..base("/inv/43.pdf")
            },
            get("/inv/43.pdf"),
            false,
        ),
        (
            "inline without filename",
            ClaimsIn {
                inline: Some(String::new()),
                ..base("/inv/44.pdf")
            },
            get("/inv/44.pdf"),
            false,
        ),
        (
            "content type override",
            ClaimsIn {
                content_type: Some("text/plain; charset=utf-8".into()),
                ..base("/logs/x.log")
            },
            get("/logs/x.log"),
            false,
        ),
        (
            "revocation generation",
            ClaimsIn {
                generation: Some(3),
                ..base("/a.txt")
            },
            get("/a.txt"),
            false,
        ),
        (
            "every option",
            ClaimsIn {
                not_before: Some(T0 + 5),
                client_net: Some("10.0.0.0/8".into()),
                attachment: Some("a.mp4".into()),
                content_type: Some("video/mp4".into()),
                generation: Some(u64::MAX),
                ..base("/v/a.mp4")
            },
            Request {
                client_ip: Some("10.1.2.3".into()),
                ..get("/v/a.mp4")
            },
            false,
        ),
        (
            "seven-day lifetime",
            ClaimsIn {
                expires: T0 + 7 * 86400,
                ..base("/a.txt")
            },
            get("/a.txt"),
            false,
        ),
        (
            "signed by a verify-only (rotated) key",
            base("/a.txt"),
            get("/a.txt"),
            true,
        ),
    ];
    for (name, claims, request, old) in valid.drain(..) {
        let s = if old { &old_signer } else { &signer };
        let token = sign(s, &claims).unwrap();
        let raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
        let cd = Verifier::new(ring.clone())
            .authenticate(&token)
            .unwrap()
            .content_disposition();
        v.valid.push(Valid {
            name: name.into(),
            signing_key: old.then(|| "old".to_owned()),
            payload_hex: hex(&raw[..raw.len() - 32]),
            claims,
            link_id: URL_SAFE_NO_PAD.encode(&raw[raw.len() - 32..raw.len() - 16]),
            token,
            request,
            content_disposition: cd,
        });
    }

    let good = sign(&signer, &base("/videos/a.mp4")).unwrap();
    let good_raw = URL_SAFE_NO_PAD.decode(&good).unwrap();
    let (good_payload, good_tag) = good_raw.split_at(good_raw.len() - 32);
    let secret1 = URL_SAFE_NO_PAD.decode(&v.keys[0].secret).unwrap();
    // A token whose payload is `payload`, correctly MACed with the active key.
    let resign = |payload: &[u8]| {
        let mut out = payload.to_vec();
        out.extend(mac_with_secret(&secret1, payload));
        URL_SAFE_NO_PAD.encode(out)
    };
    let flip = |i: usize| {
        let mut raw = good_raw.clone();
        raw[i] ^= 1;
        URL_SAFE_NO_PAD.encode(raw)
    };
    let req = get("/videos/a.mp4");
    let std_alphabet = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&good_raw);
    let mut tok_with_std = None;
    // Find a good token whose standard-alphabet spelling differs.
    for user in 0..200 {
        let t = sign(
            &signer,
            &ClaimsIn {
                user: format!("u{user}"),
                ..base("/videos/a.mp4")
            },
        )
        .unwrap();
        let s = base64::engine::general_purpose::STANDARD_NO_PAD
            .encode(URL_SAFE_NO_PAD.decode(&t).unwrap());
        if s != t {
            tok_with_std = Some(s);
            break;
        }
    }
    let trailing_bits = {
        // Set an unused low bit in the last character of a token whose byte
        // count is not a multiple of three (so it has unused bits).
        let mut t = ["/videos/a.mp4", "/videos/ab.mp4", "/videos/abc.mp4"]
            .iter()
            .map(|p| sign(&signer, &base(p)).unwrap())
            .find(|t| t.len() % 4 != 0)
            .unwrap();
        let last = t.pop().unwrap();
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let idx = alphabet.iter().position(|&c| c == last as u8).unwrap();
        t.push(alphabet[idx ^ 1] as char);
        t
    };
    let mut version2 = good_payload.to_vec();
    version2[0] = 2;
    let mut trailing = good_payload.to_vec();
    trailing.push(0);
    let unknown_key = {
        let mut p = good_payload.to_vec();
        // Same length id, different name: "k2027".
        p[2..7].copy_from_slice(b"k2027");
        resign(&p)
    };
    let dot_path = {
        let t = sign(&signer, &base("/videos/x.mp4")).unwrap();
        let mut p = URL_SAFE_NO_PAD.decode(&t).unwrap();
        p.truncate(p.len() - 32);
        let at = p.windows(13).position(|w| w == b"/videos/x.mp4").unwrap();
        p[at..at + 13].copy_from_slice(b"/../eos/x.mp4");
        resign(&p)
    };
    // Same-length rewrites of a signed path into non-canonical ones.
    let rewrite_path = |from: &str, to: &[u8]| {
        let t = sign(&signer, &base(from)).unwrap();
        let mut p = URL_SAFE_NO_PAD.decode(&t).unwrap();
        p.truncate(p.len() - 32);
        let at = p
            .windows(from.len())
            .position(|w| w == from.as_bytes())
            .unwrap();
        p[at..at + to.len()].copy_from_slice(to);
        resign(&p)
    };
    let empty_segment_prefix = rewrite_path("/videos/abc/", b"/videos//bc/");
    let backslash_prefix = rewrite_path("/videos/abc/", b"/videos/a\\c/");
    let latin1_filename = {
        let claims = ClaimsIn {
            attachment: Some("M\u{e4}rz.pdf".into()),
            ..base("/videos/a.mp4")
        };
        let t = sign(&signer, &claims).unwrap();
        let mut p = URL_SAFE_NO_PAD.decode(&t).unwrap();
        p.truncate(p.len() - 32);
        let at = p.windows(2).position(|w| w == "\u{e4}".as_bytes()).unwrap();
        // Two Latin-1 bytes for the two of UTF-8: no control character,
        // no separator, only not UTF-8.
        p[at..at + 2].copy_from_slice(b"\xe4\xe4");
        resign(&p)
    };
    let long_lifetime = {
        let s = Signer::new(ring.clone()).max_ttl(Duration::days(30));
        sign(
            &s,
            &ClaimsIn {
                expires: T0 + 8 * 86400,
                ..base("/videos/a.mp4")
            },
        )
        .unwrap()
    };
    let bound = sign(
        &signer,
        &ClaimsIn {
            client_net: Some("203.0.113.0/24".into()),
            ..base("/videos/a.mp4")
        },
    )
    .unwrap();
    let mapped = sign(
        &signer,
        &ClaimsIn {
            client_net: Some("::ffff:203.0.113.0/120".into()),
            ..base("/videos/a.mp4")
        },
    )
    .unwrap();
    let prefix = sign(&signer, &base("/videos/")).unwrap();
    let get_only = sign(
        &signer,
        &ClaimsIn {
            methods: vec!["GET".into()],
            ..base("/videos/a.mp4")
        },
    )
    .unwrap();
    let nbf = sign(
        &signer,
        &ClaimsIn {
            not_before: Some(T0 + 300),
            ..base("/videos/a.mp4")
        },
    )
    .unwrap();
    let future = sign(
        &signer,
        &ClaimsIn {
            issued_at: T0 + 3600,
            expires: T0 + 4200,
            ..base("/videos/a.mp4")
        },
    )
    .unwrap();

    let jpeg_upload = sign(
        &signer,
        &ClaimsIn {
            max_size: Some(1024),
            content_type: Some("image/jpeg".into()),
            sha256: Some(sha256_hex(JPEG)),
            ..upload("/uploads/a.jpg")
        },
    )
    .unwrap();
    let small_upload = ClaimsIn {
        max_size: Some(4),
        ..upload("/uploads/a.bin")
    };
    // A signed upload link with its payload changed by `edit`, then MACed.
    let upload_edited = |claims: &ClaimsIn, edit: &dyn Fn(&mut Vec<u8>)| {
        let t = sign(&signer, claims).unwrap();
        let mut p = URL_SAFE_NO_PAD.decode(&t).unwrap();
        p.truncate(p.len() - 32);
        edit(&mut p);
        resign(&p)
    };
    // The upload field of `small_upload` is its last 9 bytes: the flags,
    // then the size.
    let upload_flags = |p: &mut Vec<u8>| p.len() - 9;
    let no_upload_claims = upload_edited(&small_upload, &|p| {
        let at = upload_flags(p);
        p[at] = 0;
    });
    let unknown_upload_flag = upload_edited(&small_upload, &|p| {
        let at = upload_flags(p);
        p[at] |= 1 << 3;
    });
    let upload_without_put = upload_edited(&small_upload, &|p| {
        // key id "k2026" (2 + 5 bytes), flags, then methods.
        p[2 + 5 + 1] = 0b011;
    });
    let replace_below_prefix = upload_edited(
        &ClaimsIn {
            max_size: Some(4),
            ..upload("/uploads/")
        },
        &|p| {
            let at = upload_flags(p);
            p[at] |= 1 << 2;
        },
    );
    let invalid: Vec<(&str, String, Request, &str)> = vec![
        ("empty token", String::new(), req.clone(), "malformed_token"),
        (
            "too short",
            good[..40].to_string(),
            req.clone(),
            "malformed_token",
        ),
        (
            "too long",
            "A".repeat(mediagate_signer::limits::MAX_TOKEN_LEN + 1),
            req.clone(),
            "malformed_token",
        ),
        (
            "truncated to an impossible length",
            good[..good.len() - (good.len() + 3) % 4].to_string(),
            req.clone(),
            "malformed_token",
        ),
        (
            "truncated tag (one byte short)",
            URL_SAFE_NO_PAD.encode(&good_raw[..good_raw.len() - 1]),
            req.clone(),
            "bad_signature",
        ),
        (
            "extended to an impossible length",
            format!("{good}{}", "A".repeat((5 - good.len() % 4) % 4)),
            req.clone(),
            "malformed_token",
        ),
        (
            "extended tag (one byte more)",
            URL_SAFE_NO_PAD.encode([&good_raw[..], &[0]].concat()),
            req.clone(),
            "bad_signature",
        ),
        (
            "padding appended",
            format!("{good}="),
            req.clone(),
            "malformed_token",
        ),
        (
            "standard base64 alphabet",
            tok_with_std.unwrap_or(std_alphabet),
            req.clone(),
            "malformed_token",
        ),
        (
            "non-zero trailing bits",
            trailing_bits,
            req.clone(),
            "malformed_token",
        ),
        (
            "whitespace inside",
            format!("{} {}", &good[..50], &good[50..]),
            req.clone(),
            "malformed_token",
        ),
        (
            "percent-encoded character",
            format!("%41{}", &good[1..]),
            req.clone(),
            "malformed_token",
        ),
        (
            "payload bit flipped (flags)",
            flip(2 + 5),
            req.clone(),
            "bad_signature",
        ),
        (
            "payload bit flipped (methods)",
            flip(2 + 5 + 1),
            req.clone(),
            "bad_signature",
        ),
        (
            "payload bit flipped (expiry)",
            flip(2 + 5 + 2 + 15),
            req.clone(),
            "bad_signature",
        ),
        (
            "payload bit flipped (path)",
            flip(good_payload.len() - 1),
            req.clone(),
            "bad_signature",
        ),
        (
            "tag first byte flipped",
            flip(good_payload.len()),
            req.clone(),
            "bad_signature",
        ),
        (
            "tag last byte flipped",
            flip(good_raw.len() - 1),
            req.clone(),
            "bad_signature",
        ),
        (
            "tag zeroed",
            URL_SAFE_NO_PAD.encode([good_payload, &[0u8; 32][..]].concat()),
            req.clone(),
            "bad_signature",
        ),
        (
            "tag of another key",
            URL_SAFE_NO_PAD.encode(
                [
                    good_payload,
                    &mac_with_secret(
                        &URL_SAFE_NO_PAD.decode(&v.keys[1].secret).unwrap(),
                        good_payload,
                    )[..],
                ]
                .concat(),
            ),
            req.clone(),
            "bad_signature",
        ),
        (
            "unsupported version",
            resign(&version2),
            req.clone(),
            "unsupported_version",
        ),
        ("unknown key id", unknown_key, req.clone(), "unknown_key"),
        (
            "signed payload with trailing byte",
            resign(&trailing),
            req.clone(),
            "malformed_token",
        ),
        (
            "signed payload with a dot-segment path",
            dot_path.clone(),
            get("/videos/a.mp4"),
            "malformed_token",
        ),
        (
            "signed payload with a dot-segment path, also expired",
            dot_path.clone(),
            Request {
                now: T0 + 86400 * 365,
                ..get("/videos/a.mp4")
            },
            "malformed_token",
        ),
        (
            "signed filename that is not UTF-8, also expired",
            latin1_filename,
            Request {
                now: T0 + 86400 * 365,
                ..get("/videos/a.mp4")
            },
            "malformed_token",
        ),
        (
            "signed prefix with an empty segment",
            empty_segment_prefix,
            get("/videos/bc/x.mp4"),
            "malformed_token",
        ),
        (
            "signed prefix with a backslash",
            backslash_prefix,
            get("/videos/abc/x.mp4"),
            "malformed_token",
        ),
        (
            "expired",
            good.clone(),
            Request {
                now: T0 + 631,
                ..req.clone()
            },
            "expired",
        ),
        (
            "expired long ago",
            good.clone(),
            Request {
                now: T0 + 86400 * 365,
                ..req.clone()
            },
            "expired",
        ),
        (
            "not yet valid (not-before)",
            nbf,
            req.clone(),
            "not_yet_valid",
        ),
        ("issued in the future", future, req.clone(), "not_yet_valid"),
        (
            "lifetime beyond the verifier's maximum",
            long_lifetime,
            req.clone(),
            "lifetime_too_long",
        ),
        ("another path", good.clone(), get("/videos/b.mp4"), "scope"),
        (
            "exact path is not a prefix",
            good.clone(),
            get("/videos/a.mp4/x"),
            "scope",
        ),
        (
            "prefix does not cover a sibling directory",
            prefix.clone(),
            get("/videos-private/a.mp4"),
            "scope",
        ),
        (
            "prefix does not cover its parent",
            prefix.clone(),
            get("/secret.txt"),
            "scope",
        ),
        (
            "method not granted (PUT)",
            good.clone(),
            Request {
                method: "PUT".into(),
                ..req.clone()
            },
            "method",
        ),
        (
            "HEAD not granted by a GET-only link",
            get_only,
            Request {
                method: "HEAD".into(),
                ..req.clone()
            },
            "method",
        ),
        (
            "client address outside the bound network",
            bound.clone(),
            Request {
                client_ip: Some("203.0.114.1".into()),
                ..req.clone()
            },
            "ip",
        ),
        (
            "IPv4 client outside an IPv4-mapped IPv6 network",
            mapped.clone(),
            Request {
                client_ip: Some("203.0.114.1".into()),
                ..req.clone()
            },
            "ip",
        ),
        (
            "IPv6 client outside an IPv4-mapped IPv6 network",
            mapped,
            Request {
                client_ip: Some("2001:db8::1".into()),
                ..req.clone()
            },
            "ip",
        ),
        (
            "client address unknown for a bound link",
            bound,
            req.clone(),
            "ip",
        ),
        (
            "download with an upload-only link",
            jpeg_upload.clone(),
            get("/uploads/a.jpg"),
            "method",
        ),
        (
            "upload larger than the signed maximum",
            jpeg_upload.clone(),
            put("/uploads/a.jpg", Some("image/jpeg"), &[0xff; 1025]),
            "too_large",
        ),
        (
            "upload without the signed content type",
            jpeg_upload.clone(),
            put("/uploads/a.jpg", None, JPEG),
            "content_type",
        ),
        (
            "upload of another content type",
            jpeg_upload.clone(),
            put("/uploads/a.jpg", Some("image/png"), JPEG),
            "content_type",
        ),
        (
            "upload whose bytes are not the signed digest",
            jpeg_upload.clone(),
            put("/uploads/a.jpg", Some("image/jpeg"), b"\xff\xd8\xff\xe1"),
            "digest_mismatch",
        ),
        (
            "signed upload field with no claim",
            no_upload_claims,
            put("/uploads/a.bin", None, b"abc"),
            "malformed_token",
        ),
        (
            "signed upload field with an unknown flag",
            unknown_upload_flag,
            put("/uploads/a.bin", None, b"abc"),
            "malformed_token",
        ),
        (
            "signed upload claims on a link without PUT",
            upload_without_put,
            get("/uploads/a.bin"),
            "malformed_token",
        ),
        (
            "signed replace below a prefix",
            replace_below_prefix,
            put("/uploads/a.bin", None, b"abc"),
            "malformed_token",
        ),
    ];
    let _ = good_tag;
    for (name, token, request, error) in invalid {
        v.invalid.push(Invalid {
            name: name.into(),
            token,
            request,
            error: error.into(),
        });
    }
    let exact = |path: &str| ClaimsIn {
        scope: "exact".into(),
        ..base(path)
    };
    let prefix = |path: &str| ClaimsIn {
        scope: "prefix".into(),
        ..base(path)
    };
    for (name, claims, error) in [
        (
            "an exact link to a directory",
            exact("/files/"),
            "prefix_not_asked",
        ),
        ("an exact link to the root", exact("/"), "prefix_not_asked"),
        (
            "a prefix without its trailing slash",
            prefix("/videos/show"),
            "prefix_without_slash",
        ),
        (
            "a path below the path-form marker",
            exact("/_mg/t/a.mp4"),
            "reserved_path",
        ),
        (
            "a prefix below the path-form marker",
            prefix("/_mg/"),
            "reserved_path",
        ),
        ("a dot-dot segment", exact("/a/../b"), "bad_path"),
        ("an empty segment", exact("/a//b"), "bad_path"),
        ("a backslash", exact("/a\\b"), "bad_path"),
        (
            "upload limits on a link without PUT",
            ClaimsIn {
                max_size: Some(1),
                ..exact("/a.bin")
            },
            "upload_without_put",
        ),
        (
            "replace on a prefix upload link",
            ClaimsIn {
                replace: true,
                methods: vec!["PUT".into()],
                ..prefix("/uploads/")
            },
            "replace_below_prefix",
        ),
    ] {
        v.unsignable.push(Unsignable {
            name: name.into(),
            claims,
            error: error.into(),
        });
    }
    let text = serde_json::to_string_pretty(&v).unwrap();
    std::fs::write(VECTORS, text + "\n").unwrap();
}
