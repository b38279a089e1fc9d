//! `mediagate demo`: sample media, an ephemeral key, and links to try.

use std::fmt::Write as _;
use std::net::SocketAddr;

use anyhow::{Context, Result};
use mediagate::signer::time::{Duration, OffsetDateTime};
use mediagate::signer::{Key, Keyring, Signer};
use mediagate::verifier::{CacheLimits, MediaGate, ServerConfig};

/// A 1x1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

const PLAYLIST: &str = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:0\n\
#EXTINF:4.0,\nseg-000.ts\n#EXTINF:4.0,\nseg-001.ts\n#EXTINF:4.0,\nseg-002.ts\n#EXT-X-ENDLIST\n";

pub(crate) fn run(listen: SocketAddr) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("mediagate-demo-")
        .tempdir()?;
    let root = &dir.path().join("media");
    std::fs::create_dir_all(root.join("videos/show"))?;
    std::fs::create_dir_all(root.join("docs"))?;
    std::fs::write(
        root.join("hello.txt"),
        "Hello from mediagate: this file is private.\n",
    )?;
    std::fs::write(root.join("pixel.png"), PNG)?;
    std::fs::write(root.join("docs/report.pdf"), "%PDF-1.4\n% demo\n")?;
    std::fs::write(root.join("videos/show/master.m3u8"), PLAYLIST)?;
    for i in 0..3u8 {
        std::fs::write(
            root.join(format!("videos/show/seg-00{i}.ts")),
            vec![0x47 + i; 188 * 64],
        )?;
    }

    let keyring = Keyring::new(Key::generate("demo")?);
    // Beside the media, so that `inspect --keys` can check a signature;
    // removed with the directory when the demo stops.
    let keys_file = dir.path().join("keys.toml");
    crate::keys::write_private(&keys_file, &keyring.to_toml())?;
    let mut config = ServerConfig::default();
    let mut limits = CacheLimits::default();
    mediagate::verifier::fit_open_files(&mut config, &mut limits);
    let gate = MediaGate::builder(root, keyring.clone())
        .mount("/media")
        .cache_limits(limits)
        .build()?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let bound = mediagate::verifier::Workers::bind(listen, threads)
        .with_context(|| format!("cannot listen on {listen} (try --listen 127.0.0.1:0)"))?;
    let base = format!("http://{}/media", bound.local_addr());
    let signer = Signer::new(keyring);
    let ttl = Duration::minutes(30);

    let valid = signer.link("demo-user", "/hello.txt").ttl(ttl).sign()?;
    let image = signer.link("demo-user", "/pixel.png").ttl(ttl).sign()?;
    let show = signer
        .prefix("demo-user", "/videos/show/")
        .ttl(ttl)
        .sign()?;
    let pdf = signer
        .link("demo-user", "/docs/report.pdf")
        .ttl(ttl)
        .attachment("Quarterly report.pdf")
        .sign()?;
    let past = OffsetDateTime::now_utc() - Duration::hours(1);
    let expired = signer
        .link("demo-user", "/hello.txt")
        .issued_at(past)
        .ttl(Duration::minutes(5))
        .sign()?;
    let mut tampered = valid.url(&base);
    let flip = tampered.len() - 5;
    let c = if tampered.as_bytes()[flip] == b'A' {
        "B"
    } else {
        "A"
    };
    tampered.replace_range(flip..flip + 1, c);

    // Written at once, and not fatal if stdout is gone (`demo | head`):
    // the server is the point.
    let mut text = String::new();
    writeln!(
        text,
        "mediagate demo: serving {} at {base}\n",
        root.display()
    )?;
    writeln!(text, "valid link:\n  curl -i '{}'\n", valid.url(&base))?;
    writeln!(text, "image:\n  curl -sI '{}'\n", image.url(&base))?;
    writeln!(
        text,
        "HLS prefix link (one token for the playlist and its segments):\n  curl -i '{}'\n  curl -sI '{}'\n",
        show.path_form_for(&base, "/videos/show/master.m3u8")?,
        show.path_form_for(&base, "/videos/show/seg-001.ts")?
    )?;
    writeln!(
        text,
        "download with a filename:\n  curl -sI '{}'\n",
        pdf.url(&base)
    )?;
    writeln!(
        text,
        "range request:\n  curl -i -H 'Range: bytes=0-4' '{}'\n",
        valid.url(&base)
    )?;
    writeln!(
        text,
        "expired link (403 expired):\n  curl -i '{}'\n",
        expired.url(&base)
    )?;
    writeln!(
        text,
        "tampered link (403 bad_signature):\n  curl -i '{tampered}'\n"
    )?;
    writeln!(
        text,
        "wrong file with a valid token (403 scope):\n  curl -i '{base}/pixel.png?{}'\n",
        valid.query()
    )?;
    writeln!(
        text,
        "explain a link (its claims; with the demo's keys, whether it is valid):\n  \
         cargo run --release -- inspect '{}' --keys {}\n",
        expired.url(&base),
        keys_file.display()
    )?;
    writeln!(text, "Press Ctrl-C to stop.")?;
    let _ = say!("{}", text.trim_end());
    crate::serve::start_workers(gate, bound, config)
}
