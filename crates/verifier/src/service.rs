//! The service: one request flows method → token → canonical path → grant
//! → file → response, each step in its own module.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use mediagate_signer::time::OffsetDateTime;
use mediagate_signer::{Keyring, Method};

use crate::access_log::{AccessLog, Begun};
use crate::body::{Delivery, MediaBody};
use crate::cache::{Content, FileCache};
use crate::config::{Builder, Config};
use crate::cors::Preflight;
use crate::fs::{MediaRoot, OpenError, RootError};
use crate::keys::KeyringHandle;
use crate::reject::Reject;
use crate::{authorize, headers, response, target, token};

/// The peer address of a connection, as a request extension. The bundled
/// server inserts it; when embedding the service elsewhere, insert it for
/// IP-bound links to work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// The mediagate verifier as a service: checks the signed link of each
/// request and serves the file from the media root.
///
/// Cheap to clone (the configuration is shared). It is a
/// [`hyper::service::Service`] and a [`tower_service::Service`], so it
/// serves with hyper directly (see [`crate::serve`]) or inside an axum
/// router.
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

    pub(crate) fn from_config(config: Arc<Config>, cache: FileCache) -> Self {
        MediaGate {
            config,
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

    /// Answers one request. Never fails: every problem is a 4xx (or, for a
    /// server-side fault, a 5xx) response with a reason code. The client's
    /// address is taken from a [`PeerAddr`] extension, when present.
    ///
    /// HTTP-level rules are the server's: the bundled one ([`crate::serve`])
    /// also refuses, with 400 `bad_host`, a request without a `Host` on
    /// HTTP/1.1, or with two, or with a malformed one (RFC 9112 §3.2).
    pub fn handle<B>(&self, req: &Request<B>) -> Response<MediaBody> {
        let peer = req.extensions().get::<PeerAddr>().map(|p| p.0);
        self.handle_from(req, peer)
    }

    /// [`handle`](Self::handle) for a request from `peer` (what the bundled
    /// server calls: no per-request extension to allocate).
    pub fn handle_from<B>(
        &self,
        req: &Request<B>,
        peer: Option<SocketAddr>,
    ) -> Response<MediaBody> {
        self.respond(req, peer, Delivery::EMBEDDED)
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
        delivery: Delivery<'_>,
    ) -> Response<MediaBody> {
        if !headers::host::is_acceptable(req.version(), req.uri().authority(), req.headers()) {
            let reject = Reject::BadHost;
            let client = authorize::client_ip(&self.config.client_ip, peer, req.headers());
            return self.refuse(req, None, reject, AccessLog::begin(client));
        }
        self.respond(req, peer, delivery)
    }

    /// The answer to a request head the bundled server refused before it
    /// was parsed (see `head_guard`): the refusal, with the connection
    /// closed after it, logged with no method or path.
    pub(crate) fn refuse_head(&self, reject: Reject, peer: SocketAddr) -> Response<MediaBody> {
        let mut res = response::reject(reject);
        res.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
        let client = Some(peer.ip().to_canonical());
        crate::access_log::refused_head(client, reject.status().as_u16(), reject.code());
        res
    }

    /// [`handle_from`](Self::handle_from) on a connection that takes file
    /// bodies as `delivery` says.
    pub(crate) fn respond<B>(
        &self,
        req: &Request<B>,
        peer: Option<SocketAddr>,
        delivery: Delivery<'_>,
    ) -> Response<MediaBody> {
        let mut res = self.answer(req, peer, delivery);
        // Every answer, refusals too: a player on another origin can then
        // read why it was refused (an expired link: fetch a new one).
        self.config.cors.decorate(req.headers(), res.headers_mut());
        res
    }

    /// The response to one request, before the CORS headers.
    fn answer<B>(
        &self,
        req: &Request<B>,
        peer: Option<SocketAddr>,
        delivery: Delivery<'_>,
    ) -> Response<MediaBody> {
        let cfg = &*self.config;
        // Whom IP-bound links are checked against, and the access log names.
        let client_ip = authorize::client_ip(&cfg.client_ip, peer, req.headers());
        let started = AccessLog::begin(client_ip);
        let now = OffsetDateTime::now_utc();
        let raw_path = req.uri().path();

        if cfg.health_path.as_deref() == Some(raw_path)
            && (req.method() == http::Method::GET || req.method() == http::Method::HEAD)
        {
            return response::health(req.method() == http::Method::HEAD);
        }

        // 1. Method
        let method = match *req.method() {
            http::Method::GET => Method::Get,
            http::Method::HEAD => Method::Head,
            _ => return self.other_method(req, started),
        };
        // 2. Token (the mount comes first: nothing outside it is ours)
        let Some(below_mount) = target::strip_mount(raw_path, &cfg.mount) else {
            return self.refuse(req, None, Reject::NotFound, started);
        };
        let located = match token::locate(
            below_mount,
            req.uri().query(),
            req.headers(),
            cfg.transports,
        ) {
            Ok(l) => l,
            Err(r) => return self.refuse(req, None, r, started),
        };
        // 3. Canonical path
        let path = match target::canonical(located.path) {
            Ok(p) => p,
            Err(r) => return self.refuse(req, None, r, started),
        };
        // 4. Grant (before any file-system access)
        let verifier = cfg.keys.verifier();
        let grant = match authorize::authorize(
            &verifier,
            located.tokens(),
            method,
            &path,
            client_ip,
            now,
        ) {
            Ok(g) => g,
            Err(r) => return self.refuse(req, None, r, started),
        };
        // 5. File
        let resolved = self.cache.resolve(&cfg.root.load(), path.relative(), || {
            response::guess_content_type(path.as_str())
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
                return self.refuse(req, Some(grant.subject()), reject, started);
            }
        };
        // 6. Response
        let head = method == Method::Head;
        let plan = response::file(req.headers(), head, &grant, &entry, cfg.cache_policy, now);
        // A file kept open while the body is sent takes one of the worker's
        // places: none left is a 503 at once.
        let place = match (&plan.body, &content) {
            (Some(_), Content::File(_)) => match delivery.file_place(&self.cache.streaming) {
                Some(place) => Some(place),
                None => return self.refuse(req, Some(grant.subject()), Reject::Busy, started),
            },
            _ => None,
        };
        let mut res = plan.response;
        let log = AccessLog::start(
            req.method(),
            raw_path,
            Some(grant.subject()),
            res.status().as_u16(),
            None,
            started,
        );
        *res.body_mut() = match (plan.body, content) {
            (None, _) => {
                log.finish(0, None);
                MediaBody::empty()
            }
            (Some((start, end)), Content::Memory(bytes)) => {
                MediaBody::bytes(bytes.slice(start as usize..end as usize), log)
            }
            (Some((start, end)), Content::File(file)) => {
                let version = entry.identity;
                MediaBody::file(
                    file,
                    place,
                    version,
                    start,
                    end - start,
                    cfg.chunk_size,
                    log,
                    delivery,
                )
            }
        };
        res
    }

    /// A method other than GET and HEAD: a CORS preflight below the mount
    /// is answered (it carries no token and reveals nothing about files);
    /// anything else is a 405.
    fn other_method<B>(&self, req: &Request<B>, started: Option<Begun>) -> Response<MediaBody> {
        let cfg = &*self.config;
        let path = req.uri().path();
        if req.method() == http::Method::OPTIONS && target::strip_mount(path, &cfg.mount).is_some()
        {
            match cfg.cors.preflight(req.headers()) {
                Preflight::Allowed => {
                    let res = response::preflight();
                    let status = res.status().as_u16();
                    AccessLog::start(req.method(), path, None, status, None, started)
                        .finish(0, None);
                    return res;
                }
                Preflight::Refused => {
                    let reject = Reject::CorsOrigin;
                    return self.refuse(req, None, reject, started);
                }
                Preflight::Ordinary => {}
            }
        }
        self.refuse(req, None, Reject::MethodNotAllowed, started)
    }

    fn refuse<B>(
        &self,
        req: &Request<B>,
        user: Option<&str>,
        r: Reject,
        started: Option<Begun>,
    ) -> Response<MediaBody> {
        let mut res = response::reject(r);
        let bytes = if req.method() == http::Method::HEAD {
            *res.body_mut() = MediaBody::empty();
            0
        } else {
            r.body_len() as u64
        };
        AccessLog::start(
            req.method(),
            req.uri().path(),
            user,
            r.status().as_u16(),
            Some(r.code()),
            started,
        )
        .finish(bytes, None);
        res
    }
}

impl<B> hyper::service::Service<Request<B>> for MediaGate {
    type Response = Response<MediaBody>;
    type Error = Infallible;
    type Future = Ready<Result<Response<MediaBody>, Infallible>>;

    fn call(&self, req: Request<B>) -> Self::Future {
        ready(Ok(self.handle(&req)))
    }
}

impl<B> tower_service::Service<Request<B>> for MediaGate {
    type Response = Response<MediaBody>;
    type Error = Infallible;
    type Future = Ready<Result<Response<MediaBody>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        ready(Ok(self.handle(&req)))
    }
}
