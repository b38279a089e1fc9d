//! One listening socket and one single-threaded runtime per worker thread.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use tokio::net::TcpListener;

use super::{Listening, ServerConfig, Tls, serve_all};
use crate::service::MediaGate;

/// Listening sockets for [`Workers::run`]: for each address, one per
/// worker thread, all bound with `SO_REUSEPORT` so that the kernel spreads
/// new connections across them. An address may be plain HTTP or TLS.
#[derive(Debug)]
pub struct Workers {
    threads: usize,
    bound: Vec<Bound>,
}

/// One address's sockets, one per thread.
#[derive(Debug)]
struct Bound {
    addr: SocketAddr,
    tls: Option<Tls>,
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
        let threads = threads.max(1);
        let bound = Bound::new(addr, threads, None)?;
        Ok(Workers {
            threads,
            bound: vec![bound],
        })
    }

    /// [`bind`](Self::bind) for HTTPS on `addr`, with `tls`'s certificates.
    pub fn bind_tls(addr: SocketAddr, threads: usize, tls: Tls) -> io::Result<Workers> {
        if addr.port() != 0 {
            refuse_if_in_use(addr)?;
        }
        Self::bind_tls_reuse_port(addr, threads, tls)
    }

    /// [`bind_reuse_port`](Self::bind_reuse_port) for HTTPS on `addr`.
    pub fn bind_tls_reuse_port(addr: SocketAddr, threads: usize, tls: Tls) -> io::Result<Workers> {
        let threads = threads.max(1);
        let bound = Bound::new(addr, threads, Some(tls))?;
        Ok(Workers {
            threads,
            bound: vec![bound],
        })
    }

    /// These workers serving `other`'s addresses as well, with this one's
    /// threads: one server, one connection cap per thread, for both (say,
    /// plain HTTP and HTTPS side by side).
    pub fn and(mut self, other: Workers) -> Workers {
        for mut bound in other.bound {
            // Fewer sockets than threads: the last ones serve none of this
            // address; more: the extra ones are closed.
            bound.listeners.truncate(self.threads);
            self.bound.push(bound);
        }
        self
    }

    /// The address of the first sockets bound (the one `bind` was given).
    pub fn local_addr(&self) -> SocketAddr {
        self.bound[0].addr
    }

    /// Every address served, and whether it is HTTPS.
    pub fn addrs(&self) -> impl Iterator<Item = (SocketAddr, bool)> + '_ {
        self.bound.iter().map(|b| (b.addr, b.tls.is_some()))
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
        let n = self.threads;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut per_worker = config.clone();
        per_worker.max_connections = (config.max_connections / n).max(1);
        let mut threads = Vec::with_capacity(n);
        // Thread i serves socket i of every address.
        let mut per_thread: Vec<Vec<(std::net::TcpListener, Option<Tls>)>> =
            (0..n).map(|_| Vec::new()).collect();
        for bound in self.bound {
            for (i, listener) in bound.listeners.into_iter().enumerate() {
                per_thread[i].push((listener, bound.tls.clone()));
            }
        }
        for (i, listeners) in per_thread.into_iter().enumerate() {
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
                        let listeners = listeners
                            .into_iter()
                            .map(|(listener, tls)| {
                                let listener = TcpListener::from_std(listener)?;
                                Ok(match tls {
                                    Some(tls) => Listening::tls(listener, tls),
                                    None => Listening::plain(listener),
                                })
                            })
                            .collect::<io::Result<Vec<_>>>()?;
                        serve_all(listeners, gate, config, async move {
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

impl Bound {
    /// `threads` sockets bound to `addr`; with port 0 they share the port
    /// the first one gets.
    fn new(addr: SocketAddr, threads: usize, tls: Option<Tls>) -> io::Result<Bound> {
        let mut listeners = Vec::with_capacity(threads);
        let mut bound = addr;
        for _ in 0..threads {
            let listener = reuseport_listener(bound)?;
            bound = listener.local_addr()?;
            listeners.push(listener);
        }
        Ok(Bound {
            addr: bound,
            tls,
            listeners,
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn accepted_sockets_inherit_nodelay_from_the_workers_listeners() {
        use rustix::net::sockopt::tcp_nodelay;
        let workers = Workers::bind("127.0.0.1:0".parse().expect("addr"), 1).expect("bind");
        let listener = &workers.bound[0].listeners[0];
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
