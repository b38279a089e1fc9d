//! Parking idle HTTP/1 connections: between requests, a kept-alive
//! connection holds only its socket and a little state, not hyper's.
//!
//! hyper keeps a connection's read and write buffers (8 KiB each) and its
//! timers for as long as the connection lives, so a crowd of idle
//! keep-alive clients would cost about 20 KiB each. Instead, once a
//! response has been sent whole, hyper's writes flushed and a read finds
//! nothing more from the client, the connection is [`Quiet`]; then (at
//! once, or for a connection that has shown it sends requests back to
//! back, still quiet [`PARK_AFTER`] later: rebuilding hyper's state costs
//! about a small request) hyper's
//! connection is then ended without closing the socket
//! (`graceful_shutdown` on an idle connection, `into_parts`), its buffers
//! dropped, and the socket waits for readiness alone. When the client
//! sends its next request (within the keep-alive timeout), the head is
//! read (within the header timeout of its first bytes) and a new hyper
//! connection takes it over, with the same service and
//! IO. A parked connection still holds its slot of the cap, counts as
//! idle there, and closes when asked to give way or on shutdown.
//!
//! Over TLS too: a read through rustls that finds nothing means rustls
//! holds no decrypted bytes either, and hyper's flush has sent all rustls
//! had to send, so the socket's readiness is the client's next word; the
//! TLS session itself (rustls' state and buffers) stays.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::HttpService;

use super::ServerConfig;
use super::connection::{READ_AHEAD, Shared, read_ahead};
use super::graceful::Watcher;
use super::head_guard::Head;
use super::io::ConnIo;
use super::outgoing::Outgoing;
use super::slots::Slot;

/// Whether a connection has nothing to read and nothing left to write,
/// as its IO last saw it (see [`ConnIo::watched`]).
#[derive(Debug)]
pub(crate) struct Quiet {
    /// The last read found nothing, and no part of a head is held back.
    blocked: AtomicBool,
    /// hyper has flushed all it wrote.
    flushed: AtomicBool,
    /// A request or its response said this is the connection's last
    /// exchange (`Connection: close`, HTTP/1.0): it ends, never parks, and
    /// the response's writes wait for the FIN (see [`ConnIo`]'s writes).
    last: AtomicBool,
    /// The last exchange refused a request body it did not read: the
    /// client may still be sending it (see [`close`]).
    unread: AtomicBool,
}

impl Default for Quiet {
    fn default() -> Self {
        Quiet {
            blocked: AtomicBool::new(false),
            flushed: AtomicBool::new(true),
            last: AtomicBool::new(false),
            unread: AtomicBool::new(false),
        }
    }
}

impl Quiet {
    /// A read brought bytes (`got`), or found none.
    pub(crate) fn read(&self, got: bool) {
        self.blocked.store(!got, Ordering::Relaxed);
    }

    /// Something was written: not flushed yet.
    pub(crate) fn wrote(&self) {
        self.flushed.store(false, Ordering::Relaxed);
    }

    /// All written has been flushed.
    pub(crate) fn flushed(&self) {
        self.flushed.store(true, Ordering::Relaxed);
    }

    /// Notes that the exchange of a request (`version`, `req` headers) and
    /// its response (`res` headers) is the connection's last: hyper closes
    /// the connection once the response is out, and so must a park.
    pub(crate) fn note_exchange(
        &self,
        version: http::Version,
        req: &http::HeaderMap,
        res: &http::HeaderMap,
    ) {
        let connection = http::header::CONNECTION;
        // The usual exchange, kept alive: no header to look into.
        if version == http::Version::HTTP_11
            && !req.contains_key(&connection)
            && !res.contains_key(&connection)
        {
            return;
        }
        let says = |h: &http::HeaderMap, token: &[u8]| {
            h.get_all(&connection).iter().any(|v| {
                v.as_bytes()
                    .split(|&b| b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
            })
        };
        let old_without_keep_alive = version < http::Version::HTTP_11 && !says(req, b"keep-alive");
        if old_without_keep_alive || says(req, b"close") || says(res, b"close") {
            self.last.store(true, Ordering::Relaxed);
        }
    }

    /// Whether the exchange under way is the connection's last: its
    /// response is then the last thing written before the socket closes.
    pub(crate) fn is_last(&self) -> bool {
        self.last.load(Ordering::Relaxed)
    }

    /// The exchange under way is the connection's last.
    pub(crate) fn note_last(&self) {
        self.last.store(true, Ordering::Relaxed);
    }

    /// The last exchange left a request body unread.
    pub(crate) fn left_body_unread(&self) {
        self.unread.store(true, Ordering::Relaxed);
    }

    fn now(&self) -> bool {
        self.blocked.load(Ordering::Relaxed) && self.flushed.load(Ordering::Relaxed)
    }
}

/// How a turn of hyper's connection ended.
enum Turn {
    /// The connection is over (the client left, or asked to close, or an
    /// error).
    Done(hyper::Result<()>),
    /// Quiet between requests: to be parked.
    Quiet,
}

/// How long a busy connection stays quiet before it is parked: rebuilding
/// hyper's state costs about as much as a small request, so a client that
/// sends requests back to back keeps it. A connection is parked at once
/// until it shows it is busy: woken by a request within this time of
/// being parked.
const PARK_AFTER: Duration = Duration::from_millis(200);

/// hyper's connection, polled until it is done or, with `quiet`, until it
/// has been quiet with no response in progress for [`PARK_AFTER`].
struct Parkable<'a, S: HttpService<Incoming>> {
    conn: http1::Connection<ConnIo, S>,
    quiet: Option<&'a Quiet>,
    slot: &'a Slot,
    /// How long a quiet spell lasts before it parks: none, or
    /// [`PARK_AFTER`] for a busy connection.
    after: Duration,
    /// Runs out `after` into the current quiet spell.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Whether `timer` counts down the current quiet spell.
    armed: bool,
}

impl<S> Future for Parkable<'_, S>
where
    S: HttpService<Incoming, ResBody = Outgoing> + Unpin,
    S::Future: Unpin,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Output = Turn;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Turn> {
        let this = self.get_mut();
        if let Poll::Ready(done) = this.conn.poll_without_shutdown(cx) {
            return Poll::Ready(Turn::Done(done));
        }
        if !(this.quiet.is_some_and(Quiet::now) && this.slot.no_response_in_progress()) {
            this.armed = false;
            return Poll::Pending;
        }
        if this.after.is_zero() {
            return Poll::Ready(Turn::Quiet);
        }
        let deadline = tokio::time::Instant::now() + this.after;
        let timer = match &mut this.timer {
            Some(timer) if this.armed => timer,
            Some(timer) => {
                timer.as_mut().reset(deadline);
                timer
            }
            None => this
                .timer
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        this.armed = true;
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Turn::Quiet),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Serves an HTTP/1 connection with hyper (`shared`'s builder and
/// settings), parked between requests when `quiet` is given (see the
/// module docs), until the client leaves, the connection fails, it gives
/// way at the cap or a shutdown drains it. `conn` is its IO and service,
/// taken by each turn of hyper's connection and put back while parked.
pub(super) async fn serve_http1<S>(
    shared: &Shared,
    conn: &mut Option<(ConnIo, S)>,
    quiet: Option<Arc<Quiet>>,
    slot: &Slot,
    watcher: &mut Watcher,
) -> hyper::Result<()>
where
    S: HttpService<Incoming, ResBody = Outgoing> + Unpin,
    S::Future: Unpin,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // Parked at once until it shows it is busy.
    let mut after = Duration::ZERO;
    loop {
        // Boxed: hyper's connection and the futures that drive it are
        // large, and a parked connection's task keeps none of them.
        let turn = Box::pin(serve_until_quiet(
            shared.http1(),
            conn,
            quiet.as_deref(),
            slot,
            watcher,
            after,
        ));
        let Some(read) = turn.await? else {
            return Ok(());
        };
        let Some((io, _)) = conn else {
            return Ok(());
        };
        let parked_at = tokio::time::Instant::now();
        // Boxed too: a connection that never parks (one request, or
        // requests back to back) has a smaller task, copied less.
        let next = Box::pin(wait_parked(
            io,
            read,
            parked_at,
            &shared.config,
            slot,
            watcher,
        ));
        let Some((head, first)) = next.await else {
            return Ok(());
        };
        if parked_at.elapsed() < PARK_AFTER {
            after = PARK_AFTER;
        }
        slot.head_arrived();
        if let Some((io, _)) = conn {
            io.resume(first, head);
        }
    }
}

/// A parked connection's wait for its next request head, `read` the bytes
/// of it already in: what [`read_ahead`] returns, or `None` when the
/// connection is to close (no request within the keep-alive timeout, or no
/// whole head within the header timeout of its first bytes; asked to give
/// way at the cap; a shutdown).
async fn wait_parked(
    io: &mut ConnIo,
    read: Option<BytesMut>,
    parked_at: tokio::time::Instant,
    config: &ServerConfig,
    slot: &Slot,
    watcher: &mut Watcher,
) -> Option<(Option<Head>, bytes::Bytes)> {
    let _parked = crate::metrics::parked();
    let next = async {
        let (buf, head_begun) = match read {
            // The next head has begun already.
            Some(read) => (read, parked_at),
            None => {
                // Nothing allocated until the client sends something.
                let readable = io.transport_mut().readable();
                let idle_until = parked_at + config.keep_alive_timeout;
                tokio::time::timeout_at(idle_until, readable)
                    .await
                    .ok()?
                    .ok()?;
                let buf = BytesMut::with_capacity(READ_AHEAD);
                (buf, tokio::time::Instant::now())
            }
        };
        // The whole head within the header timeout of its first bytes.
        let deadline = head_begun + config.header_read_timeout;
        let max_head = config.max_header_bytes;
        read_ahead(io.transport_mut(), buf, deadline, false, max_head).await
    };
    tokio::select! {
        next = next => next,
        () = slot.evicted() => {
            tracing::debug!("idle at the connection cap: closed for a newcomer");
            None
        }
        () = watcher.stopping() => None,
    }
}

/// One turn of hyper's connection over the IO and service in `conn`:
/// until the connection is over (`None`), or quiet with no response in
/// progress, when hyper is ended, its IO (with what it need not keep
/// released) and service are put back in `conn`, and any bytes it read
/// but did not use are returned (copied: hyper's buffer comes back whole,
/// room included).
async fn serve_until_quiet<S>(
    builder: &http1::Builder,
    conn: &mut Option<(ConnIo, S)>,
    quiet: Option<&Quiet>,
    slot: &Slot,
    watcher: &mut Watcher,
    after: Duration,
) -> hyper::Result<Option<Option<BytesMut>>>
where
    S: HttpService<Incoming, ResBody = Outgoing> + Unpin,
    S::Future: Unpin,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let Some((io, service)) = conn.take() else {
        return Ok(None);
    };
    let back = conn;
    let mut turn = Parkable {
        conn: builder.serve_connection(io, service),
        quiet,
        slot,
        after,
        timer: None,
        armed: false,
    };
    // Polled before it looks at a shutdown: the first request, whose head
    // is read already, is then answered (see `graceful`). Asked to give
    // way at the cap (idle, kept alive), it closes the same way.
    let ended = watcher
        .run(Pin::new(&mut turn), slot.evicted(), |t| {
            Pin::new(&mut t.get_mut().conn).graceful_shutdown()
        })
        .await;
    // (hyper's connection used where it is, in `turn`: this future is
    // boxed whole, and a copy of it here would double its size.)
    if let Turn::Done(done) = ended {
        done?;
        // hyper leaves the socket open (`poll_without_shutdown`): say
        // goodbye as it would have.
        close(&mut turn.conn.into_parts().io, quiet).await;
        return Ok(None);
    }
    // Idle: ending hyper's connection now writes nothing and reads nothing
    // more.
    Pin::new(&mut turn.conn).graceful_shutdown();
    std::future::poll_fn(|cx| turn.conn.poll_without_shutdown(cx)).await?;
    let mut parts = turn.conn.into_parts();
    if quiet.is_some_and(|q| q.last.load(Ordering::Relaxed)) {
        // The last exchange is out (hyper had not closed yet: a request
        // body left unread, say): closed, as hyper would.
        close(&mut parts.io, quiet).await;
        return Ok(None);
    }
    let read = (!parts.read_buf.is_empty()).then(|| BytesMut::from(&parts.read_buf[..]));
    parts.io.release();
    *back = Some((parts.io, parts.service));
    Ok(Some(read))
}

/// How long, at most, a closing connection reads and drops what a client
/// still sends of a refused body, and how long it waits for more.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_IDLE: Duration = Duration::from_millis(500);

/// Ends the connection: a FIN after the last response, as hyper would
/// (`shutdown`, not just the close that follows: it sends the last
/// response, held back for the FIN, before a close with unread bytes could
/// turn into a reset that drops it).
/// When that response refused a body the client may still be sending
/// (`quiet` says so), what arrives is read and dropped for a while
/// ([`LINGER`], until the client stops or closes) before the socket is
/// closed: closing a socket with unread bytes sends a reset, and a client
/// still sending can lose the answer it has not read yet (a 413 would
/// become "connection reset"). nginx's `lingering_close` does the same.
async fn close(io: &mut ConnIo, quiet: Option<&Quiet>) {
    let shutdown =
        std::future::poll_fn(|cx| hyper::rt::Write::poll_shutdown(Pin::new(&mut *io), cx));
    let _ = tokio::time::timeout(Duration::from_secs(1), shutdown).await;
    if !quiet.is_some_and(|q| q.unread.load(Ordering::Relaxed)) {
        return;
    }
    use tokio::io::AsyncReadExt as _;
    let until = tokio::time::Instant::now() + LINGER;
    let mut dropped = vec![0u8; 16 * 1024];
    let transport = io.transport_mut();
    loop {
        let wait = until
            .saturating_duration_since(tokio::time::Instant::now())
            .min(LINGER_IDLE);
        match tokio::time::timeout(wait, transport.read(&mut dropped)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return,
        }
    }
}
