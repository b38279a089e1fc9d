//! A backend minting one user's links: an exact file, a prefix link for an
//! HLS folder, and an attachment download.
//!
//! Run: `cargo run --example mint`

use mediagate::signer::time::Duration;
use mediagate::signer::{Key, Keyring, Signer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // In production: Keyring::from_toml(&std::fs::read_to_string("keys.toml")?)
    let keyring = Keyring::new(Key::generate("example")?);
    let signer = Signer::new(keyring).default_ttl(Duration::minutes(10));
    let base = "https://media.example.com/media";
    let user = "42";

    let photo = signer.link(user, "/photos/2026/beach.jpg").sign()?;
    println!("photo:      {}", photo.url(base));

    // One prefix link serves the playlist and every segment below it; in path
    // form, the playlist's relative segment URLs carry the token too.
    let show = signer
        .prefix(user, "/videos/show-1/")
        .ttl(Duration::hours(2))
        .sign()?;
    println!(
        "playlist:   {}",
        show.path_form_for(base, "/videos/show-1/master.m3u8")?
    );

    let invoice = signer
        .link(user, "/invoices/2026/0042.pdf")
        .attachment("Rechnung März 0042.pdf")
        .sign()?;
    println!("download:   {}", invoice.url(base));
    println!(
        "cookie:     Set-Cookie: {}",
        invoice.set_cookie("/media", mediagate::signer::time::OffsetDateTime::now_utc())
    );
    Ok(())
}
