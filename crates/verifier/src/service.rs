//! The service: one request flows method → token → canonical path → grant
//! → file → response, each step in its own module.

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
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
        let cache = FileCache::sharing(config.cache_limits, Arc::clone(&config.written));
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
            cache: Arc::new(FileCache::sharing(
                self.config.cache_limits.share(share),
                Arc::clone(&self.config.written),
            )),
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

    /// Removes the named temporary files of uploads that a killed server
    /// left beneath the root (only file systems without unnamed temporary
    /// files have them), returning how many. `mediagate serve` does this
    /// at start, on a thread of its own, when uploads are on.
    pub fn remove_stale_uploads(&self) -> usize {
        let root = self.root();
        crate::upload::store::sweep_temporaries(&root, 1_000_000)
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
        // A named temporary of an upload in progress is no media.
        if cfg.uploads.is_some() && crate::upload::store::is_temporary(path.relative()) {
            let user = Some(grant.claims().subject());
            return self.refuse(req, client_ip, user, Reject::NotFound);
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

    /// Whether a request with `method` is an upload this gate receives:
    /// its body is then read, by [`upload`](Self::upload).
    #[inline]
    pub(crate) fn receives(&self, method: &http::Method) -> bool {
        method == http::Method::PUT && self.config.uploads.is_some()
    }

    /// The answer to an upload (a request [`receives`](Self::receives)
    /// takes), and its access-log line's facts: the link and everything
    /// that can be checked before the body, then the body, stored when it
    /// passes every check (see `upload`). `on_wire`: the bundled server's
    /// `Host` rule first, as [`respond_on_wire`](Self::respond_on_wire).
    pub(crate) async fn upload<B>(
        &self,
        req: Request<B>,
        peer: Option<SocketAddr>,
        on_wire: bool,
    ) -> (Response<MediaBody>, Option<Served>)
    where
        B: http_body::Body + Send + 'static,
        B::Error: std::fmt::Display,
    {
        let (parts, body) = req.into_parts();
        // Kept until the answer is sent when a refusal leaves it unread.
        let mut body = Box::pin(body);
        let head = Request::from_parts(parts, ());
        let cfg = &*self.config;
        let client_ip = authorize::client_ip(&cfg.client_ip, peer, head.headers());
        let begun = if on_wire
            && !headers::host::is_acceptable(head.version(), head.uri().authority(), head.headers())
        {
            Err((Reject::BadHost, None))
        } else {
            self.begin_upload(&head, client_ip)
        };
        // What happened, the bytes received, and whether the body ended.
        let (result, received, complete, user) = match begun {
            Err((r, user)) => (Err(r), 0, false, user),
            Ok(upload) => {
                let user = access_log::logging().then(|| upload.user().into());
                let outcome = upload.receive(body.as_mut()).await;
                (outcome.result, outcome.received, outcome.complete, user)
            }
        };
        let (mut res, served) = match result {
            Ok((status, etag)) => {
                let served = Served {
                    client: client_ip,
                    user,
                    ..Served::default()
                };
                (response::stored(status, etag), Some(served))
            }
            Err(r) => {
                let (mut res, served) = self.refuse(&head, client_ip, user.as_deref(), r);
                // Unless the body ended, or what is left of it is little
                // (and read now), no other request can follow it, and it
                // is kept until the answer is sent (see `MediaBody::holding`).
                let declared = crate::upload::declared_length(head.headers())
                    .ok()
                    .flatten();
                let rest = declared.map(|n| n.saturating_sub(received));
                let ended = complete
                    || (r != Reject::BodyTimeout
                        && crate::upload::drain(body.as_mut(), head.headers(), rest).await);
                if !ended {
                    close_after(&head, &mut res);
                    res = res.map(|b| b.holding(Box::new(body)));
                }
                (res, served)
            }
        };
        let served = served.map(|s| Served {
            received: Some(received),
            ..s
        });
        cfg.cors.decorate(head.headers(), res.headers_mut());
        (res, served)
    }

    /// Steps 1 to 4 of an upload, and what can be checked before its body
    /// (see `upload::Receiving::begin`).
    fn begin_upload(
        &self,
        head: &Request<()>,
        client_ip: Option<IpAddr>,
    ) -> Result<crate::upload::Upload, Refused> {
        let cfg = &*self.config;
        let uploads = cfg
            .uploads
            .as_ref()
            .ok_or((Reject::MethodNotAllowed, None))?;
        let now = OffsetDateTime::now_utc();
        let (grant, path) = self.grant(
            Method::Put,
            head.uri().path(),
            head.uri().query(),
            head.headers(),
            client_ip,
            now,
        )?;
        let user = || Some(Box::<str>::from(grant.claims().subject()));
        if path.is_dir() {
            return Err((Reject::NotAFile, user()));
        }
        let root = cfg.root.load();
        let relative = path.relative().to_owned();
        let who = user();
        uploads
            .begin(root.dir(), &relative, head.headers(), grant)
            .map_err(|r| (r, who))
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
                    let uploads = cfg.uploads.is_some();
                    return (response::preflight(uploads), Some(served));
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
            received: None,
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
///
/// An upload (a `PUT`, with [`Builder::uploads`]) reads the request body;
/// every other request is answered without looking at it.
impl<B> tower_service::Service<Request<B>> for MediaGate
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: std::fmt::Display + Send,
{
    type Response = Response<MediaBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let peer = req.extensions().get::<PeerAddr>().map(|p| p.0);
        if self.receives(req.method()) {
            let gate = self.clone();
            return ResponseFuture(Answer::Receiving(Box::pin(async move {
                let (res, served) = gate.upload(req, peer, false).await;
                with_served(res, served)
            })));
        }
        let (res, served) = self.respond(&req, peer);
        ResponseFuture(Answer::Ready(ready(with_served(res, served))))
    }
}

/// `res`, carrying `served` for [`AccessLogLayer`](crate::AccessLogLayer).
fn with_served(mut res: Response<MediaBody>, served: Option<Served>) -> Response<MediaBody> {
    if let Some(served) = served.filter(|_| access_log::enabled()) {
        res.extensions_mut().insert(served);
    }
    res
}

/// The response future of [`MediaGate`]: ready at once, except for an
/// upload, which is answered once its body is in.
pub struct ResponseFuture(Answer);

// The large variant is the common one (every download): boxing it would
// cost an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Answer {
    Ready(Ready<Response<MediaBody>>),
    Receiving(Pin<Box<dyn Future<Output = Response<MediaBody>> + Send>>),
}

impl std::fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Answer::Ready(_) => "ResponseFuture::Ready",
            Answer::Receiving(_) => "ResponseFuture::Receiving",
        })
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<MediaBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().0 {
            Answer::Ready(ready) => Pin::new(ready).poll(cx).map(Ok),
            Answer::Receiving(receiving) => receiving.as_mut().poll(cx).map(Ok),
        }
    }
}

/// Marks `res` as the last response of its HTTP/1 connection (HTTP/2
/// has no such header: its streams end on their own).
fn close_after(req: &Request<()>, res: &mut Response<MediaBody>) {
    if req.version() <= http::Version::HTTP_11 {
        res.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
}

/// Whether `peer` is in one of `networks`.
fn from_any(peer: Option<SocketAddr>, networks: &[ipnet::IpNet]) -> bool {
    peer.is_some_and(|p| {
        let ip = p.ip().to_canonical();
        networks.iter().any(|net| net.contains(&ip))
    })
}
