//! The `serve` config file (`--config`), and how its settings of the HTTP
//! side (token transports, caching, where the client address comes from,
//! cross-origin reads) become settings of the verifier's builder. A bad
//! value is an error that names the setting.

use std::path::PathBuf;

use anyhow::{Result, anyhow, bail};
use ipnet::IpNet;
use mediagate::verifier::{Builder, CachePolicy, ClientIpSource, Cors, Tls, Transports, Uploads};

/// The `serve` config file; every key is optional (README lists them).
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    pub keys: Option<PathBuf>,
    pub revocations: Option<PathBuf>,
    /// Revocations from Redis: its URL, the key, how stale the rules may
    /// get while it is out of reach, and what happens past that.
    pub redis: Option<String>,
    /// The auth-only endpoint for a proxy that serves the files (nginx
    /// `auth_request`, Caddy `forward_auth`), and the proxies allowed to
    /// ask it (default: this machine).
    pub auth_path: Option<String>,
    pub auth_proxies: Option<Vec<String>>,
    /// HTTPS: its address and certificates.
    pub tls: Option<TlsConfig>,
    /// Uploads (`PUT` with an upload link): on when the table is there.
    pub uploads: Option<UploadsConfig>,
    /// Where Prometheus metrics are served (`127.0.0.1:9898`; default off).
    pub metrics_listen: Option<String>,
    /// X-Accel-Redirect mode: nginx's internal location that serves the
    /// files mediagate grants (`/_protected`).
    pub accel_redirect: Option<String>,
    pub redis_key: Option<String>,
    pub revocations_max_staleness: Option<String>,
    pub revocations_when_stale: Option<String>,
    pub root: Option<PathBuf>,
    /// Checked where it is used, for a message that names it.
    pub listen: Option<String>,
    pub mount: Option<String>,
    /// Join a server already listening on `listen` (the handover).
    pub reuse_port: Option<bool>,
    pub health_path: Option<String>,
    pub max_connections: Option<usize>,
    pub workers: Option<usize>,
    pub chunk_size: Option<usize>,
    pub sendfile: Option<bool>,
    pub http2: Option<bool>,
    /// How long a cached file is served before it is checked again: a
    /// duration, or "0s" for every request.
    pub revalidate_after: Option<String>,
    /// The same in milliseconds (the older spelling).
    pub revalidate_after_ms: Option<u64>,
    pub max_open_files: Option<usize>,
    pub close_unused_after: Option<String>,
    pub header_read_timeout: Option<String>,
    pub keep_alive_timeout: Option<String>,
    pub send_timeout: Option<String>,
    pub window_timeout: Option<String>,
    /// TCP load balancers (addresses or networks) that send the PROXY
    /// protocol.
    pub proxy_protocol: Option<Vec<String>>,
    pub leeway: Option<String>,
    pub max_ttl: Option<String>,
    /// Any of "query", "cookie", "path" (default all three).
    transports: Option<Vec<String>>,
    /// A duration, or "no-store" (default 1h).
    cache_max_age: Option<String>,
    /// Proxies (addresses or networks) whose client-address header is
    /// believed.
    trusted_proxies: Option<Vec<String>>,
    /// The header they put the client's address in (default
    /// x-forwarded-for).
    client_ip_header: Option<String>,
    /// Origins whose scripts may read responses, or ["*"] for any.
    cors_origins: Option<Vec<String>>,
    /// Lets the listed origins send cookies.
    cors_credentials: Option<bool>,
}

/// The `[tls]` table: HTTPS on `listen`, with the certificates listed
/// (the first one for clients that name no host, or one none covers).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsConfig {
    pub listen: String,
    pub certificates: Vec<CertificateFiles>,
}

/// The `[uploads]` table: uploads on, within these limits (each optional;
/// the defaults are `mediagate_verifier::Uploads`').
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct UploadsConfig {
    /// The largest upload: bytes, or a size like "50M" or "2G".
    max_size: Option<Size>,
    max_concurrent: Option<usize>,
    /// How long a body may send nothing: a duration.
    body_timeout: Option<String>,
    /// Space to leave free on the file system: bytes, or a size.
    min_free: Option<Size>,
    /// Octal, as a string: "0640".
    file_mode: Option<String>,
    create_dirs: Option<bool>,
    dir_mode: Option<String>,
    fsync: Option<bool>,
}

/// A number of bytes, or a size with a unit ("50M").
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Size {
    Bytes(u64),
    Text(String),
}

impl Size {
    fn bytes(&self, key: &str) -> Result<u64> {
        match self {
            Size::Bytes(n) => Ok(*n),
            Size::Text(t) => crate::cli::parse_size(t).map_err(|e| anyhow!("uploads.{key}: {e}")),
        }
    }
}

impl UploadsConfig {
    /// The verifier's upload settings.
    pub(crate) fn settings(&self) -> Result<Uploads> {
        let mut u = Uploads::default();
        if let Some(s) = &self.max_size {
            u.max_size = s.bytes("max_size")?;
        }
        if let Some(n) = self.max_concurrent {
            if n == 0 {
                bail!("uploads.max_concurrent: must be at least 1");
            }
            u.max_concurrent = n;
        }
        if let Some(t) = &self.body_timeout {
            u.body_timeout = crate::cli::parse_duration(t)
                .map_err(|e| anyhow!("uploads.body_timeout: {e}"))?
                .try_into()
                .map_err(|_| anyhow!("uploads.body_timeout: must be positive"))?;
        }
        if let Some(s) = &self.min_free {
            u.min_free_bytes = s.bytes("min_free")?;
        }
        if let Some(m) = &self.file_mode {
            u.file_mode = mode("file_mode", m)?;
            if u.file_mode & 0o111 != 0 {
                bail!("uploads.file_mode: uploaded files are never executable (got {m:?})");
            }
        }
        if let Some(on) = self.create_dirs {
            u.create_dirs = on;
        }
        if let Some(m) = &self.dir_mode {
            u.dir_mode = mode("dir_mode", m)?;
        }
        if let Some(on) = self.fsync {
            u.fsync = on;
        }
        Ok(u)
    }
}

/// Permission bits written in octal ("0640"), at most 0777.
fn mode(key: &str, text: &str) -> Result<u32> {
    u32::from_str_radix(text.trim(), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| anyhow!("uploads.{key}: {text:?} is not permission bits like \"0640\""))
}

/// One certificate: the chain's PEM file and its key's.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CertificateFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsConfig {
    /// The listener's address and its certificates, read and checked.
    pub(crate) fn load(&self, http2: bool) -> Result<(std::net::SocketAddr, Tls)> {
        let addr =
            crate::cli::parse_listen(&self.listen).map_err(|e| anyhow!("tls.listen: {e}"))?;
        let mut pairs = self.certificates.iter();
        let first = pairs
            .next()
            .ok_or_else(|| anyhow!("tls.certificates: list at least one cert and key"))?;
        let mut b = Tls::builder()
            .http2(http2)
            .certificate(&first.cert, &first.key);
        for pair in pairs {
            b = b.certificate(&pair.cert, &pair.key);
        }
        let tls = b.build().map_err(|e| anyhow!("tls: {e}"))?;
        Ok((addr, tls))
    }
}

impl FileConfig {
    /// Applies the HTTP-side settings given to `b`.
    pub(crate) fn apply_http(&self, mut b: Builder) -> Result<Builder> {
        if let Some(names) = &self.transports {
            b = b.transports(transports(names)?);
        }
        if let Some(age) = &self.cache_max_age {
            b = b.cache_policy(cache_policy(age)?);
        }
        match (&self.trusted_proxies, &self.client_ip_header) {
            (Some(proxies), header) => b = b.client_ip(client_ip(proxies, header.as_deref())?),
            (None, Some(_)) => bail!("client_ip_header: needs trusted_proxies to believe it from"),
            (None, None) => {}
        }
        if let Some(origins) = &self.cors_origins {
            b = b.cors(cors(
                origins.clone(),
                self.cors_credentials.unwrap_or(false),
            )?);
        } else if self.cors_credentials.is_some() {
            bail!("cors_credentials: needs cors_origins");
        }
        Ok(b)
    }
}

fn transports(names: &[String]) -> Result<Transports> {
    let mut t = Transports::default();
    (t.query, t.cookie, t.path) = (false, false, false);
    for name in names {
        let on = match name.as_str() {
            "query" => &mut t.query,
            "cookie" => &mut t.cookie,
            "path" => &mut t.path,
            _ => bail!("transports: unknown transport {name:?} (query, cookie or path)"),
        };
        *on = true;
    }
    if !(t.query || t.cookie || t.path) {
        bail!("transports: name at least one of query, cookie, path");
    }
    Ok(t)
}

fn cache_policy(age: &str) -> Result<CachePolicy> {
    if age == "no-store" {
        return Ok(CachePolicy::NoStore);
    }
    let max_age = crate::cli::parse_duration(age).map_err(|e| anyhow!("cache_max_age: {e}"))?;
    Ok(CachePolicy::Private { max_age })
}

/// A list of addresses or networks (`10.0.0.0/8`, `192.0.2.7`), for the
/// setting `key`.
pub(crate) fn networks(key: &str, list: &[String]) -> Result<Vec<IpNet>> {
    list.iter()
        .map(|p| {
            p.parse::<IpNet>()
                .or_else(|_| p.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| anyhow!("{key}: {p:?} is not an address or network"))
        })
        .collect()
}

fn client_ip(proxies: &[String], header: Option<&str>) -> Result<ClientIpSource> {
    let trusted_proxies = networks("trusted_proxies", proxies)?;
    let name = header.unwrap_or("x-forwarded-for");
    let header = http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
        .map_err(|_| anyhow!("client_ip_header: {name:?} is not a header name"))?;
    Ok(ClientIpSource::TrustedHeader {
        header,
        trusted_proxies,
    })
}

fn cors(origins: Vec<String>, credentials: bool) -> Result<Cors> {
    if origins.iter().any(|o| o == "*") {
        if origins.len() > 1 {
            bail!("cors_origins: \"*\" (any origin) stands alone");
        }
        if credentials {
            bail!("cors_credentials: only with listed cors_origins, never with \"*\"");
        }
        return Ok(Cors::AnyOrigin);
    }
    if origins.is_empty() {
        return Ok(Cors::Off);
    }
    Ok(Cors::Origins {
        origins,
        credentials,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_readme_example_is_a_config_that_serve_accepts() {
        let readme = include_str!("../README.md");
        // The serve config's block (another shows Cargo.toml lines).
        let example = readme
            .split("```toml\n")
            .skip(1)
            .filter_map(|rest| rest.split("```").next())
            .find(|block| block.contains("listen = "))
            .unwrap();
        let file: FileConfig = toml::from_str(example).unwrap();
        for duration in [
            &file.header_read_timeout,
            &file.keep_alive_timeout,
            &file.send_timeout,
            &file.window_timeout,
            &file.revalidate_after,
            &file.leeway,
            &file.max_ttl,
            &file.close_unused_after,
        ] {
            let duration = duration.as_deref().unwrap();
            assert!(crate::cli::parse_duration(duration).is_ok(), "{duration}");
        }
        networks("proxy_protocol", file.proxy_protocol.as_deref().unwrap()).unwrap();
        let root = tempfile::tempdir().unwrap();
        let keyring =
            mediagate::signer::Keyring::new(mediagate::signer::Key::new("k", &[1; 32]).unwrap());
        let builder = mediagate::verifier::MediaGate::builder(root.path(), keyring);
        file.apply_http(builder).unwrap().build().unwrap();
    }

    #[test]
    fn transports_by_name() {
        let t = transports(&strings(&["path", "query"])).unwrap();
        assert_eq!((t.query, t.cookie, t.path), (true, false, true));
        for bad in [&["cookies"][..], &[]] {
            let err = transports(&strings(bad)).unwrap_err().to_string();
            assert!(err.starts_with("transports: "), "{err}");
        }
    }

    #[test]
    fn cache_policies() {
        assert_eq!(cache_policy("no-store").unwrap(), CachePolicy::NoStore);
        assert_eq!(
            cache_policy("10m").unwrap(),
            CachePolicy::Private {
                max_age: mediagate::signer::time::Duration::minutes(10)
            }
        );
        assert!(cache_policy("0s").is_err());
    }

    #[test]
    fn proxies_and_their_header() {
        let source = client_ip(&strings(&["10.0.0.0/8", "192.0.2.7"]), Some("X-Real-IP")).unwrap();
        assert_eq!(
            source,
            ClientIpSource::TrustedHeader {
                header: http::HeaderName::from_static("x-real-ip"),
                trusted_proxies: vec![
                    "10.0.0.0/8".parse().unwrap(),
                    "192.0.2.7/32".parse().unwrap()
                ],
            }
        );
        assert!(client_ip(&strings(&["10.0.0.0/33"]), None).is_err());
        assert!(client_ip(&strings(&["10.0.0.1"]), Some("bad header")).is_err());
    }

    #[test]
    fn cors_settings() {
        assert_eq!(cors(strings(&["*"]), false).unwrap(), Cors::AnyOrigin);
        assert_eq!(cors(vec![], false).unwrap(), Cors::Off);
        assert_eq!(
            cors(strings(&["https://app.example"]), true).unwrap(),
            Cors::Origins {
                origins: strings(&["https://app.example"]),
                credentials: true
            }
        );
        assert!(cors(strings(&["*"]), true).is_err());
        assert!(cors(strings(&["*", "https://app.example"]), false).is_err());
    }
}
