//! The service: one request flows method → token → canonical path → grant
//! → file → response, each step in its own module.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use mediagate_signer::time::OffsetDateTime;
use mediagate_signer::{Grant, Keyring, MediaPath, Method};

use crate::access_log::{self, Served};
use crate::body::MediaBody;
use crate::config::{Builder, Config, ConfigError};
use crate::cors::Preflight;
use crate::files::cache::{Content, FileCache};
use crate::files::content_type;
use crate::files::fs::{MediaRoot, OpenError, RootError};
use crate::keys::KeyringHandle;
use crate::reject::Reject;
use crate::revocation::Revocation;
use crate::{authorize, headers, response, target, token};

/// A refusal, and the user of the grant when there was one (for the log).
type Refused = (Reject, Option<Box<str>>);

/// The peer address of a connection, as a request extension. The bundled
/// server inserts it; when embedding the service elsewhere, insert it for
/// IP-bound links to work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// The mediagate verifier as a service: checks the signed link of each
/// request and serves the file from the media root.
///
/// A pure [`tower_service::Service`]: request in, response out; it knows
/// nothing of connections. Serve it with the bundled server ([`crate::serve`],
/// [`crate::Workers`]), inside an axum router, or with hyper through
/// `hyper_util::service::TowerToHyperService`. Cheap to clone (the
/// configuration is shared).
#[derive(Debug, Clone)]
pub struct MediaGate {
    config: Arc<Config>,
    cache: Arc<FileCache>,
}

impl MediaGate {
    /// Starts configuring a service for the media under `root`, accepting
    /// links signed by `keyring`.
    pub fn builder(root: impl Into<PathBuf>, keyring: Keyring) -> Builder {
        Builder::new(root.into(), keyring)
    }

    fn from_config(config: Config) -> Self {
        let cache = FileCache::new(config.cache_limits);
        MediaGate {
            config: Arc::new(config),
            cache: Arc::new(cache),
        }
    }

    /// A copy with a cache of its own, holding a `1/share` part of the
    /// configured limits. The bundled server gives one to each worker
    /// thread, so that a cache hit touches no memory another thread
    /// writes (a shared cache's lock word and reference counts bounce
    /// between the cores on every request).
    pub(crate) fn with_own_cache(&self, share: usize) -> Self {
        MediaGate {
            config: self.config.clone(),
            cache: Arc::new(FileCache::new(self.config.cache_limits.share(share))),
        }
    }

    /// Closes the descriptors of large files that have gone unused for
    /// [`CacheLimits::close_unused_after`](crate::CacheLimits), returning
    /// how many. The bundled server ([`crate::serve`]) calls this on a
    /// timer; a service embedded elsewhere sweeps only when it opens a
    /// file, so an idle one may hold descriptors (and so the space of
    /// deleted files) until its next request, unless its host calls this
    /// now and then.
    pub fn close_unused_files(&self) -> usize {
        self.cache.close_unused()
    }

    /// How often [`MediaGate::close_unused_files`] should run.
    pub(crate) fn sweep_period(&self) -> std::time::Duration {
        self.cache.sweep_period()
    }

    /// The handle that replaces the keyring this gate (and each of its
    /// clones) checks links with, for key rotation without a restart.
    pub fn keyring_handle(&self) -> KeyringHandle {
        self.config.keys.clone()
    }

    /// The canonical media root: where the configured root led when it was
    /// last opened.
    pub fn root(&self) -> PathBuf {
        self.config.root.load().path().to_owned()
    }

    /// Opens the media root again from the path it was configured with, and
    /// serves from there from now on, in this gate and all its clones;
    /// returns the canonical root. This is how a deployment that switches a
    /// symlink (`/srv/media/current` to the next release) takes effect
    /// without a restart: the root is resolved when the gate is built and
    /// here, not per request (`mediagate serve` does it on `SIGHUP`).
    ///
    /// Responses already sending keep their file. Cached small files and
    /// kept descriptors are confirmed against the new root before they are
    /// served again (within [`CacheLimits::revalidate_after`](crate::CacheLimits)),
    /// so a file the new root does not hold, or holds in another version,
    /// is not served from the old one. On an error the root stays as it
    /// was.
    pub fn reopen_root(&self) -> Result<PathBuf, RootError> {
        let root = MediaRoot::open(&self.config.root_source)?;
        let path = root.path().to_owned();
        self.config.root.store(Arc::new(root));
        Ok(path)
    }

    /// What the bundled server calls for each request read off a
    /// connection: first the wire-level rule that a request carries one
    /// well-formed `Host` (one at most on HTTP/1.0 and HTTP/2; RFC 9112
    /// §3.2), then [`respond`](Self::respond). A server embedding the
    /// service applies its own HTTP rules, and requests built in process
    /// (tests) need no `Host`.
    pub(crate) fn respond_on_wire<B>(
        &self,
        req: &Request<B>,
        peer: Option<SocketAddr>,
    ) -> (Response<MediaBody>, Option<Served>) {
        if !headers::host::is_acceptable(req.version(), req.uri().authority(), req.headers()) {
            let client = authorize::client_ip(&self.config.client_ip, peer, req.headers());
            return self.refuse(req, client, None, Reject::BadHost);
        }
        self.respond(req, peer)
    }

    /// The answer to a request head the bundled server refused before it
    /// was parsed (see `server::head_guard`): the refusal, with the
    /// connection closed after it.
    pub(crate) fn refuse_head(&self, reject: Reject) -> Response<MediaBody> {
        let mut res = response::reject(reject);
        res.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
        res
    }

    /// The answer to `req` from `peer`, and what its access-log line
    /// needs (`None`: not logged). Never fails: every problem is a 4xx
    /// (or, for a server-side fault, a 5xx) response with a reason code.
    pub(crate) fn respond<B>(
        &self,
        req: &Request<B>,
        peer: Option<SocketAddr>,
    ) -> (Response<MediaBody>, Option<Served>) {
        let (mut res, served) = self.answer(req, peer);
        // Every answer, refusals too: a player on another origin can then
        // read why it was refused (an expired link: fetch a new one).
        self.config.cors.decorate(req.headers(), res.headers_mut());
        (res, served)
    }

    /// The response to one request, before the CORS headers.
    fn answer<B>(
        &self,
        req: &Request<B>,
        peer: Option<SocketAddr>,
    ) -> (Response<MediaBody>, Option<Served>) {
        let cfg = &*self.config;
        // Whom IP-bound links are checked against, and the access log names.
        let client_ip = authorize::client_ip(&cfg.client_ip, peer, req.headers());
        let now = OffsetDateTime::now_utc();
        let raw_path = req.uri().path();

        if let Some((auth_path, proxies)) = &cfg.auth {
            if auth_path == raw_path {
                return self.check_for_proxy(req, None, peer, proxies, client_ip, now);
            }
            // Envoy's `ext_authz` names the request in the path instead:
            // its `path_prefix`, then the original path; anyone else's
            // request there is an ordinary one.
            let described = raw_path
                .strip_prefix(auth_path.as_str())
                .filter(|rest| rest.starts_with('/'));
            if let Some(rest) = described.filter(|_| from_any(peer, proxies)) {
                return self.check_for_proxy(req, Some(rest), peer, proxies, client_ip, now);
            }
        }
        if cfg.health_path.as_deref() == Some(raw_path)
            && (req.method() == http::Method::GET || req.method() == http::Method::HEAD)
        {
            let revocations = cfg.revocations.as_deref();
            if revocations.is_some_and(|r| r.unhealthy()) {
                return self.refuse(req, client_ip, None, Reject::RevocationsUnavailable);
            }
            let mut res = response::health(req.method() == http::Method::HEAD);
            if revocations.is_some_and(|r| r.out_of_reach()) {
                res.headers_mut().insert(
                    http::HeaderName::from_static("mediagate-revocations"),
                    http::HeaderValue::from_static("stale"),
                );
            }
            return (res, None);
        }

        // 1. Method
        let method = match *req.method() {
            http::Method::GET => Method::Get,
            http::Method::HEAD => Method::Head,
            _ => return self.other_method(req, client_ip),
        };
        // 2-4. Token, canonical path, grant
        let (grant, path) = match self.grant(
            method,
            raw_path,
            req.uri().query(),
            req.headers(),
            client_ip,
            now,
        ) {
            Ok(granted) => granted,
            Err((r, user)) => return self.refuse(req, client_ip, user.as_deref(), r),
        };
        // nginx serves the file (X-Accel-Redirect mode).
        if let Some(prefix) = &cfg.accel_redirect {
            let res =
                response::accel_redirect(prefix, path.as_str(), &grant, cfg.cache_policy, now);
            return (
                res,
                Some(Served::granted(client_ip, grant.claims().subject())),
            );
        }
        // 5. File
        let resolved = self.cache.resolve(&cfg.root.load(), path.relative(), || {
            content_type::guess(path.as_str())
        });
        let (entry, content) = match resolved {
            Ok(r) => r,
            Err(e) => {
                let reject = match e {
                    OpenError::NotFound => Reject::NotFound,
                    OpenError::Busy => Reject::Busy,
                    OpenError::Io(e) => {
                        tracing::error!(error = %e, "opening a media file failed");
                        Reject::Internal
                    }
                };
                return self.refuse(req, client_ip, Some(grant.claims().subject()), reject);
            }
        };
        // 6. Response
        let head = method == Method::Head;
        let plan = response::file(req.headers(), head, &grant, &entry, cfg.cache_policy, now);
        // A file kept open while the body is sent takes one of the worker's
        // places: none left is a 503 at once.
        let place = match (&plan.body, &content) {
            (Some(_), Content::File(_)) => match self.cache.streaming.try_take() {
                Some(place) => Some(place),
                None => {
                    return self.refuse(
                        req,
                        client_ip,
                        Some(grant.claims().subject()),
                        Reject::Busy,
                    );
                }
            },
            _ => None,
        };
        let mut res = plan.response;
        *res.body_mut() = match (plan.body, content) {
            (None, _) => MediaBody::empty(),
            (Some((start, end)), Content::Memory(bytes)) => {
                MediaBody::bytes(bytes.slice(start as usize..end as usize))
            }
            (Some((start, end)), Content::File(file)) => {
                let version = entry.identity;
                MediaBody::file(file, place, version, start, end - start, cfg.chunk_size)
            }
        };
        (
            res,
            Some(Served::granted(client_ip, grant.claims().subject())),
        )
    }

    /// Steps 2 to 4 of a request for `raw_path` (still encoded) with
    /// `query` and `headers`: the token (the mount first: nothing outside
    /// it is ours), the canonical path, the grant (before any file-system
    /// access) and its revocation check. A refusal comes with the user of
    /// the grant when there was one (for the log).
    fn grant<'a>(
        &self,
        method: Method,
        raw_path: &'a str,
        query: Option<&'a str>,
        headers: &'a http::HeaderMap,
        client_ip: Option<IpAddr>,
        now: OffsetDateTime,
    ) -> Result<(Grant, MediaPath<'a>), Refused> {
        let cfg = &*self.config;
        let below_mount =
            target::strip_mount(raw_path, &cfg.mount).ok_or((Reject::NotFound, None))?;
        let located =
            token::locate(below_mount, query, headers, cfg.transports).map_err(|r| (r, None))?;
        let path = target::canonical(located.path).map_err(|r| (r, None))?;
        let verifier = cfg.keys.verifier();
        let grant =
            authorize::authorize(&verifier, located.tokens(), method, &path, client_ip, now)
                .map_err(|r| (r, None))?;
        if let Some(check) = &cfg.revocations {
            let refusal = match check.check(&grant) {
                Revocation::Valid => None,
                Revocation::Revoked(_) => Some(Reject::Revoked),
                Revocation::Unknown => Some(Reject::RevocationsUnavailable),
            };
            if let Some(r) = refusal {
                return Err((r, Some(grant.claims().subject().into())));
            }
        }
        Ok((grant, path))
    }

    /// The auth-only endpoint (see [`Builder::auth_endpoint`]): the request
    /// a proxy describes, in its headers, or (Envoy) with its path
    /// `in_path` below the endpoint's and its own method and query;
    /// checked as far as the grant: 204 with the user, or 403 with the
    /// reason.
    fn check_for_proxy<B>(
        &self,
        req: &Request<B>,
        in_path: Option<&str>,
        peer: Option<SocketAddr>,
        proxies: &[ipnet::IpNet],
        client_ip: Option<IpAddr>,
        now: OffsetDateTime,
    ) -> (Response<MediaBody>, Option<Served>) {
        if !from_any(peer, proxies) {
            return self.refuse(req, client_ip, None, Reject::NotFound);
        }
        let header = |names: [&str; 2]| {
            names
                .into_iter()
                .find_map(|n| req.headers().get(n))
                .and_then(|v| v.to_str().ok())
        };
        let (uri, method) = match in_path {
            Some(path) => {
                let uri = match req.uri().query() {
                    Some(q) => format!("{path}?{q}").parse::<http::Uri>().ok(),
                    None => path.parse::<http::Uri>().ok(),
                };
                (uri, Some(req.method().as_str()))
            }
            None => (
                header(["x-original-uri", "x-forwarded-uri"])
                    .and_then(|u| u.parse::<http::Uri>().ok()),
                header(["x-original-method", "x-forwarded-method"]),
            ),
        };
        let method = match method {
            None | Some("GET") => Some(Method::Get),
            Some("HEAD") => Some(Method::Head),
            Some(_) => None,
        };
        let checked = match (uri, method) {
            (None, _) => Err((Reject::MalformedRequest, None)),
            (Some(_), None) => Err((Reject::MethodNotAllowed, None)),
            (Some(uri), Some(method)) => self
                .grant(
                    method,
                    uri.path(),
                    uri.query(),
                    req.headers(),
                    client_ip,
                    now,
                )
                .map(|(grant, _)| grant),
        };
        match checked {
            Ok(grant) => {
                let res = response::granted_for_proxy(&grant);
                let user = grant.claims().subject();
                (res, Some(Served::granted(client_ip, user)))
            }
            Err((r, user)) => {
                // Proxies take 401 and 403 as "deny" and anything else as
                // their own error: every refusal is a 403 here, its reason
                // in the header.
                let (mut res, served) = self.refuse(req, client_ip, user.as_deref(), r);
                *res.status_mut() = http::StatusCode::FORBIDDEN;
                (res, served)
            }
        }
    }

    /// A method other than GET and HEAD: a CORS preflight below the mount
    /// is answered (it carries no token and reveals nothing about files);
    /// anything else is a 405.
    fn other_method<B>(
        &self,
        req: &Request<B>,
        client: Option<IpAddr>,
    ) -> (Response<MediaBody>, Option<Served>) {
        let cfg = &*self.config;
        if req.method() == http::Method::OPTIONS
            && target::strip_mount(req.uri().path(), &cfg.mount).is_some()
        {
            match cfg.cors.preflight(req.headers()) {
                Preflight::Allowed => {
                    let served = Served {
                        client,
                        ..Served::default()
                    };
                    return (response::preflight(), Some(served));
                }
                Preflight::Refused => return self.refuse(req, client, None, Reject::CorsOrigin),
                Preflight::Ordinary => {}
            }
        }
        self.refuse(req, client, None, Reject::MethodNotAllowed)
    }

    /// The refusal `r` of `req` (empty for HEAD), from `client`, with the
    /// user of its grant when one was made.
    fn refuse<B>(
        &self,
        req: &Request<B>,
        client: Option<IpAddr>,
        user: Option<&str>,
        r: Reject,
    ) -> (Response<MediaBody>, Option<Served>) {
        let mut res = response::reject(r);
        if req.method() == http::Method::HEAD {
            *res.body_mut() = MediaBody::empty();
        }
        let served = Served {
            client,
            user: user.filter(|_| access_log::logging()).map(Into::into),
            reason: Some(r.code()),
        };
        (res, Some(served))
    }
}

impl Builder {
    /// Opens the media root and checks the settings.
    pub fn build(self) -> Result<MediaGate, ConfigError> {
        self.settle().map(MediaGate::from_config)
    }
}

/// Answers one request; never fails (see [`MediaGate`]). The client's
/// address is taken from a [`PeerAddr`] extension, when present. Add
/// [`AccessLogLayer`](crate::AccessLogLayer) for access-log lines.
impl<B> tower_service::Service<Request<B>> for MediaGate {
    type Response = Response<MediaBody>;
    type Error = Infallible;
    type Future = Ready<Result<Response<MediaBody>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let peer = req.extensions().get::<PeerAddr>().map(|p| p.0);
        let (mut res, served) = self.respond(&req, peer);
        if let Some(served) = served.filter(|_| access_log::enabled()) {
            res.extensions_mut().insert(served);
        }
        ready(Ok(res))
    }
}

/// Whether `peer` is in one of `networks`.
fn from_any(peer: Option<SocketAddr>, networks: &[ipnet::IpNet]) -> bool {
    peer.is_some_and(|p| {
        let ip = p.ip().to_canonical();
        networks.iter().any(|net| net.contains(&ip))
    })
}
