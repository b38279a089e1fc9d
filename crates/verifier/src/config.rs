//! Configuration of the service: [`Builder`] and its defaults.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use ipnet::IpNet;
use mediagate_signer::time::Duration;
use mediagate_signer::{DEFAULT_LEEWAY, DEFAULT_MAX_TTL, Keyring};

use crate::authorize::ClientIpSource;
use crate::cors::{Cors, CorsRules, InvalidOrigin};
use crate::files::cache::CacheLimits;
use crate::files::fs::{MediaRoot, RootError};
use crate::keys::KeyringHandle;
use crate::response::CachePolicy;
use crate::revocation::RevocationCheck;
use crate::token::Transports;
use crate::upload::{Receiving, Uploads};

/// The chunk size files are read and sent in where the connection does
/// not send them with `sendfile` (HTTP/2, an embedding server, or
/// [`ServerConfig::sendfile`](crate::ServerConfig::sendfile) off), unless
/// configured otherwise.
///
/// At most two chunks per response are alive, so this bounds a download's
/// memory; larger chunks trade memory for throughput (BENCHMARKS.md,
/// "Chunk size").
pub const DEFAULT_CHUNK_SIZE: usize = 64 * 1024;

/// Why a service cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The media root is unusable.
    #[error(transparent)]
    Root(#[from] RootError),
    /// The mount prefix is not `/` or an absolute path without a trailing
    /// slash, `.`/`..` segments or characters that need escaping.
    #[error("mount prefix must be '/' or like '/media' (got {0:?})")]
    Mount(String),
    /// The auth endpoint's path is not an absolute path.
    #[error("auth endpoint path must start with '/' (got {0:?})")]
    AuthPath(String),
    /// The health path is not an absolute path.
    #[error("health path must start with '/' (got {0:?})")]
    HealthPath(String),
    /// The `X-Accel-Redirect` prefix is not like `/_protected`.
    #[error(
        "accel_redirect must be an absolute path like '/_protected' \
         (no '?', '#', spaces or control characters; got {0:?})"
    )]
    AccelRedirect(String),
    /// The chunk size is outside 4 KiB..=8 MiB.
    #[error("chunk size must be between 4 KiB and 8 MiB")]
    ChunkSize,
    /// No token transport is enabled.
    #[error("at least one token transport must be enabled")]
    NoTransport,
    /// An origin given for cross-origin reads is not an origin.
    #[error(transparent)]
    CorsOrigin(#[from] InvalidOrigin),
}

/// The settled configuration shared by every request.
#[derive(Debug)]
pub(crate) struct Config {
    /// Replaced whole by [`MediaGate::reopen_root`](crate::MediaGate::reopen_root).
    pub root: ArcSwap<MediaRoot>,
    /// The root as configured (maybe a symlink), opened again on a reopen.
    pub root_source: PathBuf,
    pub keys: KeyringHandle,
    /// Without trailing slash; empty for `/`.
    pub mount: String,
    pub transports: Transports,
    pub cache_policy: CachePolicy,
    pub client_ip: ClientIpSource,
    pub cors: CorsRules,
    pub health_path: Option<String>,
    /// The auth-only endpoint, and the proxies allowed to ask it.
    pub auth: Option<(String, Vec<IpNet>)>,
    /// `X-Accel-Redirect` mode: the internal location's prefix.
    pub accel_redirect: Option<String>,
    pub chunk_size: usize,
    pub cache_limits: CacheLimits,
    pub revocations: Option<Arc<dyn RevocationCheck>>,
    /// `None`: uploads are off (405).
    pub uploads: Option<Receiving>,
    /// Counts completed uploads, for the file caches (see `FileCache`).
    pub written: Arc<std::sync::atomic::AtomicU64>,
}

/// Builds a [`MediaGate`](crate::MediaGate). Every setting has a default,
/// given with it.
#[derive(Debug, Clone)]
#[must_use]
pub struct Builder {
    root: PathBuf,
    keyring: Keyring,
    mount: String,
    transports: Transports,
    leeway: Duration,
    max_ttl: Duration,
    cache: CachePolicy,
    client_ip: ClientIpSource,
    cors: Cors,
    health_path: Option<String>,
    auth: Option<(String, Vec<IpNet>)>,
    accel_redirect: Option<String>,
    chunk_size: usize,
    cache_limits: CacheLimits,
    revocations: Option<Arc<dyn RevocationCheck>>,
    uploads: Option<Uploads>,
}

impl Builder {
    pub(crate) fn new(root: PathBuf, keyring: Keyring) -> Self {
        Builder {
            root,
            keyring,
            mount: "/".into(),
            transports: Transports::default(),
            leeway: DEFAULT_LEEWAY,
            max_ttl: DEFAULT_MAX_TTL,
            cache: CachePolicy::default(),
            client_ip: ClientIpSource::default(),
            cors: Cors::Off,
            health_path: Some("/healthz".into()),
            auth: None,
            accel_redirect: None,
            chunk_size: DEFAULT_CHUNK_SIZE,
            cache_limits: CacheLimits::default(),
            revocations: None,
            uploads: None,
        }
    }

    /// The URL prefix media is served under, like Django's `MEDIA_URL`
    /// (default `/`): with `/media`, `/media/a.mp4` serves `<root>/a.mp4`.
    pub fn mount(mut self, prefix: &str) -> Self {
        self.mount = prefix.to_owned();
        self
    }

    /// The token transports accepted (default: all three).
    pub fn transports(mut self, transports: Transports) -> Self {
        self.transports = transports;
        self
    }

    /// Clock skew tolerated (default 30 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The longest link lifetime accepted (default 7 days).
    pub fn max_ttl(mut self, max_ttl: Duration) -> Self {
        self.max_ttl = max_ttl;
        self
    }

    /// Caching of granted responses (default private, max-age ≤ 1 hour and
    /// ≤ the link's remaining lifetime).
    pub fn cache_policy(mut self, policy: CachePolicy) -> Self {
        self.cache = policy;
        self
    }

    /// Where the client address comes from (default: the TCP peer).
    pub fn client_ip(mut self, source: ClientIpSource) -> Self {
        self.client_ip = source;
        self
    }

    /// Which web origins' scripts may read the responses (default
    /// [`Cors::Off`]: none but the server's own). Needed when a script
    /// player on another origin (hls.js, dash.js) plays the media.
    pub fn cors(mut self, cors: Cors) -> Self {
        self.cors = cors;
        self
    }

    /// The unsigned health-check path (default `/healthz`, outside the
    /// mount); `None` turns it off.
    pub fn health_path(mut self, path: Option<&str>) -> Self {
        self.health_path = path.map(str::to_owned);
        self
    }

    /// Answers link checks for a proxy that serves the files itself (nginx
    /// `auth_request`, Caddy `forward_auth`, Traefik `ForwardAuth`, Envoy
    /// `ext_authz`): a request to `path` (outside the mount) from one of
    /// `proxies` is taken as a check of the request named by its
    /// `X-Original-URI` and `X-Original-Method` (nginx's convention) or
    /// `X-Forwarded-Uri` and `X-Forwarded-Method` (Caddy's and Traefik's);
    /// a request below `path` from one of them (Envoy, with `path` as its
    /// `path_prefix`) as a check of its own method, the path after `path`,
    /// and its query; each with its own `Cookie` and client headers. A granted link gets 204 with the user in
    /// `mediagate-user`, the link's id in `mediagate-link-id` and its
    /// expiry (Unix seconds) in `mediagate-expires`; a refusal 403 with its reason in
    /// `mediagate-reason` (proxies treat other codes as errors). From any
    /// other peer the path is not found. Default: off.
    pub fn auth_endpoint(mut self, path: &str, proxies: Vec<IpNet>) -> Self {
        self.auth = Some((path.to_owned(), proxies));
        self
    }

    /// `X-Accel-Redirect` mode, for nginx in front: a granted request is
    /// answered with no body and `X-Accel-Redirect: <prefix><path>`, and
    /// nginx serves the file from its `internal` location at `prefix`
    /// (with its own Range and conditional handling). The answer carries
    /// the `Content-Type`, `Content-Disposition` and `Cache-Control` a
    /// direct answer would, which nginx keeps. Refusals are as in direct
    /// mode; the media root is not read. Default: off (files are served).
    pub fn accel_redirect(mut self, prefix: &str) -> Self {
        self.accel_redirect = Some(prefix.to_owned());
        self
    }

    /// The size of the chunks files are read and sent in when not sent with
    /// `sendfile` (default [`DEFAULT_CHUNK_SIZE`], 64 KiB). The bundled
    /// server's HTTP/2 connections read at most 16 KiB at a time, whatever
    /// this says, to bound what a client that stops reading can pin.
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.chunk_size = bytes;
        self
    }

    /// Limits of the file cache (default: 32 MiB of files up to 16 KiB,
    /// 16384 entries, the descriptors of 1024 larger files; see
    /// [`CacheLimits`]).
    pub fn cache_limits(mut self, limits: CacheLimits) -> Self {
        self.cache_limits = limits;
        self
    }

    /// Where granted links are checked for revocation (default: none, and
    /// links are good until they expire). A [`RevocationsHandle`](crate::RevocationsHandle)
    /// holds a set that can be replaced while serving; an app that keeps
    /// revocations elsewhere implements [`RevocationCheck`].
    pub fn revocations(mut self, check: Arc<dyn RevocationCheck>) -> Self {
        self.revocations = Some(check);
        self
    }

    /// Accepts uploads (`PUT`) that links grant, within `limits` (default:
    /// uploads off, and a `PUT` is 405 `method_not_allowed`).
    pub fn uploads(mut self, limits: Uploads) -> Self {
        self.uploads = Some(limits);
        self
    }

    /// Opens the media root and checks the settings: the configuration
    /// the service runs with (see [`Builder::build`]).
    pub(crate) fn settle(self) -> Result<Config, ConfigError> {
        let mount =
            normalize_mount(&self.mount).ok_or_else(|| ConfigError::Mount(self.mount.clone()))?;
        if let Some((p, _)) = &self.auth {
            if !p.starts_with('/') {
                return Err(ConfigError::AuthPath(p.clone()));
            }
        }
        if let Some(h) = &self.health_path {
            if !h.starts_with('/') {
                return Err(ConfigError::HealthPath(h.clone()));
            }
        }
        if let Some(a) = &self.accel_redirect {
            let bad = |b: u8| b.is_ascii_control() || matches!(b, b' ' | b'?' | b'#' | b'%');
            if !a.starts_with('/') || a.bytes().any(bad) {
                return Err(ConfigError::AccelRedirect(a.clone()));
            }
        }
        if !(4096..=8 << 20).contains(&self.chunk_size) {
            return Err(ConfigError::ChunkSize);
        }
        let t = self.transports;
        if !(t.query || t.cookie || t.path) {
            return Err(ConfigError::NoTransport);
        }
        let cors = CorsRules::new(self.cors)?;
        let root = ArcSwap::from_pointee(MediaRoot::open(&self.root)?);
        let keys = KeyringHandle::new(self.keyring, self.leeway, self.max_ttl);
        let cache_limits =
            match rustix::process::getrlimit(rustix::process::Resource::Nofile).current {
                Some(soft) => self.cache_limits.within_open_files(soft),
                None => self.cache_limits,
            };
        let written = Arc::default();
        Ok(Config {
            root,
            root_source: self.root,
            keys,
            mount,
            transports: self.transports,
            cache_policy: self.cache,
            client_ip: self.client_ip,
            cors,
            health_path: self.health_path,
            auth: self.auth,
            accel_redirect: self
                .accel_redirect
                .map(|a| a.trim_end_matches('/').to_owned()),
            chunk_size: self.chunk_size,
            cache_limits,
            revocations: self.revocations,
            uploads: self
                .uploads
                .map(|u| Receiving::new(u, Arc::clone(&written))),
            written,
        })
    }
}

/// `/` → "", `/media` or `/media/` → "/media"; anything else → None.
fn normalize_mount(mount: &str) -> Option<String> {
    let trimmed = mount.trim_end_matches('/');
    if trimmed.is_empty() {
        return mount.starts_with('/').then(String::new);
    }
    let ok = mediagate_signer::MediaPath::parse(trimmed).is_ok()
        && mediagate_signer::encode_path(trimmed) == trimmed;
    ok.then(|| trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::normalize_mount;

    #[test]
    fn mounts() {
        assert_eq!(normalize_mount("/").as_deref(), Some(""));
        assert_eq!(normalize_mount("/media").as_deref(), Some("/media"));
        assert_eq!(normalize_mount("/media/").as_deref(), Some("/media"));
        assert_eq!(normalize_mount("/a/b").as_deref(), Some("/a/b"));
        for bad in ["", "media", "/a/../b", "/a b", "/a//b"] {
            assert_eq!(normalize_mount(bad), None, "{bad:?}");
        }
    }
}
