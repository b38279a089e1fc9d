//! The bundled server: it owns connections, and the service never sees
//! one. Each file holds one job:
//!
//! - this module: the accept loop ([`serve`], [`serve_all`] for several
//!   listeners), back-off when out of descriptors, the file sweeper,
//!   graceful shutdown of the listeners;
//! - `workers`: one `SO_REUSEPORT` socket and single-threaded runtime per
//!   thread ([`Workers`]);
//! - `config`: the settings ([`ServerConfig`]) and their defaults;
//! - `tls`: a listener's certificates ([`Tls`]), chosen by SNI, and
//!   reloaded;
//! - `connection`: one connection from accept to end: PROXY header, TLS
//!   handshake, HTTP/1 or HTTP/2, the first-head deadline, hyper's set-up, and each
//!   request handed to the service and its answer logged;
//! - `io`: what hyper reads and writes through; `head_guard`: request
//!   heads checked before hyper parses them; `sendfile`: file bodies as
//!   `sendfile` spans; `outgoing`: a response as a connection sends it;
//! - `park`: idle HTTP/1 connections parked between requests, without
//!   hyper's buffers;
//! - `slots`: the connection cap and who gives way at it; `send_timeout`:
//!   clients that stop reading; `graceful`: draining on shutdown;
//!   `proxy_protocol`; `open_files`: fitting limits to `RLIMIT_NOFILE`.

use std::future::Future;
use std::task::Poll;
use std::time::Duration;

mod config;
mod connection;
mod graceful;
pub(crate) mod head_guard;
mod io;
mod metrics_endpoint;
mod open_files;
mod outgoing;
mod park;
mod proxy_protocol;
mod send_timeout;
mod sendfile;
pub(crate) mod slots;
mod tls;
mod workers;

pub use config::{ServerConfig, memory_sized_max_connections};
pub use metrics_endpoint::serve_metrics;
pub use open_files::fit_open_files;
pub use tls::{NoCertificate, Tls, TlsBuilder, TlsError, WithCertificate};
pub use workers::Workers;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::AbortOnDropHandle;

use crate::service::MediaGate;
use config::LONGEST_TIMEOUT;
use graceful::Shutdown;
use slots::Slots;

/// A listening socket, and the TLS its connections speak, if any.
#[derive(Debug)]
pub struct Listening {
    listener: TcpListener,
    tls: Option<Tls>,
}

impl Listening {
    /// Plain HTTP on `listener`.
    pub fn plain(listener: TcpListener) -> Self {
        Listening {
            listener,
            tls: None,
        }
    }

    /// HTTPS on `listener`, with `tls`'s certificates.
    pub fn tls(listener: TcpListener, tls: Tls) -> Self {
        Listening {
            listener,
            tls: Some(tls),
        }
    }
}

/// Serves `gate` on `listener` (plain HTTP) until `shutdown` completes,
/// then stops accepting and waits up to `drain_timeout` for connections to
/// finish. See [`serve_all`] for several listeners.
pub async fn serve(
    listener: TcpListener,
    gate: MediaGate,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_all(vec![Listening::plain(listener)], gate, config, shutdown).await
}

/// [`serve`] on every one of `listeners` (say, one plain and one TLS), as
/// one server: its connections share one
/// [`max_connections`](ServerConfig::max_connections) and one drain.
pub async fn serve_all(
    listeners: Vec<Listening>,
    gate: MediaGate,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    // Read by every connection; hyper's HTTP/1 builder made once.
    let shared = connection::Shared::new(config.bounded());
    let config = &shared.config;
    // Accepted sockets inherit TCP_NODELAY from the listener (Linux): set
    // per connection only when the listener does not have it already.
    let nodelay: Vec<bool> = listeners
        .iter()
        .map(|l| {
            let fd = std::os::fd::AsFd::as_fd(&l.listener);
            rustix::net::sockopt::tcp_nodelay(fd).unwrap_or(false)
        })
        .collect();
    let slots = Slots::new(config.max_connections);
    let graceful = Shutdown::new();
    // Ends with this function, however it ends (returned, or dropped).
    let _sweeper = AbortOnDropHandle::new(tokio::spawn(close_unused_files(gate.clone())));
    let start = |i: usize, stream: TcpStream, peer, slot| {
        if !nodelay[i] {
            let _ = stream.set_nodelay(true);
        }
        let tls = listeners[i].tls.as_ref().map(Tls::acceptor);
        let (gate, shared, watcher) = (gate.clone(), shared.clone(), graceful.watcher());
        // Boxed: tokio moves a task's future several times as it spawns
        // it, and writes its output over it when it ends; a pointer moves
        // for less. (It costs idle connections nothing measurable: see
        // BENCHMARKS.md, "A connection per request: a smaller task".)
        tokio::spawn(Box::pin(connection::connection(
            stream, tls, peer, gate, shared, watcher, slot,
        )));
    };
    // Which listener is looked at first, turn about, so that a busy one
    // does not starve the others.
    let mut first = 0;
    let accept = |first: usize, cx: &mut std::task::Context<'_>| {
        let n = listeners.len();
        (0..n)
            .map(|k| (first + k) % n)
            .find_map(|i| match listeners[i].listener.poll_accept(cx) {
                Poll::Ready(accepted) => Some((i, accepted)),
                Poll::Pending => None,
            })
    };
    tokio::pin!(shutdown);
    loop {
        let accepted =
            std::future::poll_fn(|cx| accept(first, cx).map_or(Poll::Pending, Poll::Ready));
        let (i, stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            (i, accepted) = accepted => match accepted {
                Ok((stream, peer)) => (i, stream, peer),
                Err(e) => {
                    back_off(&e).await;
                    continue;
                }
            },
        };
        first = (i + 1) % listeners.len();
        // At the cap, the connection idle longest gives way (see `slots`).
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.take() => slot,
        };
        start(i, stream, peer, slot);
    }
    // Connections already queued on these sockets would be reset when they
    // close: take them first. (Where a new process shares the port, with
    // SO_REUSEPORT, for a restart without downtime, this is most of what
    // the old one would otherwise drop.)
    'queued: for (i, listening) in listeners.iter().enumerate() {
        while let Some(slot) = slots.try_take() {
            let queued =
                std::future::poll_fn(|cx| Poll::Ready(listening.listener.poll_accept(cx))).await;
            let Poll::Ready(Ok((stream, peer))) = queued else {
                continue 'queued;
            };
            start(i, stream, peer, slot);
        }
        break;
    }
    drop(listeners);
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

/// Errors from `accept`: out of descriptors or memory means back off and
/// retry (the connections in flight will free some); per-connection errors
/// are skipped.
async fn back_off(e: &std::io::Error) {
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
