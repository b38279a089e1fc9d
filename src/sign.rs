//! `mediagate sign`: a signed link from the command line.

use anyhow::{Result, anyhow, bail};
use mediagate::signer::Signer;
use mediagate::signer::time::OffsetDateTime;

use crate::cli::{Form, SignArgs};
use crate::keys::load_keys;
use crate::warn;

/// Signs one link from the options and prints it in the chosen form.
pub(crate) fn sign(args: &SignArgs) -> Result<()> {
    let ring = load_keys(args.keys.keys.as_deref())?;
    let signer = Signer::new(ring);
    let path = if args.prefix && !args.path.ends_with('/') {
        format!("{}/", args.path)
    } else {
        args.path.clone()
    };
    let start = if args.prefix {
        signer.prefix(&args.user, &path)
    } else {
        signer.link(&args.user, &path)
    };
    let mut b = start.ttl(args.ttl).methods(args.methods);
    if let Some(at) = args.not_before {
        b = b.not_before(at);
    }
    if let Some(name) = &args.attachment {
        b = b.attachment(name);
    }
    if let Some(name) = &args.inline {
        b = b.inline(name);
    }
    if let Some(ct) = &args.content_type {
        b = b.content_type(ct);
    }
    if let Some(ip) = &args.ip {
        let net = match ip.parse::<ipnet::IpNet>() {
            Ok(net) => net,
            Err(_) => ip
                .parse::<std::net::IpAddr>()
                .map(ipnet::IpNet::from)
                .map_err(|_| anyhow!("--ip {ip:?} is not an address or CIDR network"))?,
        };
        b = b.client_net(net);
    }
    if let Some(generation) = args.generation {
        b = b.generation(generation);
    }
    if let Some(max) = args.max_size {
        b = b.max_size(max);
    }
    let digest = match (&args.sha256, &args.sha256_of) {
        (Some(d), _) => Some(*d),
        (None, Some(file)) => Some(sha256_of(file)?),
        (None, None) => None,
    };
    if let Some(d) = digest {
        b = b.sha256(d);
    }
    b = b.replace(args.replace);
    let base_url = args.base_url.as_str();
    let mount = mount_of(base_url)?;
    if args.domain.is_some() && !matches!(args.form, Form::Cookie) {
        bail!("--domain is for --form cookie");
    }
    let link = b.sign()?;
    // The file a player opens, below a prefix link's directory.
    let entry = match &args.entry {
        Some(entry) => {
            let file = format!("{}{}", link.path(), entry.trim_start_matches('/'));
            Some(file)
        }
        None => None,
    };
    match args.form {
        Form::Query => {
            if args.prefix {
                warn(format_args!(
                    "warning: a query-form prefix link is not carried to the relative \
                     URLs inside a playlist (segments would be fetched without it); for \
                     HLS or DASH use --form path or --form cookie"
                ));
            }
            match &entry {
                Some(file) => say!("{}", link.url_for(base_url, file)?)?,
                None => say!("{}", link.url(base_url))?,
            }
        }
        Form::Path => match &entry {
            Some(file) => say!("{}", link.path_form_for(base_url, file)?)?,
            None => {
                if args.prefix {
                    warn(format_args!(
                        "note: this URL names the directory, which is no file (a 404 if \
                         fetched); add --entry FILE (e.g. --entry master.m3u8) for the URL \
                         a player opens"
                    ));
                }
                say!("{}", link.path_form(base_url))?
            }
        },
        Form::Cookie => {
            let now = OffsetDateTime::now_utc();
            let cookie = match &args.domain {
                Some(domain) => link.set_cookie_for_domain(mount, domain, now)?,
                None => link.set_cookie(mount, now),
            };
            say!("Set-Cookie: {cookie}")?;
            if let Some(file) = &entry {
                // The URL to open once the browser holds the cookie.
                let plain = mediagate::signer::encode_path(file);
                say!("{}{plain}", base_url.trim_end_matches('/'))?;
            }
        }
    }
    Ok(())
}

/// The SHA-256 of the file at `path`, read in pieces.
fn sha256_of(path: &std::path::Path) -> Result<[u8; 32]> {
    use sha2::Digest as _;
    use std::io::Read as _;
    let mut file =
        std::fs::File::open(path).map_err(|e| anyhow!("--sha256-of {}: {e}", path.display()))?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| anyhow!("--sha256-of {}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().into())
}

/// The mount path of a `--base-url`: the whole of an absolute path
/// (`/media`), the path of an `http(s)://host/path` URL, or "" for none.
/// Anything else (a query, a fragment, another scheme, a relative path,
/// spaces or control characters) would make a broken link and is refused.
fn mount_of(base_url: &str) -> Result<&str> {
    let refuse = || {
        anyhow!(
            "--base-url {base_url:?} must be an http(s) URL or an absolute path, \
             without query or fragment"
        )
    };
    if base_url
        .bytes()
        .any(|b| matches!(b, b'?' | b'#') || !b.is_ascii_graphic())
    {
        return Err(refuse());
    }
    // "//host" is a URL without a scheme, not a path.
    if base_url.is_empty() || (base_url.starts_with('/') && !base_url.starts_with("//")) {
        return Ok(base_url);
    }
    let rest = base_url
        .strip_prefix("https://")
        .or_else(|| base_url.strip_prefix("http://"))
        .ok_or_else(refuse)?;
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if host.is_empty() {
        return Err(refuse());
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_give_their_mount_or_are_refused() {
        for (base, mount) in [
            ("", ""),
            ("/media", "/media"),
            ("/media/", "/media/"),
            ("https://media.example.com", ""),
            ("https://media.example.com/media", "/media"),
            ("http://127.0.0.1:8080/a/b", "/a/b"),
        ] {
            assert_eq!(mount_of(base).ok(), Some(mount), "{base:?}");
        }
        for bad in [
            "media",
            "//evil.example/media",
            "javascript:alert(1)",
            "ftp://host/media",
            "https://",
            "https:///media",
            "https://x/y?z=1",
            "https://x/y#frag",
            "/media files",
            "/médias",
        ] {
            assert!(mount_of(bad).is_err(), "{bad:?}");
        }
    }
}
