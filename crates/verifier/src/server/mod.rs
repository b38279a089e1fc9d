//! A production HTTP server for the service: HTTP/1.1 and HTTP/2 (prior
//! knowledge), a header-read timeout that also closes idle keep-alive
//! connections, a send timeout for clients that stop reading, a cap on
//! concurrent connections, back-off when out of file descriptors, the
//! PROXY protocol from listed load balancers, and graceful shutdown with a
//! drain deadline.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;

mod graceful;
pub(crate) mod head_guard;
mod open_files;
mod proxy_protocol;
mod send_timeout;
pub(crate) mod sendfile;
pub(crate) mod slots;

pub use open_files::fit_open_files;

use bytes::{Bytes, BytesMut};
use http::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use ipnet::IpNet;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::task::AbortOnDropHandle;

use crate::access_log::{self, Cut};
use crate::body::{Delivery, HTTP2_CHUNK, MediaBody};
use crate::service::MediaGate;
use graceful::{Shutdown, Watcher};
use head_guard::{Head, HeadGuard, Verdict, Verdicts};
use send_timeout::{Ended, Progress, Tracked, watch_http2};
use sendfile::{Lane, SendfileIo};
use slots::{Responding, Slot, Slots};

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
const READ_AHEAD: usize = 2048;

/// The longest any timeout is taken to be, 100 years: a longer one (up to
/// `Duration::MAX`, to mean "never") would overflow the arithmetic of the
/// deadlines.
const LONGEST_TIMEOUT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Settings of [`serve`]. Every field has a default, given with it.
/// Timeouts longer than 100 years count as 100 years.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// A client must send its request head within this time, from the
    /// moment the server waits for it: the first from the moment the
    /// connection is accepted (on HTTP/2, the first request's headers), and
    /// on HTTP/1.1 each next one from the end of the previous response, so
    /// that this also bounds an idle kept-alive connection; an HTTP/2
    /// connection with no response open and no new request for this long
    /// is closed too (default 10 s).
    pub header_read_timeout: Duration,
    /// The most connections served at once (default 4096; 0 counts as 1,
    /// and more than [`Semaphore::MAX_PERMITS`] as that many). At the cap,
    /// the connection idle longest (no response in progress) is closed for
    /// each newcomer; with none idle, newcomers wait in the listen backlog
    /// (see `src/slots.rs`).
    pub max_connections: usize,
    /// How long a graceful shutdown waits for requests in flight (default 10 s).
    pub drain_timeout: Duration,
    /// Whether to accept HTTP/2 with prior knowledge (default true).
    pub http2: bool,
    /// Largest request head accepted, in bytes; larger ones get 431 (default 16 KiB).
    pub max_header_bytes: usize,
    /// Whether HTTP/1 file bodies go from the page cache to the socket with
    /// `sendfile(2)` instead of being read and written (default true; the
    /// mechanism is described in `src/sendfile.rs`). Turn it off for a file
    /// system that cannot `sendfile`.
    pub sendfile: bool,
    /// A connection whose client accepts no bytes for this long while a
    /// response waits to be sent is closed (default 60 s, as nginx's
    /// `send_timeout`): a client that stops reading a large file would
    /// otherwise hold its connection, and a place under
    /// [`max_connections`](Self::max_connections), for ever. A client that
    /// reads slowly but steadily is not affected.
    pub send_timeout: Duration,
    /// An HTTP/2 response whose stream's flow-control window the client
    /// keeps shut this long after the response head ends its connection
    /// (default 10 s; the client's other streams end with it, as hyper
    /// cannot reset one stream of a server's own accord). A client that
    /// announces a window of 0 and never opens it would otherwise hold a
    /// stream, and its file, for the send timeout.
    pub window_timeout: Duration,
    /// TCP load balancers that send the PROXY protocol (v1 or v2: HAProxy,
    /// AWS NLB and most others that pass connections through): every
    /// connection from one of these networks must begin with a PROXY
    /// header, and the client address it names stands for the peer's (for
    /// IP-bound links and trusted-proxy checks); one without a valid header
    /// is closed. Connections from anywhere else are read as plain HTTP, so
    /// a header a client writes itself is never believed (default: none).
    /// See `src/proxy_protocol.rs`.
    pub proxy_protocol: Vec<IpNet>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 4096,
            drain_timeout: Duration::from_secs(10),
            http2: true,
            max_header_bytes: 16 * 1024,
            sendfile: true,
            send_timeout: Duration::from_secs(60),
            window_timeout: Duration::from_secs(10),
            proxy_protocol: Vec::new(),
        }
    }
}

impl ServerConfig {
    /// This config as [`serve`] applies it: timeouts of at most
    /// [`LONGEST_TIMEOUT`], and a connection cap a semaphore can hold.
    fn bounded(mut self) -> Self {
        for timeout in [
            &mut self.header_read_timeout,
            &mut self.drain_timeout,
            &mut self.send_timeout,
            &mut self.window_timeout,
        ] {
            *timeout = (*timeout).min(LONGEST_TIMEOUT);
        }
        self.max_connections = self.max_connections.clamp(1, Semaphore::MAX_PERMITS);
        self
    }

    /// Sets [`header_read_timeout`](Self::header_read_timeout).
    pub fn with_header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// Sets [`max_connections`](Self::max_connections).
    pub fn with_max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// Sets [`drain_timeout`](Self::drain_timeout).
    pub fn with_drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// Sets [`http2`](Self::http2).
    pub fn with_http2(mut self, enabled: bool) -> Self {
        self.http2 = enabled;
        self
    }

    /// Sets [`max_header_bytes`](Self::max_header_bytes).
    pub fn with_max_header_bytes(mut self, bytes: usize) -> Self {
        self.max_header_bytes = bytes;
        self
    }

    /// Sets [`sendfile`](Self::sendfile).
    pub fn with_sendfile(mut self, enabled: bool) -> Self {
        self.sendfile = enabled;
        self
    }

    /// Sets [`send_timeout`](Self::send_timeout).
    pub fn with_send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = timeout;
        self
    }

    /// Sets [`window_timeout`](Self::window_timeout).
    pub fn with_window_timeout(mut self, timeout: Duration) -> Self {
        self.window_timeout = timeout;
        self
    }

    /// Sets [`proxy_protocol`](Self::proxy_protocol).
    pub fn with_proxy_protocol(mut self, balancers: Vec<IpNet>) -> Self {
        self.proxy_protocol = balancers;
        self
    }
}

/// Serves `gate` on `listener` until `shutdown` completes, then stops
/// accepting and waits up to `drain_timeout` for connections to finish.
pub async fn serve(
    listener: TcpListener,
    gate: MediaGate,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let config = config.bounded();
    // Accepted sockets inherit TCP_NODELAY from the listener (Linux): set
    // per connection only when the listener does not have it already.
    let nodelay_inherited =
        rustix::net::sockopt::tcp_nodelay(std::os::fd::AsFd::as_fd(&listener)).unwrap_or(false);
    let slots = Slots::new(config.max_connections);
    let graceful = Shutdown::new();
    // Ends with this function, however it ends (returned, or dropped).
    let _sweeper = AbortOnDropHandle::new(tokio::spawn(close_unused_files(gate.clone())));
    let start = |stream: TcpStream, peer, slot| {
        if !nodelay_inherited {
            let _ = stream.set_nodelay(true);
        }
        let (gate, config, watcher) = (gate.clone(), config.clone(), graceful.watcher());
        tokio::spawn(connection(stream, peer, gate, config, watcher, slot));
    };
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    back_off(&e).await;
                    continue;
                }
            },
        };
        // At the cap, the connection idle longest gives way (see `slots`).
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.take() => slot,
        };
        start(stream, peer, slot);
    }
    // Connections already queued on this socket would be reset when it
    // closes: take them first. (Where a new process shares the port, with
    // SO_REUSEPORT, for a restart without downtime, this is most of what
    // the old one would otherwise drop.)
    while let Some(slot) = slots.try_take() {
        let queued = std::future::poll_fn(|cx| Poll::Ready(listener.poll_accept(cx))).await;
        let Poll::Ready(Ok((stream, peer))) = queued else {
            break;
        };
        start(stream, peer, slot);
    }
    drop(listener);
    tokio::select! {
        () = graceful.drain() => {}
        () = tokio::time::sleep(config.drain_timeout) => {
            tracing::warn!("drain deadline passed; closing the remaining connections");
        }
    }
    Ok(())
}

/// Closes the file cache's unused descriptors on a timer, so that an idle
/// server does not keep deleted files' space in use.
async fn close_unused_files(gate: MediaGate) {
    let mut tick = tokio::time::interval(gate.sweep_period().min(LONGEST_TIMEOUT));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        gate.close_unused_files();
    }
}

/// One accepted connection: tells HTTP/1 from HTTP/2, then serves it with
/// hyper until the client leaves, the connection fails, or a graceful
/// shutdown drains it, or it gives way at the connection cap; its slot of
/// the cap is held until then.
///
/// This is the future of every connection's task (spawning copies it into
/// a heap allocation), so it is kept small: nothing holds the hyper
/// connection twice, and the rare HTTP/2 one is boxed (1.7 KiB in all,
/// where it was 4.3 KiB).
async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    gate: MediaGate,
    config: ServerConfig,
    watcher: Watcher,
    slot: Slot,
) {
    // The first request head is due by this deadline, counted from the
    // accept: on HTTP/1, `read_ahead` waits for all of it; on HTTP/2, for the
    // preface, and the connection is dropped at the deadline unless a
    // request came by then.
    let deadline = tokio::time::Instant::now() + config.header_read_timeout;
    let mut buf = BytesMut::with_capacity(READ_AHEAD);
    let mut peer = peer;
    let from_balancer = !config.proxy_protocol.is_empty() && {
        let ip = peer.ip().to_canonical();
        config.proxy_protocol.iter().any(|net| net.contains(&ip))
    };
    // Until its first request head has arrived, the connection is idle:
    // asked to give way at the cap, it closes.
    let first_head = async {
        if from_balancer {
            let read = proxy_protocol::read_header(
                &mut stream,
                &mut buf,
                deadline,
                config.max_header_bytes,
            );
            match read.await {
                Some(Some(client)) => peer = client,
                Some(None) => {}
                None => {
                    tracing::debug!(%peer, "no valid PROXY header from a listed balancer");
                    return None;
                }
            }
        }
        read_ahead(
            &mut stream,
            std::mem::take(&mut buf),
            deadline,
            config.http2,
            config.max_header_bytes,
        )
        .await
    };
    let first_head = tokio::select! {
        read = first_head => read,
        () = slot.evicted() => {
            tracing::debug!(%peer, "idle at the connection cap: closed for a newcomer");
            None
        }
    };
    let Some((h2, first)) = first_head else {
        return;
    };
    // An HTTP/1 head is in: not to be asked until it is answered. (The
    // HTTP/2 preface is no request: that connection stays idle until its
    // first stream.)
    if !h2 {
        slot.head_arrived();
    }
    let slot = Arc::new(slot);
    let result = if h2 {
        let head_seen = Arc::new(AtomicBool::new(false));
        let seen = head_seen.clone();
        let progress = Arc::new(Progress::default());
        let bodies = Arc::clone(&progress);
        let serving = Arc::clone(&slot);
        let lane = Lane::default();
        let streams = lane.clone();
        let service = service_fn(move |req: Request<Incoming>| {
            seen.store(true, Ordering::Relaxed);
            let responding = serving.responding();
            let res = gate.respond_on_wire(&req, Some(peer), Delivery::http2(&streams));
            let res = holding_unless_refused(res, responding);
            std::future::ready(Ok::<_, std::convert::Infallible>(
                res.map(|body| Tracked::new(body, &bodies)),
            ))
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
        let io = SendfileIo::new(
            stream,
            lane.clone(),
            first,
            config.send_timeout,
            Some(Arc::clone(&progress)),
        );
        let conn = b.serve_connection(io, service);
        // A response whose stream window the client never opens writes
        // nothing, so no write waits on the socket; and hyper keeps an idle
        // HTTP/2 connection for as long as pings are answered. Watch both.
        let watch = watch_http2(
            progress,
            config.send_timeout,
            config.header_read_timeout,
            config.window_timeout,
        );
        let watch = async move {
            let ended = watch.await;
            // Before the connection (and its bodies) is dropped.
            match ended {
                Ended::Stalled => lane.cut(Cut::SendTimeout),
                Ended::WindowShut => lane.cut(Cut::WindowShut),
                Ended::Idle => {}
            }
            ended
        };
        // Boxed: HTTP/2 with prior knowledge is the rare case, and its
        // state would otherwise double the size of every connection's task.
        let conn = Box::pin(async move {
            tokio::pin!(conn);
            let conn = watcher.run(conn, slot.evicted(), |c| c.graceful_shutdown());
            // Asked to give way, it was idle: what it still has in flight
            // is refusals (see `holding_unless_refused`), which a client
            // that keeps its windows shut would never let end.
            let given_way = async {
                slot.evicted().await;
                tokio::time::sleep(EVICTION_GRACE).await;
            };
            tokio::select! {
                result = conn => result,
                ended = watch => {
                    tracing::debug!(%peer, ?ended, "HTTP/2 connection closed");
                    Ok(())
                }
                () = given_way => {
                    tracing::debug!(%peer, "idle at the connection cap: closed for a newcomer");
                    Ok(())
                }
            }
        });
        let Some(result) = first_request_by(deadline, &head_seen, conn).await else {
            tracing::debug!(%peer, "no HTTP/2 request by the header timeout");
            return;
        };
        result
    } else {
        let lane = Lane::default();
        let verdicts = Verdicts::default();
        let guard = HeadGuard::new(config.max_header_bytes, verdicts.clone());
        let io =
            SendfileIo::new(stream, lane.clone(), first, config.send_timeout, None).guarded(guard);
        let serving = Arc::clone(&slot);
        let sendfile = config.sendfile;
        let service = service_fn(move |req: Request<Incoming>| {
            let responding = serving.responding();
            let res = match verdicts.next() {
                Verdict::Refuse(reject) => gate.refuse_head(reject, peer),
                verdict => {
                    let delivery = Delivery::http1(&lane, sendfile);
                    let mut res = gate.respond_on_wire(&req, Some(peer), delivery);
                    if verdict == Verdict::ServeThenClose {
                        res.headers_mut()
                            .insert(http::header::CONNECTION, CLOSE.clone());
                    }
                    res
                }
            };
            std::future::ready(Ok::<_, std::convert::Infallible>(holding_unless_refused(
                res, responding,
            )))
        });
        let mut b = hyper::server::conn::http1::Builder::new();
        b.timer(TokioTimer::new())
            .header_read_timeout(Some(config.header_read_timeout))
            .keep_alive(true)
            .max_buf_size(config.max_header_bytes.max(8192))
            // Queued (vectored) writes: hyper then passes body frames to
            // the connection untouched, which sendfile placeholders rely
            // on. (`pipeline_flush` would switch to copying and must stay
            // off.)
            .writev(true);
        let conn = b.serve_connection(io, service);
        tokio::pin!(conn);
        // Polled before it looks at a shutdown: the first request, whose
        // head is read already, is then answered (see `graceful`). Asked
        // to give way at the cap (idle, kept alive), it closes the same way.
        watcher
            .run(conn, slot.evicted(), |c| c.graceful_shutdown())
            .await
    };
    if let Err(e) = result {
        access_log::refused_unparsed(Some(peer.ip().to_canonical()), &e);
        tracing::debug!(error = %e, %peer, "connection ended with an error");
    }
}

/// `res`, its body holding `responding` (the connection's mark of a
/// response in progress) unless it is a refusal: a short refusal is no
/// download to protect, so a connection answered only refusals stays the
/// first to give way at the cap, even while one waits for a window the
/// client never opens.
fn holding_unless_refused(
    res: http::Response<MediaBody>,
    responding: Responding,
) -> http::Response<MediaBody> {
    if res.status().is_client_error() || res.status().is_server_error() {
        drop(responding);
        return res;
    }
    res.map(|body| body.holding(responding))
}

/// Listening sockets for [`Workers::run`]: one per worker thread, all bound
/// to the same address with `SO_REUSEPORT` so that the kernel spreads new
/// connections across them.
#[derive(Debug)]
pub struct Workers {
    addr: SocketAddr,
    listeners: Vec<std::net::TcpListener>,
}

impl Workers {
    /// Binds `threads` sockets (at least one) to `addr`; with port 0 they
    /// share the port the first one gets. An address another socket
    /// listens on already is refused (`AddrInUse`), even one of another
    /// `mediagate serve`: two servers sharing a port would each take a
    /// share of the connections, with their own keys and root. See
    /// [`bind_reuse_port`](Self::bind_reuse_port) for a handover.
    pub fn bind(addr: SocketAddr, threads: usize) -> io::Result<Workers> {
        if addr.port() != 0 {
            refuse_if_in_use(addr)?;
        }
        Self::bind_reuse_port(addr, threads)
    }

    /// [`bind`](Self::bind), but joining the sockets of a server already
    /// listening on `addr` (its sockets are `SO_REUSEPORT`, as these are):
    /// new connections are then spread over both until the old one is
    /// stopped. This is the zero-downtime handover; it must be asked for.
    pub fn bind_reuse_port(addr: SocketAddr, threads: usize) -> io::Result<Workers> {
        let mut listeners = Vec::with_capacity(threads.max(1));
        let mut bound = addr;
        for _ in 0..threads.max(1) {
            let listener = reuseport_listener(bound)?;
            bound = listener.local_addr()?;
            listeners.push(listener);
        }
        Ok(Workers {
            addr: bound,
            listeners,
        })
    }

    /// The address the sockets are bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `gate` with one single-threaded runtime per socket, each on
    /// its own thread: nginx's model, with no work stealing and no wake-ups
    /// across threads. Blocks until `shutdown` completes and every worker
    /// has drained (see [`ServerConfig::drain_timeout`]). The connection cap
    /// and the file cache's limits are shared out evenly: each worker has a
    /// cache of its own, so that serving a cached file writes no memory
    /// that another core reads.
    pub fn run(
        self,
        gate: MediaGate,
        config: ServerConfig,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        let n = self.listeners.len();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut per_worker = config.clone();
        per_worker.max_connections = (config.max_connections / n).max(1);
        let mut threads = Vec::with_capacity(n);
        for (i, listener) in self.listeners.into_iter().enumerate() {
            let gate = gate.with_own_cache(n);
            let config = per_worker.clone();
            let mut stop = stop_rx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("mediagate-worker-{i}"))
                .spawn(move || -> io::Result<()> {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    rt.block_on(async move {
                        let listener = TcpListener::from_std(listener)?;
                        serve(listener, gate, config, async move {
                            let _ = stop.wait_for(|stopped| *stopped).await;
                        })
                        .await
                    })
                })?;
            threads.push(thread);
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(shutdown);
        let _ = stop_tx.send(true);
        let mut result = Ok(());
        for t in threads {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e),
                Err(_) => result = Err(io::Error::other("a worker thread panicked")),
            }
        }
        result
    }
}

/// Fails with `AddrInUse` when a socket listens on `addr`: a socket
/// without `SO_REUSEPORT` cannot be bound where one listens, whatever the
/// other's options (`SO_REUSEADDR` lets it past connections lingering in
/// `TIME_WAIT`, which are no server). The probe is closed before the
/// workers' sockets are bound; a server that starts in between is not
/// seen.
fn refuse_if_in_use(addr: SocketAddr) -> io::Result<()> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, sockopt};
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let probe = rustix::net::socket_with(family, SocketType::STREAM, SocketFlags::CLOEXEC, None)?;
    sockopt::set_socket_reuseaddr(&probe, true)?;
    match rustix::net::bind(&probe, &addr) {
        Err(rustix::io::Errno::ADDRINUSE) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "another server listens on this address",
        )),
        other => other.map_err(io::Error::from),
    }
}

fn reuseport_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, sockopt};
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let fd = rustix::net::socket_with(
        family,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    sockopt::set_socket_reuseaddr(&fd, true)?;
    sockopt::set_socket_reuseport(&fd, true)?;
    // Inherited by every accepted socket: no setsockopt per connection.
    sockopt::set_tcp_nodelay(&fd, true)?;
    rustix::net::bind(&fd, &addr)?;
    rustix::net::listen(&fd, 1024)?;
    Ok(std::net::TcpListener::from(fd))
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
/// and returns whether they are the HTTP/2 preface with the bytes read,
/// which the connection's IO hands to hyper first. For HTTP/1 it reads on
/// until the first request head is complete, or is one to refuse (see
/// [`head_guard::check_head`]: empty lines before it are no head), so that
/// the deadline bounds the whole head, counted from the accept, and hyper
/// parses it without waiting; on HTTP/2, until the whole preface.
/// `None`: the client did not get that far in time, or left.
///
/// A single read usually carries a whole HTTP/1 request head: one
/// `recvfrom` for the first request, where peeking cost two.
async fn read_ahead(
    stream: &mut TcpStream,
    mut buf: BytesMut,
    deadline: tokio::time::Instant,
    http2: bool,
    max_head: usize,
) -> Option<(bool, Bytes)> {
    loop {
        // `buf` may hold bytes already (those after a PROXY header).
        if !buf.is_empty() {
            let seen = buf.len().min(H2_PREFACE.len());
            if http2 && buf[..seen] == H2_PREFACE[..seen] {
                if seen == H2_PREFACE.len() {
                    return Some((true, buf.freeze()));
                }
            } else if head_guard::check_head(&buf, max_head) != Head::Incomplete {
                return Some((false, buf.freeze()));
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

/// Errors from `accept`: out of descriptors or memory means back off and
/// retry (the connections in flight will free some); per-connection errors
/// are skipped.
async fn back_off(e: &io::Error) {
    use rustix::io::Errno;
    let errno = e.raw_os_error().map(Errno::from_raw_os_error);
    if matches!(
        errno,
        Some(Errno::MFILE | Errno::NFILE | Errno::NOMEM | Errno::NOBUFS)
    ) {
        tracing::warn!(error = %e, "out of resources accepting connections; backing off");
        tokio::time::sleep(Duration::from_millis(100)).await;
    } else {
        tracing::debug!(error = %e, "accept failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_sockets_inherit_nodelay_from_the_workers_listeners() {
        use rustix::net::sockopt::tcp_nodelay;
        let workers = Workers::bind("127.0.0.1:0".parse().expect("addr"), 1).expect("bind");
        let listener = &workers.listeners[0];
        assert!(tcp_nodelay(listener).expect("getsockopt"));
        let _client = std::net::TcpStream::connect(workers.local_addr()).expect("connect");
        // The listener is non-blocking: retry until the connection is queued.
        let accepted = (0..200)
            .find_map(|_| match listener.accept() {
                Ok((s, _)) => Some(s),
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(10));
                    None
                }
            })
            .expect("accept");
        assert!(tcp_nodelay(&accepted).expect("getsockopt"));
    }
}
