//! One accepted connection, from its first bytes to its end: the PROXY
//! header from a listed balancer, the TLS handshake on a TLS listener,
//! HTTP/1 or HTTP/2 told apart, the first
//! head's deadline, hyper set up for either protocol, and each request
//! handed to the service, its answer logged and sent as [`Outgoing`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_util::either::Either;

use crate::access_log::{Begun, Cut, Line, LoggedBody, Report, Served};
use crate::body::MediaBody;
use crate::service::MediaGate;

use super::ServerConfig;
use super::graceful::Watcher;
use super::head_guard::{self, Head, HeadGuard, Verdict, Verdicts};
use super::io::{ConnIo, Transport};
use super::outgoing::{Files, HTTP2_CHUNK, Outgoing};
use super::park::{self, Quiet};
use super::proxy_protocol;
use super::send_timeout::{Ended, Progress, Tracked, watch_http2};
use super::sendfile::{self, Lane};
use super::slots::Slot;
use super::tls::Prefixed;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static CLOSE: http::HeaderValue = http::HeaderValue::from_static("close");

/// Streams a client may have open at once on an HTTP/2 connection
/// (nginx allows 128). Clients queue further requests themselves, so this
/// costs a page of many images nothing; it bounds what one connection
/// holds: a file each (of the process's [`CacheLimits::max_streaming_files`](crate::CacheLimits)),
/// and at most three [`HTTP2_CHUNK`]s of it, 1.5 MiB in all for a client
/// that stops reading.
pub(crate) const HTTP2_MAX_STREAMS: u32 = 32;

/// How long an HTTP/2 connection asked to give way at the cap may take to
/// finish what it has in flight (refusals only) before it is closed.
const EVICTION_GRACE: Duration = Duration::from_millis(250);

/// Most bytes read before the connection goes to hyper: a typical request
/// head, signed link included, fits.
pub(super) const READ_AHEAD: usize = 2048;

/// What every connection of one server reads, made once: the settings,
/// and hyper's HTTP/1 builder set from them (one timer for all).
pub(super) struct Shared {
    pub(super) config: ServerConfig,
    http1: hyper::server::conn::http1::Builder,
}

impl Shared {
    /// hyper's HTTP/1 builder, set from the settings.
    pub(super) fn http1(&self) -> &hyper::server::conn::http1::Builder {
        &self.http1
    }

    /// `config`, and hyper's HTTP/1 builder set from it.
    pub(super) fn new(config: ServerConfig) -> Arc<Shared> {
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(Some(config.header_read_timeout))
            .keep_alive(true)
            .max_buf_size(config.max_header_bytes.max(8192))
            // Queued (vectored) writes: hyper then passes body frames to
            // the connection untouched, which sendfile placeholders rely
            // on. (`pipeline_flush` would switch to copying and must stay
            // off.)
            .writev(true);
        Arc::new(Shared { config, http1 })
    }
}

/// One accepted connection: completes the TLS handshake when `tls` is
/// given, tells HTTP/1 from HTTP/2, then serves it with
/// hyper until the client leaves, the connection fails, or a graceful
/// shutdown drains it, or it gives way at the connection cap; its slot of
/// the cap is held until then.
///
/// This is the future of every connection's task, held whole for the
/// connection's life, parked or not, so it is kept small (see the test
/// below). It is an `async` block, not an `async fn`, whose arguments
/// would be stored twice; each stage is built by a function that returns
/// the next stage's future, so that what a stage no longer needs is not
/// kept in it; the TLS handshake and the rare HTTP/2 are boxed.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn would store its arguments twice in the task"
)]
pub(super) fn connection(
    stream: TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut peer: SocketAddr,
    gate: MediaGate,
    shared: Arc<Shared>,
    watcher: Watcher,
    slot: Slot,
) -> impl Future<Output = ()> + Send {
    async move {
        let config = &shared.config;
        // The first request head is due by this deadline, counted from the
        // accept: on HTTP/1, `read_ahead` waits for all of it; on HTTP/2, for
        // the preface, and the connection is dropped at the deadline unless a
        // request came by then.
        let deadline = tokio::time::Instant::now() + config.header_read_timeout;
        // Counted open until this returns (a metric; nothing when they are off).
        let _open = crate::metrics::connection();
        // Until its first request head has arrived, the connection is idle:
        // asked to give way at the cap, it closes. (Not boxed: its state,
        // the TLS handshake boxed apart, is no larger than the later
        // stages', which take its place in the task.)
        let first_head = read_first(stream, tls, &mut peer, config, deadline);
        let first_head = tokio::select! {
            read = first_head => read,
            () = slot.evicted() => {
                tracing::debug!(%peer, "idle at the connection cap: closed for a newcomer");
                None
            }
        };
        let Some((stream, head, first)) = first_head else {
            return;
        };
        // An HTTP/1 head is in: not to be asked until it is answered. (The
        // HTTP/2 preface is no request: that connection stays idle until its
        // first stream.)
        if head.is_some() {
            slot.head_arrived();
        }
        let accepted = Accepted {
            stream,
            first,
            peer,
            gate,
            shared,
            watcher,
            slot,
        };
        let result = match head {
            // Boxed: HTTP/2 with prior knowledge is the rare case, and its
            // state would otherwise more than double the size of every
            // connection's task.
            None => match Box::pin(serve_http2(accepted, deadline)).await {
                Some(result) => result,
                None => return,
            },
            Some(head) => serve_http1(accepted, head).await,
        };
        if let Err(e) = result {
            Line::refused_by_hyper(Some(peer.ip().to_canonical()), &e).end(None);
            tracing::debug!(error = %e, %peer, "connection ended with an error");
        }
    }
}

/// A new connection's first bytes, read by `deadline`: the PROXY header
/// from a listed balancer (`peer` is then the client it names), the TLS
/// handshake when `tls` is given, then the first request head or the
/// HTTP/2 preface (see [`read_ahead`]). `None`: the connection is to be
/// dropped.
async fn read_first(
    mut stream: TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    peer: &mut SocketAddr,
    config: &ServerConfig,
    deadline: tokio::time::Instant,
) -> Option<(Transport, Option<Head>, Bytes)> {
    let mut buf = BytesMut::with_capacity(READ_AHEAD);
    let from_balancer = !config.proxy_protocol.is_empty() && {
        let ip = peer.ip().to_canonical();
        config.proxy_protocol.iter().any(|net| net.contains(&ip))
    };
    if from_balancer {
        let read =
            proxy_protocol::read_header(&mut stream, &mut buf, deadline, config.max_header_bytes);
        match read.await {
            Some(Some(client)) => *peer = client,
            Some(None) => {}
            None => {
                tracing::debug!(%peer, "no valid PROXY header from a listed balancer");
                return None;
            }
        }
    }
    // Over TLS, HTTP/2 only when ALPN chose it (RFC 9113, 3.2).
    let (mut transport, http2) = match tls {
        None => (Transport::Plain(stream), config.http2),
        Some(tls) => {
            // What followed a PROXY header starts the handshake; the
            // request head is read into a buffer of its own after it.
            let after_proxy = if buf.is_empty() {
                Bytes::new()
            } else {
                std::mem::replace(&mut buf, BytesMut::with_capacity(READ_AHEAD)).freeze()
            };
            // Boxed: rustls' state would otherwise be part of every
            // connection's task, plain ones too.
            let handshake = Box::pin(tls.accept(Prefixed::new(after_proxy, stream)));
            let tls = match tokio::time::timeout_at(deadline, handshake).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, %peer, "TLS handshake failed");
                    return None;
                }
                Err(_) => {
                    tracing::debug!(%peer, "no TLS handshake by the header timeout");
                    return None;
                }
            };
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            (Transport::Tls(Box::new(tls)), h2)
        }
    };
    let read = read_ahead(
        &mut transport,
        buf,
        deadline,
        http2,
        config.max_header_bytes,
    );
    let (head, first) = read.await?;
    Some((transport, head, first))
}

/// A connection whose first bytes are in (an HTTP/1 request head, or the
/// HTTP/2 preface), as either protocol's server takes it over.
struct Accepted {
    stream: Transport,
    /// The bytes read while telling the protocols apart.
    first: Bytes,
    peer: SocketAddr,
    gate: MediaGate,
    shared: Arc<Shared>,
    watcher: Watcher,
    slot: Slot,
}

/// Serves an HTTP/2 connection whose preface (and perhaps more) is
/// `first`; `None` when no request came by `deadline` (the connection
/// is then dropped). Builds the connection's IO and service, and returns
/// the future that serves it; hyper's connection and the watch over it
/// are made in that future, so that its state holds each once.
fn serve_http2(
    accepted: Accepted,
    deadline: tokio::time::Instant,
) -> impl Future<Output = Option<hyper::Result<()>>> + Send {
    let Accepted {
        stream,
        first,
        peer,
        gate,
        shared,
        mut watcher,
        slot,
    } = accepted;
    let config = &shared.config;
    let head_seen = Arc::new(AtomicBool::new(false));
    let seen = head_seen.clone();
    let progress = Arc::new(Progress::default());
    let bodies = Arc::clone(&progress);
    let serving = slot.responder();
    let report = Report::default();
    let reported = report.clone();
    let service = service_fn(move |req: Request<Incoming>| {
        seen.store(true, Ordering::Relaxed);
        let responding = serving.responding();
        if gate.receives(req.method()) {
            let receiving = upload(
                gate.clone(),
                req,
                peer,
                reported.clone(),
                responding,
                false,
                None,
            );
            let bodies = bodies.clone();
            return Either::Right(ReceivingH2 { receiving, bodies });
        }
        let res = logged(&req, gate.respond_on_wire(&req, Some(peer)), &reported);
        let res = Outgoing::response(res, responding, Files::Frames);
        Either::Left(std::future::ready(Ok::<_, std::convert::Infallible>(
            res.map(|body| Tracked::new(body, &bodies)),
        )))
    });
    let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    b.timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .keep_alive_timeout(Duration::from_secs(20))
        .max_concurrent_streams(HTTP2_MAX_STREAMS)
        // What hyper may queue per stream beyond the chunk in hand
        // (default 400 KiB): with one chunk waiting for the window and
        // one read ahead, a stream holds at most three HTTP2_CHUNKs.
        .max_send_buf_size(HTTP2_CHUNK)
        .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX));
    let io = ConnIo::new(
        stream,
        report.clone(),
        first,
        config.send_timeout,
        Some(Arc::clone(&progress)),
    );
    async move {
        let config = &shared.config;
        let conn = b.serve_connection(io, service);
        tokio::pin!(conn);
        let served = async {
            // Asked to give way, it was idle: what it still has in flight
            // is refusals (see `holding_unless_refused`), which a client
            // that keeps its windows shut would never let end.
            let given_way = async {
                slot.evicted().await;
                tokio::time::sleep(EVICTION_GRACE).await;
            };
            // The futures are made in the `select!`, which holds each once.
            tokio::select! {
                result = watcher.run(conn.as_mut(), slot.evicted(), |c| c.graceful_shutdown()) => result,
                ended = stalled_or_idle(progress, config, &report) => {
                    tracing::debug!(%peer, ?ended, "HTTP/2 connection closed");
                    Ok(())
                }
                () = given_way => {
                    tracing::debug!(%peer, "idle at the connection cap: closed for a newcomer");
                    Ok(())
                }
            }
        };
        let result = first_request_by(deadline, &head_seen, std::pin::pin!(served)).await;
        if result.is_none() {
            tracing::debug!(%peer, "no HTTP/2 request by the header timeout");
        }
        result
    }
}

/// Completes when the HTTP/2 connection of `progress` is to be closed for
/// a client that stalls it or leaves it idle (see [`watch_http2`]), the
/// reason reported before the connection (and its bodies) is dropped.
async fn stalled_or_idle(progress: Arc<Progress>, config: &ServerConfig, report: &Report) -> Ended {
    // A response whose stream window the client never opens writes
    // nothing, so no write waits on the socket; and hyper keeps an idle
    // HTTP/2 connection for as long as pings are answered. Watch both.
    let ended = watch_http2(
        progress,
        config.send_timeout,
        config.keep_alive_timeout,
        config.window_timeout,
    )
    .await;
    match ended {
        Ended::Stalled => report.cut(Cut::SendTimeout),
        Ended::WindowShut => report.cut(Cut::WindowShut),
        Ended::Idle => {}
    }
    ended
}

/// Serves an HTTP/1 connection whose first request head, `head` as
/// checked, is at the start of `first`; parked between requests (see
/// `park`). Builds the connection's IO and service, and returns the future
/// that serves it, which holds them and little else.
fn serve_http1(accepted: Accepted, head: Head) -> impl Future<Output = hyper::Result<()>> + Send {
    let Accepted {
        stream,
        first,
        peer,
        gate,
        shared,
        mut watcher,
        slot,
    } = accepted;
    let config = &shared.config;
    let report = Report::default();
    let plain = matches!(stream, Transport::Plain(_));
    let lane = (plain && config.sendfile && sendfile::zero_copy_holds()).then(Lane::default);
    let verdicts = Verdicts::default();
    let guard = HeadGuard::new(config.max_header_bytes, verdicts.clone());
    let mut io = ConnIo::new(stream, report.clone(), first, config.send_timeout, None);
    if let Some(lane) = &lane {
        io = io.with_lane(lane.clone());
    }
    // Parked between requests (see `park`).
    let quiet = Arc::new(Quiet::default());
    io = io.watched(Arc::clone(&quiet));
    let last = Arc::clone(&quiet);
    let quiet = Some(quiet);
    let io = io.guarded(guard, head);
    let serving = slot.responder();
    let service = service_fn(move |req: Request<Incoming>| {
        let responding = serving.responding();
        let verdict = verdicts.next();
        if !matches!(verdict, Verdict::Refuse(_)) && gate.receives(req.method()) {
            let close = verdict == Verdict::ServeThenClose;
            return Either::Right(upload(
                gate.clone(),
                req,
                peer,
                report.clone(),
                responding,
                close,
                Some(Arc::clone(&last)),
            ));
        }
        let res = match verdict {
            Verdict::Refuse(reject) => {
                let line = Line::unparsed(Some(peer.ip().to_canonical()), reject);
                gate.refuse_head(reject)
                    .map(|body| LoggedBody::new(body, line.reporting(&report)))
            }
            verdict => {
                let mut res = logged(&req, gate.respond_on_wire(&req, Some(peer)), &report);
                if verdict == Verdict::ServeThenClose {
                    res.headers_mut()
                        .insert(http::header::CONNECTION, CLOSE.clone());
                    last.note_last();
                }
                last.note_exchange(req.version(), req.headers(), res.headers());
                res
            }
        };
        let files = match &lane {
            Some(lane) => Files::Sendfile(lane),
            None if plain => Files::Chunks,
            None => Files::Frames,
        };
        Either::Left(std::future::ready(Ok::<_, std::convert::Infallible>(
            Outgoing::response(res, responding, files),
        )))
    });
    // Borrowed, not moved: held once, in this task, while parked.
    let mut conn = Some((io, service));
    async move { park::serve_http1(&shared, &mut conn, quiet, &slot, &mut watcher).await }
}

/// An upload's answer, once its body is in (every other answer is ready
/// at once).
type Receiving = std::pin::Pin<
    Box<dyn Future<Output = Result<http::Response<Outgoing>, std::convert::Infallible>> + Send>,
>;

/// The answer to the upload `req`, under its access-log line (begun when
/// the request arrived, ended when the answer is sent), as the last on
/// its connection if `close`; an HTTP/1 connection's `quiet` learns
/// whether it was the last exchange.
fn upload(
    gate: MediaGate,
    req: Request<Incoming>,
    peer: SocketAddr,
    report: Report,
    responding: super::slots::Responding,
    close: bool,
    quiet: Option<Arc<Quiet>>,
) -> Receiving {
    Box::pin(async move {
        let begun = Begun::now();
        let method = req.method().clone();
        let path = if begun.is_some() {
            req.uri().path().to_owned()
        } else {
            String::new()
        };
        let version = req.version();
        let asked = quiet.as_ref().map(|_| req.headers().clone());
        let (mut res, served) = gate.upload(req, Some(peer), true).await;
        if close {
            res.headers_mut()
                .insert(http::header::CONNECTION, CLOSE.clone());
        }
        if let (Some(quiet), Some(asked)) = (&quiet, &asked) {
            quiet.note_exchange(version, asked, res.headers());
            // Closed by the upload's own refusal: its body was not all read.
            if res.headers().get(http::header::CONNECTION) == Some(&CLOSE) && !close {
                quiet.left_body_unread();
            }
        }
        let line = match served {
            Some(served) => {
                Line::new(begun, &method, &path, res.status().as_u16(), served).reporting(&report)
            }
            None => Line::OFF,
        };
        let res = res.map(|body| LoggedBody::new(body, line));
        // Its body is empty: no file to send.
        Ok(Outgoing::response(res, responding, Files::Chunks))
    })
}

pin_project_lite::pin_project! {
    /// An upload's answer on an HTTP/2 connection, its body tracked.
    struct ReceivingH2 {
        #[pin]
        receiving: Receiving,
        bodies: Arc<Progress>,
    }
}

impl Future for ReceivingH2 {
    type Output = Result<http::Response<Tracked<Outgoing>>, std::convert::Infallible>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.project();
        let res = std::task::ready!(this.receiving.poll(cx));
        std::task::Poll::Ready(res.map(|res| res.map(|body| Tracked::new(body, this.bodies))))
    }
}

/// The service's answer `answered` to `req`, under the access-log line
/// it asks for, which names the cause `report` gives if the connection
/// cuts the response short.
fn logged<B>(
    req: &Request<B>,
    answered: (http::Response<MediaBody>, Option<Served>),
    report: &Report,
) -> http::Response<LoggedBody<MediaBody>> {
    let (res, served) = answered;
    let line = match served {
        Some(served) => {
            let status = res.status().as_u16();
            Line::new(Begun::now(), req.method(), req.uri().path(), status, served)
                .reporting(report)
        }
        None => Line::OFF,
    };
    res.map(|body| LoggedBody::new(body, line))
}

/// Runs an HTTP/2 connection, but drops it (closing the socket) at
/// `deadline` if no request has arrived by then (`seen`, set by the
/// service). `None`: dropped.
async fn first_request_by<F: Future + Unpin>(
    deadline: tokio::time::Instant,
    seen: &AtomicBool,
    mut conn: F,
) -> Option<F::Output> {
    match tokio::time::timeout_at(deadline, &mut conn).await {
        Ok(output) => Some(output),
        Err(_) if seen.load(Ordering::Relaxed) => Some(conn.await),
        Err(_) => None,
    }
}

/// Reads the connection's first bytes, until `deadline` at the latest,
/// and returns them, with what they begin with: the HTTP/2 preface
/// (`None`), or an HTTP/1 request head, checked (see
/// [`head_guard::check_head`]: whole, or one to refuse; empty lines before
/// it are no head). The connection's IO hands these bytes to hyper first.
/// For HTTP/1 it reads until the head is whole or to be refused, so that
/// the deadline bounds the whole head, counted from the accept, and hyper
/// parses it without waiting; on HTTP/2, until the whole preface.
/// `None`: the client did not get that far in time, or left.
///
/// A single read usually carries a whole HTTP/1 request head: one
/// `recvfrom` for the first request, where peeking cost two.
pub(super) async fn read_ahead(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    mut buf: BytesMut,
    deadline: tokio::time::Instant,
    http2: bool,
    max_head: usize,
) -> Option<(Option<Head>, Bytes)> {
    loop {
        // `buf` may hold bytes already (those after a PROXY header).
        if !buf.is_empty() {
            let seen = buf.len().min(H2_PREFACE.len());
            if http2 && buf[..seen] == H2_PREFACE[..seen] {
                if seen == H2_PREFACE.len() {
                    return Some((None, buf.freeze()));
                }
            } else {
                let head = head_guard::check_head(&buf, max_head);
                if head != Head::Incomplete {
                    return Some((Some(head), buf.freeze()));
                }
            }
        }
        let n = tokio::time::timeout_at(deadline, stream.read_buf(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The most a connection's future may take. A connection's task holds
    /// it whole for the connection's life, parked or not, so its size is
    /// part of what every idle connection costs; large states (hyper's
    /// connection, a parked wait, the TLS handshake, HTTP/2) are boxed so
    /// that it stays under this.
    const MOST_FOR_A_CONNECTION: usize = 1024;

    /// The most an HTTP/2 connection's boxed state may take, beside what
    /// hyper and h2 allocate: hyper's connection (about 1.8 KiB) and the
    /// watch over it, each held once.
    const MOST_FOR_HTTP2: usize = 4096;

    /// An accepted connection, its client, and what serving it needs.
    struct Pieces {
        _client: TcpStream,
        _root: tempfile::TempDir,
        stream: TcpStream,
        peer: SocketAddr,
        gate: MediaGate,
        slot: Slot,
        shutdown: super::super::graceful::Shutdown,
    }

    async fn pieces() -> Pieces {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (stream, peer) = listener.accept().await.expect("accept");
        let dir = tempfile::tempdir().expect("temp dir");
        let key = mediagate_signer::Key::generate("k").expect("key");
        let gate = MediaGate::builder(dir.path(), mediagate_signer::Keyring::new(key))
            .build()
            .expect("gate");
        Pieces {
            _client: client,
            _root: dir,
            stream,
            peer,
            gate,
            slot: super::super::slots::Slots::new(1).take().await,
            shutdown: super::super::graceful::Shutdown::new(),
        }
    }

    #[tokio::test]
    async fn a_connection_task_stays_small() {
        let p = pieces().await;
        let shared = Shared::new(ServerConfig::default());
        let watcher = p.shutdown.watcher();
        let task = connection(p.stream, None, p.peer, p.gate, shared, watcher, p.slot);
        let size = std::mem::size_of_val(&task);
        assert!(
            size <= MOST_FOR_A_CONNECTION,
            "a connection's future takes {size} bytes, more than {MOST_FOR_A_CONNECTION}"
        );
    }

    #[tokio::test]
    async fn an_http2_connection_holds_its_state_once() {
        let p = pieces().await;
        let accepted = Accepted {
            stream: Transport::Plain(p.stream),
            first: Bytes::new(),
            peer: p.peer,
            gate: p.gate,
            shared: Shared::new(ServerConfig::default()),
            watcher: p.shutdown.watcher(),
            slot: p.slot,
        };
        let served = serve_http2(accepted, tokio::time::Instant::now());
        let size = std::mem::size_of_val(&served);
        assert!(
            size <= MOST_FOR_HTTP2,
            "an HTTP/2 connection's future takes {size} bytes, more than {MOST_FOR_HTTP2}"
        );
    }
}
