//! The bundled server: it owns connections, and the service never sees
//! one. Each file holds one job:
//!
//! - this module: the accept loop ([`serve`]), back-off when out of
//!   descriptors, the file sweeper, graceful shutdown of the listener;
//! - `workers`: one `SO_REUSEPORT` socket and single-threaded runtime per
//!   thread ([`Workers`]);
//! - `config`: the settings ([`ServerConfig`]) and their defaults;
//! - `connection`: one connection from accept to end: PROXY header,
//!   HTTP/1 or HTTP/2, the first-head deadline, hyper's set-up, and each
//!   request handed to the service and its answer logged;
//! - `io`: what hyper reads and writes through; `head_guard`: request
//!   heads checked before hyper parses them; `sendfile`: file bodies as
//!   `sendfile` spans; `outgoing`: a response as a connection sends it;
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
mod proxy_protocol;
mod send_timeout;
mod sendfile;
pub(crate) mod slots;
mod workers;

pub use config::ServerConfig;
pub use metrics_endpoint::serve_metrics;
pub use open_files::fit_open_files;
pub use workers::Workers;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::AbortOnDropHandle;

use crate::service::MediaGate;
use config::LONGEST_TIMEOUT;
use graceful::Shutdown;
use slots::Slots;

/// Serves `gate` on `listener` until `shutdown` completes, then stops
/// accepting and waits up to `drain_timeout` for connections to finish.
pub async fn serve(
    listener: TcpListener,
    gate: MediaGate,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
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
        tokio::spawn(connection::connection(
            stream, peer, gate, config, watcher, slot,
        ));
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
